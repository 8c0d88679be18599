//! Real ClientHellos: from rustls (generated here) and from `openssl s_client` (captured in
//! tests/corpus/), parsed whole, byte by byte, and re-framed into many small records.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers outside #[test] fns

use std::sync::Arc;

use tandem_engine::clienthello::ClientHelloReader;

fn rustls_hello(sni: &str, alpn: &[&[u8]]) -> Vec<u8> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut cfg = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(rustls::RootCertStore::empty())
        .with_no_client_auth();
    cfg.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    let name = rustls::pki_types::ServerName::try_from(sni.to_owned()).unwrap();
    let mut conn = rustls::ClientConnection::new(Arc::new(cfg), name).unwrap();
    let mut out = Vec::new();
    conn.write_tls(&mut out).unwrap();
    out
}

/// Strips record headers and re-frames the handshake bytes into records of `chunk` bytes,
/// padding the key share area with extra records as a large post-quantum hello would need.
fn reframe(records: &[u8], chunk: usize) -> Vec<u8> {
    let mut hs = Vec::new();
    let mut rest = records;
    while rest.len() >= 5 {
        let len = u16::from_be_bytes([rest[3], rest[4]]) as usize;
        hs.extend_from_slice(&rest[5..5 + len]);
        rest = &rest[5 + len..];
    }
    let mut out = Vec::new();
    for part in hs.chunks(chunk) {
        out.extend_from_slice(&[22, 3, 1]);
        out.extend_from_slice(&(part.len() as u16).to_be_bytes());
        out.extend_from_slice(part);
    }
    out
}

/// (name, raw records, expected SNI, expected ALPN)
type Case = (String, Vec<u8>, &'static str, Vec<Vec<u8>>);

fn corpus() -> Vec<Case> {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/corpus");
    vec![
        (
            "rustls".into(),
            rustls_hello("svc.example.com", &[b"h2", b"http/1.1"]),
            "svc.example.com",
            vec![b"h2".to_vec(), b"http/1.1".to_vec()],
        ),
        (
            "openssl tls1.3".into(),
            std::fs::read(format!("{dir}/openssl_tls13_sni_alpn.bin")).unwrap(),
            "svc.internal-server.local",
            vec![b"h2".to_vec(), b"http/1.1".to_vec()],
        ),
        (
            "openssl tls1.2".into(),
            std::fs::read(format!("{dir}/openssl_tls12_sni.bin")).unwrap(),
            "example.com",
            vec![],
        ),
    ]
}

#[test]
fn real_hellos_parse_whole_split_and_reframed() {
    for (name, hello, sni, alpn) in corpus() {
        for chunk in [usize::MAX, 1, 7, 100] {
            let bytes = if chunk == usize::MAX {
                hello.clone()
            } else {
                reframe(&hello, chunk)
            };
            let mut r = ClientHelloReader::new(64 * 1024);
            let mut got = None;
            for seg in bytes.chunks(13) {
                if let Some(info) = r.feed(seg).unwrap() {
                    got = Some(info);
                    break;
                }
            }
            let info = got.unwrap_or_else(|| panic!("{name} chunk {chunk}: incomplete"));
            assert_eq!(info.sni.as_deref(), Some(sni), "{name} chunk {chunk}");
            assert_eq!(info.alpn, alpn, "{name} chunk {chunk}");
        }
    }
}
