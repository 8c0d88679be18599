//! The PROXY protocol (HAProxy's `proxy-protocol.txt`, versions 1 and 2), sans-IO: a load balancer
//! in front of a listener writes one header before the client's bytes, naming the client's address.
//!
//! - [`HeaderReader`]: an incremental reader of one inbound header (v1 text or v2 binary, told apart
//!   by their signatures), bounded in bytes, that never takes a byte past the header (the bytes after
//!   it belong to the stream: a token, a ClientHello, a TLS handshake). TLVs of v2 are walked for
//!   bounds and skipped. The caller applies its own deadline around the reads.
//! - [`ProxyHeader`]: what a header says ([`ProxyHeader::source`] is the address to count the
//!   connection under, or `None` to keep the socket's own).
//! - [`encode_v2`] / [`encode_v1`]: the header we write when we are the proxy (the private proxy in
//!   front of its backends, and tests).
//! - [`looks_like_header`]: whether the first bytes of a stream are a PROXY signature (a header from
//!   a source that is not trusted to send one is refused and counted as such).
//!
//! No sockets, no clocks: races and splits are plain unit tests, property tests and a fuzz target.

mod encode;
mod error;
pub mod fuzzing;
mod header;
mod reader;
mod v1;
mod v2;

pub use encode::{encode_v1, encode_v2, encode_v2_local};
pub use error::HeaderError;
pub use header::ProxyHeader;
pub use reader::{DEFAULT_MAX_HEADER_BYTES, HeaderReader, MAX_HEADER_BYTES, MIN_HEADER_BYTES};
pub use v1::{V1_MAX_BYTES, V1_PREFIX};
pub use v2::{V2_FIXED_BYTES, V2_SIGNATURE};

/// Whether `first` (the first bytes a connection sent) starts like a PROXY header: the v1 prefix
/// `PROXY ` or the v2 signature, or, when `first` is shorter than those, a prefix of one of them.
/// An empty slice is not a header.
pub fn looks_like_header(first: &[u8]) -> bool {
    let starts = |sig: &[u8]| {
        let n = first.len().min(sig.len());
        n > 0 && first[..n] == sig[..n]
    };
    starts(V1_PREFIX) || starts(&V2_SIGNATURE)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_are_recognised_and_other_bytes_are_not() {
        assert!(looks_like_header(b"PROXY TCP4 1.2.3.4"));
        assert!(looks_like_header(&V2_SIGNATURE));
        assert!(looks_like_header(b"PRO"));
        assert!(!looks_like_header(b""));
        assert!(!looks_like_header(b"GET / HTTP/1.1\r\n"));
        assert!(!looks_like_header(&[0x16, 0x03, 0x01]));
    }
}
