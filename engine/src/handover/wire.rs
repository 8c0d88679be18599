//! The versioned hand-over format, sans-IO: frames of bytes in, messages out, and back.
//!
//! A frame is `MAGIC (8) | version u16 | kind u8 | body length u32 | body`, big-endian. The
//! new process speaks first (`Hello` with the versions it reads); the old one answers with an
//! `Offer` in a version both read, or a `Refuse` naming why; the new one answers `Ready` or
//! `Refuse`. Every length and count is bounded below, and a decoder never allocates more than
//! the bytes it was given can fill, so a hostile peer costs at most one frame's bound.

use super::state::HandoverState;

/// First bytes of every frame.
pub const MAGIC: [u8; 8] = *b"TNDMHOV\0";
/// The format this build writes. Version 2 added each pair's bandwidth limits; version 1
/// (without them) is refused: its pairs would relay unlimited.
pub const VERSION: u16 = 2;
/// The oldest format this build reads.
pub const MIN_VERSION: u16 = 2;
/// Bytes before a frame's body.
pub const HEADER_LEN: usize = 15;
/// Largest frame body, in bytes: 4 Mi live pairs at ~110 bytes each (~150 with bandwidth
/// limits) with room to spare.
pub const MAX_BODY: usize = 512 << 20;
/// Most cores a state names (the engine's own bound on a core list is lower).
pub const MAX_CORES: u16 = 1024;
/// Most listening sockets: two engine ports per core and the control plane's three.
pub const MAX_LISTENERS: usize = 2 * MAX_CORES as usize + 3;
/// Most issued or live pairs in one state (each): above any `max_pairs_per_core × cores`
/// the settings accept.
pub const MAX_PAIRS: usize = 4 << 20;
/// Largest buffered prefix of a waiting side: the engine's `hello_max_bytes` bound.
pub const MAX_PREFIX: usize = 64 * 1024;
/// Largest control-plane section, in bytes (the public proxy's quota bookkeeping is at most
/// ~46 MB: 165 536 operator names of 255 bytes and 100 000 pair owners).
pub const MAX_EXTRA: usize = 64 << 20;
/// Longest refusal reason, in bytes (longer ones are cut at a char boundary when encoded).
pub const MAX_REASON: usize = 1024;

/// One message of the hand-over conversation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Message {
    /// New → old: the versions the new binary reads, and its pid.
    Hello {
        /// Oldest version it reads.
        min: u16,
        /// Newest version it reads.
        max: u16,
        /// Its process id.
        pid: u32,
    },
    /// Old → new: the state (its fds follow the frame).
    Offer(HandoverState),
    /// New → old: everything adopted and served.
    Ready {
        /// Its process id.
        pid: u32,
    },
    /// Either way: no hand-over, and why.
    Refuse {
        /// Why (at most [`MAX_REASON`] bytes).
        reason: String,
    },
}

const KIND_HELLO: u8 = 1;
const KIND_OFFER: u8 = 2;
const KIND_READY: u8 = 3;
const KIND_REFUSE: u8 = 4;

/// A frame that cannot be read.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    /// Not a hand-over frame.
    #[error("not a hand-over frame (bad magic)")]
    BadMagic,
    /// A version this build does not read.
    #[error(
        "hand-over format version {found} is not read by this build (reads {MIN_VERSION}..={VERSION})"
    )]
    Version {
        /// The frame's version.
        found: u16,
    },
    /// An unknown message kind.
    #[error("unknown hand-over message kind {0}")]
    Kind(u8),
    /// A length or count above its bound.
    #[error("hand-over {what} is {found}, above the bound {max}")]
    TooLarge {
        /// What was counted.
        what: &'static str,
        /// Its value.
        found: u64,
        /// Its bound.
        max: u64,
    },
    /// The body ended early or has bytes left over.
    #[error("hand-over body is malformed: {0}")]
    Malformed(&'static str),
}

impl WireError {
    /// A stable label for metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            WireError::BadMagic => "bad_magic",
            WireError::Version { .. } => "version",
            WireError::Kind(_) => "kind",
            WireError::TooLarge { .. } => "too_large",
            WireError::Malformed(_) => "malformed",
        }
    }
}

/// Reads a frame's header: `Ok(None)` until `HEADER_LEN` bytes are there, then the message
/// kind and body length (checked against [`MAX_BODY`] and the versions read).
pub fn decode_header(buf: &[u8]) -> Result<Option<(u16, u8, usize)>, WireError> {
    if buf.len() < HEADER_LEN {
        // A wrong first byte is refused at once, not after the peer sent a whole header.
        let n = buf.len().min(MAGIC.len());
        if buf[..n] != MAGIC[..n] {
            return Err(WireError::BadMagic);
        }
        return Ok(None);
    }
    if buf[..8] != MAGIC {
        return Err(WireError::BadMagic);
    }
    let version = u16::from_be_bytes([buf[8], buf[9]]);
    let kind = buf[10];
    let len = u32::from_be_bytes([buf[11], buf[12], buf[13], buf[14]]) as usize;
    if !(MIN_VERSION..=VERSION).contains(&version) {
        return Err(WireError::Version { found: version });
    }
    if !(KIND_HELLO..=KIND_REFUSE).contains(&kind) {
        return Err(WireError::Kind(kind));
    }
    bound("frame body", len, MAX_BODY)?;
    Ok(Some((version, kind, len)))
}

/// Decodes one whole frame at the start of `buf`: `Ok(None)` while it is incomplete, else the
/// message and the bytes it used.
pub fn decode(buf: &[u8]) -> Result<Option<(Message, usize)>, WireError> {
    let Some((_version, kind, len)) = decode_header(buf)? else {
        return Ok(None);
    };
    let Some(body) = buf.get(HEADER_LEN..HEADER_LEN + len) else {
        return Ok(None);
    };
    let mut r = Reader(body);
    let msg = match kind {
        KIND_HELLO => Message::Hello {
            min: r.u16()?,
            max: r.u16()?,
            pid: r.u32()?,
        },
        KIND_OFFER => Message::Offer(read_state(&mut r)?),
        KIND_READY => Message::Ready { pid: r.u32()? },
        _ => {
            let n = r.len(MAX_REASON, "refusal reason")?;
            let bytes = r.take(n)?;
            let reason = String::from_utf8_lossy(bytes).into_owned();
            Message::Refuse { reason }
        }
    };
    if !r.0.is_empty() {
        return Err(WireError::Malformed("bytes after the message"));
    }
    Ok(Some((msg, HEADER_LEN + len)))
}

/// Encodes `msg` as one frame of the current version.
pub fn encode(msg: &Message) -> Result<Vec<u8>, WireError> {
    let mut w = Vec::with_capacity(64);
    w.extend_from_slice(&MAGIC);
    w.extend_from_slice(&VERSION.to_be_bytes());
    let kind = match msg {
        Message::Hello { .. } => KIND_HELLO,
        Message::Offer(_) => KIND_OFFER,
        Message::Ready { .. } => KIND_READY,
        Message::Refuse { .. } => KIND_REFUSE,
    };
    w.push(kind);
    w.extend_from_slice(&[0; 4]);
    match msg {
        Message::Hello { min, max, pid } => {
            w.extend_from_slice(&min.to_be_bytes());
            w.extend_from_slice(&max.to_be_bytes());
            w.extend_from_slice(&pid.to_be_bytes());
        }
        Message::Offer(s) => write_state(&mut w, s)?,
        Message::Ready { pid } => w.extend_from_slice(&pid.to_be_bytes()),
        Message::Refuse { reason } => {
            let mut end = reason.len().min(MAX_REASON);
            while !reason.is_char_boundary(end) {
                end -= 1;
            }
            put_len(&mut w, end);
            w.extend_from_slice(&reason.as_bytes()[..end]);
        }
    }
    let body = w.len() - HEADER_LEN;
    bound("frame body", body, MAX_BODY)?;
    w[11..15].copy_from_slice(&(body as u32).to_be_bytes());
    Ok(w)
}

fn bound(what: &'static str, found: usize, max: usize) -> Result<(), WireError> {
    if found > max {
        return Err(WireError::TooLarge {
            what,
            found: found as u64,
            max: max as u64,
        });
    }
    Ok(())
}

/// The versions both sides read, newest first: `None` when the ranges do not meet.
pub fn agree(min: u16, max: u16) -> Option<u16> {
    let hi = max.min(VERSION);
    (hi >= min.max(MIN_VERSION)).then_some(hi)
}

#[path = "wire_body.rs"]
mod body;
use body::{Reader, put_len, read_state, write_state};

#[cfg(test)]
#[path = "wire_tests.rs"]
mod tests;
