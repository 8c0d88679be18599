//! `hyper server run` reloads its listeners' certificates without a restart: after a reload the
//! gRPC server and the TLS gateway present the new certificate to new connections, while a
//! connection opened before keeps the one it was accepted with; a reload naming a missing key
//! file changes nothing and names the channel's key and the file.
#![allow(clippy::unwrap_used)]

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rustls_pki_types::{CertificateDer, ServerName};
use tandem_hyper::hyper_server::{HyperServer, Listeners};
use tandem_settings::HyperSettings;
use tandem_settings::hyper::{ChannelKind, ChannelSettings, GrpcServerSettings, Timeouts};
use tandem_testkit::hyper_node::{self, channel, listener, loopback};
use tandem_testkit::pki::TestPki;
use tokio_rustls::TlsConnector;

/// The leaf certificate a server at `addr` presents to hd-2 (ALPN `alpn`), and the connection.
async fn served(
    pki: &TestPki,
    addr: SocketAddr,
    alpn: &[u8],
) -> (
    CertificateDer<'static>,
    tokio_rustls::client::TlsStream<tokio::net::TcpStream>,
) {
    let tls =
        tandem_net::tls::client_config(&pki.client_tls_settings("hd-2", "hd-1"), &[alpn]).unwrap();
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let name = ServerName::try_from("hd-1").unwrap();
    let stream = TlsConnector::from(tls).connect(name, tcp).await.unwrap();
    let leaf = stream.get_ref().1.peer_certificates().unwrap()[0].clone();
    (leaf, stream)
}

fn der(path: &std::path::Path) -> CertificateDer<'static> {
    tandem_net::tls::load_certificates(path).unwrap().remove(0)
}

/// hd-1 with a gRPC server and a TLS gateway, both on `cert` / `key`.
fn settings(pki: &TestPki, cert: &std::path::Path, key: &std::path::Path) -> HyperSettings {
    let mut tls = pki.tls_settings("hd-1");
    tls.certificate_file = Some(cert.to_owned());
    tls.key_file = Some(key.to_owned());
    let mut gateway = tandem_settings::JsonRpcServerSettings {
        serving: Default::default(),
        bind_address: loopback(),
        path: "/jsonrpc".into(),
        cors: None,
        tls: Some(tls.clone()),
        tcp_rate_limits: Vec::new(),
    };
    gateway.tls.as_mut().unwrap().verify_client = false;
    let channels: Vec<ChannelSettings> = vec![
        channel(ChannelKind::GrpcServer(GrpcServerSettings {
            serving: Default::default(),
            bind_address: loopback(),
            tls,
            tcp_rate_limits: Vec::new(),
        })),
        channel(ChannelKind::JsonRpcServer(gateway.into())),
    ];
    let timeouts = Timeouts {
        call: Duration::from_secs(3),
        connect: Duration::from_secs(2),
    };
    // No sd runs: the directory refresh fails in the background, which the TLS layer never asks.
    let sd: SocketAddr = "127.0.0.1:9".parse().unwrap();
    hyper_node::api_settings(pki, sd, "hd-1", channels, timeouts)
}

#[tokio::test]
async fn a_reload_rotates_both_listeners_certificates_and_a_bad_one_changes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let pki = TestPki::generate(tmp.path(), &["hd-1", "hd-2", "sd-1"]).unwrap();
    let (grpc, gateway) = (listener().await, listener().await);
    let (grpc_addr, gateway_addr) = (grpc.local_addr().unwrap(), gateway.local_addr().unwrap());
    let start = settings(&pki, &pki.cert("hd-1"), &pki.key("hd-1"));
    let listeners = Listeners {
        grpc: Some(grpc.into()),
        jsonrpc: Some(gateway.into()),
    };
    let server = HyperServer::start(&start, listeners).unwrap();
    let (before, open) = served(&pki, grpc_addr, b"h2").await;
    assert_eq!(before, der(&pki.cert("hd-1")));

    let next = Arc::new(Mutex::new(settings(
        &pki,
        &pki.alt_cert("hd-1"),
        &pki.alt_key("hd-1"),
    )));
    let source = next.clone();
    let reloader = server.reloader(Arc::new(move || Ok(source.lock().unwrap().clone())));
    let applied = reloader.reload("test").await.unwrap();
    assert_eq!(
        applied,
        vec!["grpc_server.tls", "jsonrpc_server.tls", "log_level"]
    );
    let alt = der(&pki.alt_cert("hd-1"));
    assert_eq!(served(&pki, grpc_addr, b"h2").await.0, alt);
    assert_eq!(served(&pki, gateway_addr, b"http/1.1").await.0, alt);
    assert_eq!(
        open.get_ref().1.peer_certificates().unwrap()[0],
        before,
        "the open connection keeps its certificate"
    );

    let missing = tmp.path().join("missing.key");
    *next.lock().unwrap() = settings(&pki, &pki.cert("hd-1"), &missing);
    let err = reloader.reload("test").await.unwrap_err();
    assert_eq!(err.kind(), "tls");
    let text = err.to_string();
    assert!(text.starts_with("channels[0].tls: "), "{text}");
    assert!(text.contains(&missing.display().to_string()), "{text}");
    assert_eq!(
        served(&pki, gateway_addr, b"http/1.1").await.0,
        alt,
        "nothing changed"
    );
    server.shutdown().await;
}
