use std::net::SocketAddr;

use proptest::prelude::*;

use super::*;
use crate::{encode_v1, encode_v2, encode_v2_local};

fn read_all(bytes: &[u8]) -> Result<Feed, HeaderError> {
    HeaderReader::new(DEFAULT_MAX_HEADER_BYTES).feed(bytes)
}

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

#[test]
fn a_v2_header_is_read_and_the_stream_after_it_is_left() {
    let src = addr("192.0.2.7:40000");
    let dst = addr("127.0.0.1:7000");
    let mut bytes = encode_v2(src, dst);
    let header_len = bytes.len();
    bytes.extend_from_slice(b"TOKEN");
    let feed = read_all(&bytes).unwrap();
    assert_eq!(feed.consumed, header_len);
    assert_eq!(feed.header.unwrap().source(), Some(src));
}

#[test]
fn a_v1_line_is_read_and_the_stream_after_it_is_left() {
    let src = addr("[2001:db8::7]:40000");
    let line = encode_v1(src, addr("[::1]:443"));
    let mut bytes = line.clone().into_bytes();
    bytes.extend_from_slice(&[0x16, 3, 1]);
    let feed = read_all(&bytes).unwrap();
    assert_eq!(feed.consumed, line.len());
    assert_eq!(feed.header.unwrap().source(), Some(src));
}

#[test]
fn local_and_unspec_keep_the_socket_address() {
    let feed = read_all(&encode_v2_local()).unwrap();
    assert_eq!(feed.header, Some(ProxyHeader::Local));
    let mut unspec = encode_v2_local().to_vec();
    unspec[12] = 0x21;
    assert_eq!(
        read_all(&unspec).unwrap().header,
        Some(ProxyHeader::Unknown)
    );
}

#[test]
fn tlvs_are_skipped_and_a_tlv_past_the_end_is_refused() {
    let src = addr("192.0.2.7:1");
    let mut bytes = encode_v2(src, addr("192.0.2.8:2"));
    // ALPN TLV "h2" and a NOOP TLV of length 0.
    bytes.extend_from_slice(&[0x01, 0, 2, b'h', b'2', 0x04, 0, 0]);
    let len = u16::try_from(bytes.len() - 16).unwrap();
    bytes[14..16].copy_from_slice(&len.to_be_bytes());
    assert_eq!(
        read_all(&bytes).unwrap().header.unwrap().source(),
        Some(src)
    );
    // The same header with the ALPN TLV claiming 3 bytes: it runs into the next TLV's end.
    let mut bad = bytes.clone();
    bad[16 + 12 + 2] = 6;
    assert_eq!(read_all(&bad), Err(HeaderError::V2Tlv));
}

#[test]
fn an_oversized_v2_header_is_refused_at_its_fixed_part() {
    let mut fixed = encode_v2(addr("192.0.2.7:1"), addr("192.0.2.8:2"));
    fixed.truncate(16);
    fixed[14..16].copy_from_slice(&u16::MAX.to_be_bytes());
    let mut r = HeaderReader::new(DEFAULT_MAX_HEADER_BYTES);
    let err = r.feed(&fixed).unwrap_err();
    assert_eq!(
        err,
        HeaderError::Oversized {
            len: MAX_HEADER_BYTES,
            max: DEFAULT_MAX_HEADER_BYTES
        }
    );
    assert_eq!(r.want(), 0);
}

#[test]
fn truncated_headers_wait_for_more_and_want_says_how_much() {
    let bytes = encode_v2(addr("[2001:db8::1]:1"), addr("[2001:db8::2]:2"));
    let mut r = HeaderReader::new(DEFAULT_MAX_HEADER_BYTES);
    assert_eq!(r.want(), 16);
    let feed = r.feed(&bytes[..20]).unwrap();
    assert_eq!((feed.consumed, feed.header), (20, None));
    assert_eq!(r.want(), bytes.len() - 20);
    let line = b"PROXY TCP4 192.0.2.1 192.0.2.2 1 2\r";
    assert_eq!(read_all(line).unwrap().header, None);
}

#[test]
fn non_headers_bad_versions_and_long_lines_are_refused() {
    assert_eq!(read_all(b"GET / HTTP/1.1\r\n"), Err(HeaderError::Missing));
    assert_eq!(read_all(&[0x16, 3, 1, 0, 0]), Err(HeaderError::Missing));
    // A token that happens to start like the signature is refused at its first odd byte.
    assert_eq!(read_all(b"\r\n\r\nX"), Err(HeaderError::Missing));
    let mut v3 = encode_v2_local();
    v3[12] = 0x30;
    assert_eq!(read_all(&v3), Err(HeaderError::V2Version { version: 3 }));
    let mut cmd = encode_v2_local();
    cmd[12] = 0x22;
    assert_eq!(read_all(&cmd), Err(HeaderError::V2Command { command: 2 }));
    let mut udp = encode_v2(addr("192.0.2.7:1"), addr("192.0.2.8:2"));
    udp[13] = 0x12;
    assert_eq!(
        read_all(&udp),
        Err(HeaderError::V2Unsupported { byte: 0x12 })
    );
    let mut short = encode_v2(addr("192.0.2.7:1"), addr("192.0.2.8:2"));
    short[13] = 0x21;
    assert_eq!(
        read_all(&short),
        Err(HeaderError::V2AddressTooShort { len: 12 })
    );
    let long = format!("PROXY UNKNOWN {}\r\n", "x".repeat(100));
    assert_eq!(read_all(long.as_bytes()), Err(HeaderError::V1TooLong));
}

#[test]
fn a_finished_reader_takes_nothing_more() {
    let bytes = encode_v2(addr("192.0.2.7:1"), addr("192.0.2.8:2"));
    let mut r = HeaderReader::new(DEFAULT_MAX_HEADER_BYTES);
    let first = r.feed(&bytes).unwrap();
    let again = r.feed(b"more").unwrap();
    assert_eq!(again.consumed, 0);
    assert_eq!(again.header, first.header);
}

fn any_addr() -> impl Strategy<Value = SocketAddr> {
    prop_oneof![
        (any::<[u8; 4]>(), any::<u16>()).prop_map(|(ip, p)| SocketAddr::from((ip, p))),
        (any::<[u8; 16]>(), any::<u16>()).prop_map(|(ip, p)| SocketAddr::from((ip, p))),
    ]
}

proptest! {
    #[test]
    fn arbitrary_bytes_never_panic_and_any_split_agrees(
        data in proptest::collection::vec(any::<u8>(), 0..600),
    ) {
        crate::fuzzing::proxy_header(&data);
    }

    #[test]
    fn headers_with_arbitrary_tails_agree_at_any_split(
        src in any_addr(), dst in any_addr(), v1 in any::<bool>(),
        sizes in proptest::collection::vec(1u8..40, 1..8),
        tail in proptest::collection::vec(any::<u8>(), 0..64),
    ) {
        let mut stream = if v1 { encode_v1(src, dst).into_bytes() } else { encode_v2(src, dst) };
        let header_len = stream.len();
        stream.extend_from_slice(&tail);
        let mut data = vec![u8::try_from(sizes.len()).unwrap()];
        data.extend_from_slice(&sizes);
        data.extend_from_slice(&stream);
        crate::fuzzing::proxy_header(&data);
        let feed = read_all(&stream).unwrap();
        prop_assert_eq!(feed.consumed, header_len);
        let got = feed.header.unwrap().source().unwrap();
        // Mixed families are sent as IPv6 (IPv4-mapped); the reader reports what was sent.
        let want = if src.is_ipv4() == dst.is_ipv4() {
            src
        } else {
            match src.ip() {
                std::net::IpAddr::V4(v4) => SocketAddr::new(v4.to_ipv6_mapped().into(), src.port()),
                std::net::IpAddr::V6(_) => src,
            }
        };
        prop_assert_eq!(got, want);
    }
}
