//! The incremental reader of one inbound header: fed the connection's first bytes in any split, it
//! takes exactly the header's bytes and returns what it says.

use crate::error::HeaderError;
use crate::header::ProxyHeader;
use crate::v1::{self, V1_MAX_BYTES, V1_PREFIX};
use crate::v2::{self, V2_FIXED_BYTES, V2_SIGNATURE};

/// The largest header the protocol can express, in bytes: the v2 fixed part plus a 16-bit length.
pub const MAX_HEADER_BYTES: usize = V2_FIXED_BYTES + u16::MAX as usize;
/// The smallest bound a reader takes, in bytes: a v2 header with a UNIX address block (16 + 216),
/// which also covers the longest v1 line (107).
pub const MIN_HEADER_BYTES: usize = V2_FIXED_BYTES + 216;
/// The default bound, in bytes. HAProxy's `send-proxy-v2` header is 28 bytes for IPv4 and 52 for
/// IPv6 plus its TLVs (ALPN, authority, unique id up to 128 bytes, SSL details: a few hundred
/// bytes with `send-proxy-v2-ssl-cn`); AWS NLB adds a ~40-byte endpoint TLV. 4 KiB takes all of
/// them and bounds what one pending connection holds before its source is known.
pub const DEFAULT_MAX_HEADER_BYTES: usize = 4096;

/// The result of one [`HeaderReader::feed`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Feed {
    /// Bytes taken from the input (all of it until the header ends; the rest belongs to the stream).
    pub consumed: usize,
    /// The header, once complete.
    pub header: Option<ProxyHeader>,
}

/// Which version the first bytes announced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Version {
    Undecided,
    V1,
    V2,
}

/// Reads one header; bounded by the `max` given to [`HeaderReader::new`].
#[derive(Debug, Clone)]
pub struct HeaderReader {
    buf: Vec<u8>,
    max: usize,
    version: Version,
    done: Option<Result<ProxyHeader, HeaderError>>,
}

impl HeaderReader {
    /// A reader that refuses a header longer than `max` bytes (clamped to
    /// [`MIN_HEADER_BYTES`]..=[`MAX_HEADER_BYTES`]).
    pub fn new(max: usize) -> Self {
        HeaderReader {
            buf: Vec::new(),
            max: max.clamp(MIN_HEADER_BYTES, MAX_HEADER_BYTES),
            version: Version::Undecided,
            done: None,
        }
    }

    /// Bytes taken so far.
    pub fn filled(&self) -> usize {
        self.buf.len()
    }

    /// How many bytes the next read may ask for (>= 1 until finished, then 0): exact for v2
    /// (never past the header); for v1, up to the longest line still possible, and before the
    /// version is known, the v2 fixed part (a read may then take bytes past a v1 header:
    /// [`Feed::consumed`] says where it ended).
    pub fn want(&self) -> usize {
        if self.done.is_some() {
            return 0;
        }
        match self.version {
            // The v2 fixed part; a v1 line is at least 15 bytes, so this passes it by at most one.
            Version::Undecided => V2_FIXED_BYTES - self.buf.len(),
            Version::V1 => V1_MAX_BYTES - self.buf.len(),
            Version::V2 => match self.fixed() {
                Some(fixed) => v2::total_len(&fixed).saturating_sub(self.buf.len()),
                None => V2_FIXED_BYTES - self.buf.len(),
            },
        }
    }

    /// Takes the header's bytes from `input`. After the header is complete (or refused), further
    /// calls take nothing and return the same result.
    pub fn feed(&mut self, input: &[u8]) -> Result<Feed, HeaderError> {
        let mut consumed = 0;
        while self.done.is_none() && consumed < input.len() {
            consumed += self.step(&input[consumed..]);
        }
        match &self.done {
            None => Ok(Feed {
                consumed,
                header: None,
            }),
            Some(Ok(header)) => Ok(Feed {
                consumed,
                header: Some(*header),
            }),
            Some(Err(e)) => Err(e.clone()),
        }
    }

    /// Takes bytes from a non-empty `input` for the current state; returns how many (>= 1 unless
    /// finished by this step).
    fn step(&mut self, input: &[u8]) -> usize {
        match self.version {
            Version::Undecided => {
                self.buf.push(input[0]);
                self.decide();
                1
            }
            Version::V1 => {
                let room = V1_MAX_BYTES - self.buf.len();
                let end = input.iter().position(|&b| b == b'\n').map(|i| i + 1);
                let take = end.unwrap_or(input.len()).min(room);
                self.buf.extend_from_slice(&input[..take]);
                if self.buf.last() == Some(&b'\n') {
                    self.done = Some(v1::parse(&self.buf));
                } else if self.buf.len() == V1_MAX_BYTES {
                    self.done = Some(Err(HeaderError::V1TooLong));
                }
                take
            }
            Version::V2 => {
                let take = self.want().min(input.len());
                self.buf.extend_from_slice(&input[..take]);
                self.after_v2_bytes();
                take
            }
        }
    }

    /// Decides the version once the first bytes match a signature; refuses at the first byte
    /// that matches neither.
    fn decide(&mut self) {
        let b = &self.buf;
        let prefix_of = |sig: &[u8]| b.len() <= sig.len() && sig[..b.len()] == b[..];
        if b.len() == V1_PREFIX.len() && b[..] == *V1_PREFIX {
            self.version = Version::V1;
        } else if b.len() == V2_SIGNATURE.len() && b[..] == V2_SIGNATURE {
            self.version = Version::V2;
        } else if !prefix_of(V1_PREFIX) && !prefix_of(&V2_SIGNATURE) {
            self.done = Some(Err(HeaderError::Missing));
        }
    }

    fn fixed(&self) -> Option<[u8; V2_FIXED_BYTES]> {
        self.buf.get(..V2_FIXED_BYTES)?.try_into().ok()
    }

    /// Checks the fixed part as soon as it is in, then parses the whole header.
    fn after_v2_bytes(&mut self) {
        let Some(fixed) = self.fixed() else { return };
        if self.buf.len() == V2_FIXED_BYTES {
            if let Err(e) = v2::check_fixed(&fixed) {
                self.done = Some(Err(e));
                return;
            }
            let len = v2::total_len(&fixed);
            if len > self.max {
                self.done = Some(Err(HeaderError::Oversized { len, max: self.max }));
                return;
            }
        }
        if self.buf.len() == v2::total_len(&fixed) {
            self.done = Some(v2::parse(&self.buf));
        }
    }
}

#[cfg(test)]
#[path = "reader_tests.rs"]
mod tests;
