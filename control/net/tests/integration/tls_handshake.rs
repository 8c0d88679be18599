//! Real tokio-rustls handshakes on 127.0.0.1:0 with configs built from `TlsSettings`.

// Test helpers outside #[test] fns are not covered by clippy.toml's allow-unwrap-in-tests.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use rustls_pki_types::{CertificateDer, ServerName};
use tandem_net::tls::{certificate_names, client_config, fingerprint, peer_leaf, server_config};
use tandem_settings::tls::TlsSettings;
use tandem_testkit::pki::TestPki;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::{TlsAcceptor, TlsConnector};

/// What the server saw of one connection.
struct ServerSide {
    peer: Option<CertificateDer<'static>>,
    alpn: Option<Vec<u8>>,
}

/// What the client saw: the server's leaf, or the error that ended the exchange.
type ClientSide = Result<CertificateDer<'static>, String>;

/// Serves one connection with `server`, dials it with `client` (verifying `name`), and exchanges
/// one byte each way so a rejected client certificate surfaces on both sides (TLS 1.3 sends
/// the client's certificate after the client considers the handshake done).
async fn exchange(
    server: Arc<rustls::ServerConfig>,
    client: Arc<rustls::ClientConfig>,
    name: &str,
) -> (Result<ServerSide, String>, ClientSide) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server_task = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        let mut tls = TlsAcceptor::from(server)
            .accept(tcp)
            .await
            .map_err(|e| e.to_string())?;
        let mut byte = [0u8; 1];
        tls.read_exact(&mut byte).await.map_err(|e| e.to_string())?;
        tls.write_all(b"s").await.map_err(|e| e.to_string())?;
        tls.flush().await.map_err(|e| e.to_string())?;
        let (_, conn) = tls.get_ref();
        Ok(ServerSide {
            peer: peer_leaf(conn),
            alpn: conn.alpn_protocol().map(<[u8]>::to_vec),
        })
    });
    let client_result = async {
        let tcp = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
        let mut tls = TlsConnector::from(client)
            .connect(ServerName::try_from(name.to_owned()).unwrap(), tcp)
            .await
            .map_err(|e| e.to_string())?;
        tls.write_all(b"c").await.map_err(|e| e.to_string())?;
        let mut byte = [0u8; 1];
        tls.read_exact(&mut byte).await.map_err(|e| e.to_string())?;
        let (_, conn) = tls.get_ref();
        peer_leaf(conn).ok_or_else(|| "no server certificate".to_owned())
    }
    .await;
    let timeout = std::time::Duration::from_secs(10);
    let server_result = tokio::time::timeout(timeout, server_task)
        .await
        .expect("server side finished within 10 s")
        .unwrap();
    (server_result, client_result)
}

fn pki(dir: &std::path::Path) -> TestPki {
    TestPki::generate(dir, &["hd-1", "hd-2"]).unwrap()
}

#[tokio::test]
async fn mutual_tls_succeeds_and_both_sides_see_the_pinned_leaf() {
    let dir = tempfile::tempdir().unwrap();
    let pki = pki(dir.path());
    let server = server_config(&pki.tls_settings("hd-2"), &[b"h2", b"http/1.1"]).unwrap();
    let client = client_config(&pki.client_tls_settings("hd-1", "hd-2"), &[b"h2"]).unwrap();
    let (server_side, client_side) = exchange(server, client, "hd-2").await;
    let server_side = server_side.unwrap();
    let client_leaf = server_side.peer.expect("client certificate");
    assert_eq!(fingerprint(&client_leaf), pki.fingerprint("hd-1").unwrap());
    assert_eq!(
        certificate_names(&client_leaf),
        ["hd-1", "hd-1", "*.hd-1.local"]
    );
    assert_eq!(server_side.alpn.as_deref(), Some(&b"h2"[..]));
    let server_leaf = client_side.unwrap();
    assert_eq!(fingerprint(&server_leaf), pki.fingerprint("hd-2").unwrap());
}

#[tokio::test]
async fn a_client_certificate_from_a_foreign_ca_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let pki = pki(&dir.path().join("ours"));
    let foreign = pki_foreign(&dir.path().join("theirs"));
    let server = server_config(&pki.tls_settings("hd-2"), &[]).unwrap();
    // Trusts our root (so the server verifies) but presents a certificate from another CA.
    let settings = TlsSettings {
        certificate_file: Some(foreign.cert("hd-1")),
        key_file: Some(foreign.key("hd-1")),
        ..pki.client_tls_settings("hd-1", "hd-2")
    };
    let client = client_config(&settings, &[]).unwrap();
    let (server_side, client_side) = exchange(server, client, "hd-2").await;
    let err = server_side
        .err()
        .expect("server refuses the foreign certificate");
    // Same subject names as ours, so webpki finds our root by name and the signature fails.
    assert!(err.contains("invalid peer certificate"), "{err}");
    assert!(client_side.is_err());
}

fn pki_foreign(dir: &std::path::Path) -> TestPki {
    TestPki::generate(dir, &["hd-1"]).unwrap()
}

#[tokio::test]
async fn a_client_without_a_certificate_is_refused_when_verify_client() {
    let dir = tempfile::tempdir().unwrap();
    let pki = pki(dir.path());
    let server = server_config(&pki.tls_settings("hd-2"), &[]).unwrap();
    let settings = TlsSettings {
        certificate_file: None,
        key_file: None,
        ..pki.client_tls_settings("hd-1", "hd-2")
    };
    let (server_side, client_side) =
        exchange(server, client_config(&settings, &[]).unwrap(), "hd-2").await;
    let err = server_side
        .err()
        .expect("server requires a client certificate");
    assert!(
        err.contains("NoCertificatesPresented") || err.contains("certificate"),
        "{err}"
    );
    assert!(client_side.is_err());
}

#[tokio::test]
async fn request_client_cert_allows_anonymous_clients_but_verifies_presented_ones() {
    let dir = tempfile::tempdir().unwrap();
    let pki = pki(dir.path());
    let server_settings = TlsSettings {
        verify_client: false,
        request_client_cert: true,
        ..pki.tls_settings("hd-2")
    };
    let anonymous = TlsSettings {
        certificate_file: None,
        key_file: None,
        ..pki.client_tls_settings("hd-1", "hd-2")
    };
    let server = server_config(&server_settings, &[]).unwrap();
    let (server_side, client_side) = exchange(
        server.clone(),
        client_config(&anonymous, &[]).unwrap(),
        "hd-2",
    )
    .await;
    assert!(server_side.unwrap().peer.is_none());
    client_side.unwrap();

    let (server_side, _) = exchange(
        server.clone(),
        client_config(&pki.client_tls_settings("hd-1", "hd-2"), &[]).unwrap(),
        "hd-2",
    )
    .await;
    let peer = server_side
        .unwrap()
        .peer
        .expect("presented certificate is kept");
    assert_eq!(fingerprint(&peer), pki.fingerprint("hd-1").unwrap());

    let foreign = pki_foreign(&dir.path().join("theirs"));
    let settings = TlsSettings {
        certificate_file: Some(foreign.cert("hd-1")),
        key_file: Some(foreign.key("hd-1")),
        ..pki.client_tls_settings("hd-1", "hd-2")
    };
    let (server_side, _) = exchange(server, client_config(&settings, &[]).unwrap(), "hd-2").await;
    assert!(
        server_side.is_err(),
        "a presented foreign certificate is still refused"
    );
}

#[tokio::test]
async fn without_client_auth_no_certificate_is_requested() {
    let dir = tempfile::tempdir().unwrap();
    let pki = pki(dir.path());
    let server_settings = TlsSettings {
        verify_client: false,
        ..pki.tls_settings("hd-2")
    };
    let server = server_config(&server_settings, &[]).unwrap();
    let client = client_config(&pki.client_tls_settings("hd-1", "hd-2"), &[]).unwrap();
    let (server_side, _) = exchange(server, client, "hd-2").await;
    assert!(server_side.unwrap().peer.is_none());
}

#[tokio::test]
async fn the_client_refuses_a_server_with_the_wrong_name_unless_insecure() {
    let dir = tempfile::tempdir().unwrap();
    let pki = pki(dir.path());
    let server = server_config(&pki.tls_settings("hd-2"), &[]).unwrap();
    let client = client_config(&pki.client_tls_settings("hd-1", "hd-1"), &[]).unwrap();
    let (_, client_side) = exchange(server.clone(), client, "hd-1").await;
    let err = client_side.expect_err("hd-2's certificate is not valid for hd-1");
    assert!(
        err.contains("NotValidForName") || err.contains("name"),
        "{err}"
    );

    // A foreign trust store also fails ...
    let foreign = pki_foreign(&dir.path().join("theirs"));
    let settings = TlsSettings {
        ca_certificate_files: vec![foreign.root_cert()],
        ..pki.client_tls_settings("hd-1", "hd-2")
    };
    let (_, client_side) = exchange(
        server.clone(),
        client_config(&settings, &[]).unwrap(),
        "hd-2",
    )
    .await;
    assert!(client_side.is_err());

    // ... unless verification is switched off.
    let insecure = TlsSettings {
        insecure_skip_verify: true,
        ..settings
    };
    let (server_side, client_side) =
        exchange(server, client_config(&insecure, &[]).unwrap(), "hd-1").await;
    server_side.unwrap();
    assert_eq!(
        fingerprint(&client_side.unwrap()),
        pki.fingerprint("hd-2").unwrap()
    );
}

#[tokio::test]
async fn a_tls12_only_client_is_served() {
    let dir = tempfile::tempdir().unwrap();
    let pki = pki(dir.path());
    let server = server_config(&pki.tls_settings("hd-2"), &[]).unwrap();
    let roots = tandem_net::tls::load_roots(&[pki.root_cert()]).unwrap();
    let certs = tandem_net::tls::load_certificates(&pki.cert("hd-1")).unwrap();
    let key = tandem_net::tls::load_private_key(&pki.key("hd-1")).unwrap();
    let client = rustls::ClientConfig::builder_with_provider(tandem_net::tls::provider())
        .with_protocol_versions(&[&rustls::version::TLS12])
        .unwrap()
        .with_root_certificates(roots)
        .with_client_auth_cert(certs, key)
        .unwrap();
    let (server_side, client_side) = exchange(server, Arc::new(client), "hd-2").await;
    assert!(server_side.unwrap().peer.is_some());
    client_side.unwrap();
}

#[test]
fn a_certificate_that_does_not_match_its_key_is_a_config_error() {
    let dir = tempfile::tempdir().unwrap();
    let pki = pki(dir.path());
    let settings = TlsSettings {
        key_file: Some(pki.alt_key("hd-2")),
        ..pki.tls_settings("hd-2")
    };
    let err = server_config(&settings, &[]).unwrap_err();
    assert_eq!(err.kind(), "rustls");
    assert!(err.to_string().contains("hd-2-alt.key"), "{err}");
}
