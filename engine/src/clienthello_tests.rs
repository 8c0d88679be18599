use super::*;
use proptest::prelude::*;

fn vec16(v: &[u8]) -> Vec<u8> {
    let mut out = (v.len() as u16).to_be_bytes().to_vec();
    out.extend_from_slice(v);
    out
}

/// A ClientHello handshake message with SNI, ALPN and a padding-like extension of `pad` bytes
/// (standing in for a large post-quantum key share).
pub(crate) fn build_hello(sni: Option<&str>, alpn: &[&[u8]], pad: usize) -> Vec<u8> {
    let mut body = vec![3, 3];
    body.extend_from_slice(&[7; 32]);
    body.push(0);
    body.extend(vec16(&[0x13, 0x01, 0x13, 0x02]));
    body.extend_from_slice(&[1, 0]);
    let mut exts = Vec::new();
    if let Some(host) = sni {
        let mut entry = vec![0];
        entry.extend(vec16(host.as_bytes()));
        exts.extend_from_slice(&[0, 0]);
        exts.extend(vec16(&vec16(&entry)));
    }
    if !alpn.is_empty() {
        let mut list = Vec::new();
        for p in alpn {
            list.push(p.len() as u8);
            list.extend_from_slice(p);
        }
        exts.extend_from_slice(&[0, 16]);
        exts.extend(vec16(&vec16(&list)));
    }
    exts.extend_from_slice(&[0, 51]);
    exts.extend(vec16(&vec![0x42; pad]));
    body.extend(vec16(&exts));
    let mut hs = vec![CLIENT_HELLO];
    hs.extend_from_slice(&(body.len() as u32).to_be_bytes()[1..]);
    hs.extend(body);
    hs
}

/// Frames handshake bytes into records of at most `chunk` bytes each.
pub(crate) fn frame(hs: &[u8], chunk: usize) -> Vec<u8> {
    let mut out = Vec::new();
    for part in hs.chunks(chunk.clamp(1, MAX_RECORD)) {
        out.extend_from_slice(&[HANDSHAKE, 3, 1]);
        out.extend_from_slice(&(part.len() as u16).to_be_bytes());
        out.extend_from_slice(part);
    }
    out
}

fn parse_all(bytes: &[u8], max: usize) -> Result<Option<ClientHelloInfo>, HelloError> {
    ClientHelloReader::new(max).feed(bytes)
}

#[test]
fn reads_sni_and_alpn() {
    let hello = frame(
        &build_hello(Some("Foo.Example.com"), &[b"h2", b"http/1.1"], 10),
        1 << 14,
    );
    let info = parse_all(&hello, 65536).unwrap().unwrap();
    assert_eq!(info.sni.as_deref(), Some("foo.example.com"));
    assert_eq!(info.alpn, vec![b"h2".to_vec(), b"http/1.1".to_vec()]);
}

#[test]
fn large_key_share_over_several_records_one_byte_at_a_time() {
    let hello = frame(&build_hello(Some("pq.example"), &[], 9000), 1000);
    let mut r = ClientHelloReader::new(65536);
    let mut got = None;
    for b in &hello {
        if let Some(info) = r.feed(std::slice::from_ref(b)).unwrap() {
            got = Some(info);
        }
    }
    assert_eq!(got.unwrap().sni.as_deref(), Some("pq.example"));
}

#[test]
fn bound_is_enforced() {
    let hello = frame(&build_hello(Some("a.b"), &[], 20_000), 1 << 14);
    assert_eq!(parse_all(&hello, 16 * 1024 + 5), Err(HelloError::TooLarge));
    assert!(parse_all(&hello, 65536).unwrap().is_some());
}

#[test]
fn refusals() {
    assert_eq!(
        parse_all(b"GET / HTTP/1.1\r\n", 65536),
        Err(HelloError::NotHandshake)
    );
    assert_eq!(
        parse_all(&frame(&[2, 0, 0, 0], 100), 65536),
        Err(HelloError::NotClientHello)
    );
    let bad = frame(&build_hello(Some("bad..name"), &[], 0), 1 << 14);
    assert_eq!(parse_all(&bad, 65536), Err(HelloError::BadServerName));
    let bad = frame(&build_hello(Some("-x.com"), &[], 0), 1 << 14);
    assert_eq!(parse_all(&bad, 65536), Err(HelloError::BadServerName));
    let no_sni = frame(&build_hello(None, &[], 0), 1 << 14);
    assert_eq!(parse_all(&no_sni, 65536).unwrap().unwrap().sni, None);
}

#[test]
fn one_byte_records_can_push_a_hello_past_the_bound() {
    // ~11 KB of hello in 1-byte records is ~66 KB on the wire (found by the property below).
    let hello = frame(
        &build_hello(Some("svc.internal-server.local"), &[b"h2"], 10_827),
        1,
    );
    assert!(hello.len() > 65536);
    assert_eq!(parse_all(&hello, 65536), Err(HelloError::TooLarge));
    assert!(parse_all(&hello, hello.len()).unwrap().is_some());
}

proptest! {
    #[test]
    fn any_segmentation_and_record_framing_parses(
        pad in 0usize..20_000,
        chunk in 1usize..(1 << 14),
        cuts in prop::collection::vec(1usize..4000, 0..20),
    ) {
        const BOUND: usize = 65536;
        let hello = frame(&build_hello(Some("svc.internal-server.local"), &[b"h2"], pad), chunk);
        let mut r = ClientHelloReader::new(BOUND);
        let mut rest: &[u8] = &hello;
        let mut outcome = Ok(None);
        for c in cuts.into_iter().chain(std::iter::once(usize::MAX)) {
            let (seg, tail) = rest.split_at(c.min(rest.len()));
            rest = tail;
            outcome = r.feed(seg);
            if !matches!(outcome, Ok(None)) {
                break;
            }
        }
        // The bound counts bytes on the wire, record headers included: small records (5 bytes
        // of header each) can push a hello past it, and then it is refused, never misparsed.
        if hello.len() <= BOUND {
            prop_assert_eq!(
                outcome.unwrap().and_then(|i| i.sni),
                Some("svc.internal-server.local".to_owned())
            );
        } else {
            prop_assert_eq!(outcome, Err(HelloError::TooLarge));
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..3000)) {
        let _ = parse_all(&bytes, 20_000);
        let mut framed = vec![HANDSHAKE, 3, 3];
        framed.extend_from_slice(&(bytes.len() as u16).to_be_bytes());
        framed.extend_from_slice(&bytes);
        let _ = parse_all(&framed, 20_000);
    }

    #[test]
    fn truncated_hello_never_completes(cut in 0usize..300) {
        let hello = frame(&build_hello(Some("x.y"), &[b"h2"], 50), 1 << 14);
        let cut = cut.min(hello.len() - 1);
        prop_assert_eq!(parse_all(&hello[..cut], 65536), Ok(None));
    }
}
