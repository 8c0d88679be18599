//! ClientHello reader: any segmentation gives the same outcome, memory stays within the bound, and a parsed hello
//! reports an SNI exactly when its server_name extension carries a host_name (checked by an independent walk).

use super::Cuts;
use crate::clienthello::{ClientHelloInfo, ClientHelloReader, HelloError};

/// `hello_max_bytes` values the input selects from (byte 0): the engine's minimum and default, and small bounds
/// that cut real hellos short.
const MAX_BYTES: [usize; 8] = [16_389, 65_536, 0, 5, 64, 600, 2_048, 20_000];
/// Largest record payload the framing mode writes (RFC 8446 §5.1), in bytes.
const MAX_RECORD: usize = 1 << 14;

/// Input: `[bound][framing][n][n cut sizes][payload]`. `bound % 8` picks `max_bytes`; `framing` 0 feeds the payload
/// as raw records, otherwise the payload is handshake bytes framed into records of `framing` bytes (255: 16 KiB).
/// The bytes go through [`ClientHelloReader`] once whole and once in the given cuts; both outcomes must agree.
pub fn client_hello(data: &[u8]) {
    let [bound, framing, rest @ ..] = data else {
        return;
    };
    let max_bytes = MAX_BYTES[usize::from(*bound) % MAX_BYTES.len()];
    let (mut cuts, payload) = Cuts::split(rest);
    let framed;
    let bytes = match *framing {
        0 => payload,
        255 => {
            framed = frame(payload, MAX_RECORD);
            &framed
        }
        n => {
            framed = frame(payload, usize::from(n));
            &framed
        }
    };
    let whole = read(max_bytes, &mut std::iter::once(bytes.len()), bytes);
    let split = read(
        max_bytes,
        &mut std::iter::from_fn(|| Some(cuts.next_size())),
        bytes,
    );
    assert_eq!(
        whole, split,
        "the outcome depends on how the bytes were segmented"
    );
    if let Ok(Some(info)) = &whole {
        check_info(info, bytes);
    }
}

/// Feeds `bytes` in segments of the given sizes until an outcome; checks the memory bound after each feed.
fn read(
    max_bytes: usize,
    sizes: &mut dyn Iterator<Item = usize>,
    bytes: &[u8],
) -> Result<Option<ClientHelloInfo>, HelloError> {
    let mut reader = ClientHelloReader::new(max_bytes);
    let mut at = 0;
    // Each round consumes at least one byte unless a size is 0; the bound covers a run of empty segments.
    for _ in 0..bytes.len().saturating_mul(2).saturating_add(64) {
        if at == bytes.len() {
            break;
        }
        let end = at
            .saturating_add(sizes.next().unwrap_or(usize::MAX))
            .min(bytes.len());
        let outcome = reader.feed(&bytes[at..end]);
        let (len, capacity) = reader.buffered();
        assert!(
            len <= max_bytes,
            "buffered {len} bytes over the {max_bytes} bound"
        );
        assert!(
            capacity <= 2 * max_bytes.max(8),
            "buffer capacity {capacity} for bound {max_bytes}"
        );
        at = end;
        match outcome {
            Ok(None) => {}
            done => return done,
        }
    }
    reader.feed(&bytes[at..])
}

/// Handshake bytes framed into handshake records of at most `chunk` payload bytes.
fn frame(handshake: &[u8], chunk: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(handshake.len() + 5 * (handshake.len() / chunk + 1));
    for part in handshake.chunks(chunk) {
        out.extend_from_slice(&[22, 3, 1]);
        out.extend_from_slice(&u16::try_from(part.len()).unwrap_or(u16::MAX).to_be_bytes());
        out.extend_from_slice(part);
    }
    out
}

/// A parsed hello: its SNI is what an independent walk of the same bytes finds, and ALPN stays bounded.
fn check_info(info: &ClientHelloInfo, records: &[u8]) {
    assert!(info.alpn.len() <= 16, "more than 16 ALPN protocols kept");
    let body = hello_body(records).expect("the reader parsed a hello the oracle cannot reassemble");
    let host = oracle_sni(&body).expect("the reader parsed a hello the oracle cannot walk");
    let want = host.map(|h| String::from_utf8_lossy(h).to_ascii_lowercase());
    assert_eq!(
        info.sni, want,
        "reported SNI differs from the server_name extension"
    );
    if let Some(sni) = &info.sni {
        assert!(!sni.is_empty() && sni.len() <= 253 && sni.is_ascii());
    }
}

/// A bounds-checked cursor for the oracle (deliberately separate from the reader's own parser).
struct Walk<'a>(&'a [u8]);

impl<'a> Walk<'a> {
    fn bytes(&mut self, n: usize) -> Option<&'a [u8]> {
        let head = self.0.get(..n)?;
        self.0 = &self.0[n..];
        Some(head)
    }
    fn vec(&mut self, width: usize) -> Option<&'a [u8]> {
        let len = self
            .bytes(width)?
            .iter()
            .fold(0usize, |n, &b| n << 8 | usize::from(b));
        self.bytes(len)
    }
}

/// Strips record headers until the handshake message is complete; returns the ClientHello body.
fn hello_body(records: &[u8]) -> Option<Vec<u8>> {
    let mut walk = Walk(records);
    let mut handshake = Vec::new();
    loop {
        if handshake.len() >= 4 {
            let len = handshake[1..4]
                .iter()
                .fold(0usize, |n, &b| n << 8 | usize::from(b));
            if handshake.len() >= 4 + len {
                handshake.truncate(4 + len);
                handshake.drain(..4);
                return Some(handshake);
            }
        }
        // A hello may end before its last record does (the reader stops there), so take what is present.
        let header = walk.bytes(5)?;
        let len = usize::from(u16::from_be_bytes([header[3], header[4]]));
        let take = len.min(walk.0.len());
        handshake.extend_from_slice(walk.bytes(take)?);
    }
}

/// `Some(Some(host))` when a server_name extension has a host_name entry (the first one), `Some(None)` when not.
fn oracle_sni(body: &[u8]) -> Option<Option<&[u8]>> {
    let mut hello = Walk(body);
    hello.bytes(2 + 32)?;
    hello.vec(1)?;
    hello.vec(2)?;
    hello.vec(1)?;
    if hello.0.is_empty() {
        return Some(None);
    }
    let mut exts = Walk(hello.vec(2)?);
    while !exts.0.is_empty() {
        let kind = exts.bytes(2)?;
        let data = exts.vec(2)?;
        if kind == [0, 0] {
            let mut list = Walk(Walk(data).vec(2)?);
            while !list.0.is_empty() {
                let name_type = list.bytes(1)?[0];
                let name = list.vec(2)?;
                if name_type == 0 {
                    return Some(Some(name));
                }
            }
            return Some(None);
        }
    }
    Some(None)
}
