//! The gateway over TLS with required client certificates (as hd-2's dev role), and CORS.
#![allow(clippy::unwrap_used)]

use tandem_testkit::hyper_node;

use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper_node::{Server, listener};
use tandem_hyper::hyper_server::Listeners;
use tandem_net::http::{ClientError, JsonRpcClient};
use tandem_settings::listeners::CorsSettings;
use tandem_settings::{HyperSettings, TlsSettings};
use tandem_testkit::pki::TestPki;

fn settings(
    dir: &std::path::Path,
    tls: Option<TlsSettings>,
    cors: Option<CorsSettings>,
) -> HyperSettings {
    hyper_node::gateway_settings(dir, tls, cors, Default::default())
}

#[tokio::test]
async fn the_gateway_serves_mtls_and_refuses_clients_without_a_certificate() {
    let tmp = tempfile::tempdir().unwrap();
    let pki = TestPki::generate(tmp.path(), &["hd-2"]).unwrap();
    let server = Server::start(
        settings(tmp.path(), Some(pki.tls_settings("hd-2")), None),
        Listeners {
            grpc: None,
            jsonrpc: Some(listener().await.into()),
        },
    );
    let url = format!("https://{}/jsonrpc", server.jsonrpc.unwrap());
    let client = |tls: TlsSettings| {
        let config = tandem_net::tls::client_config(&tls, &[b"http/1.1"]).unwrap();
        JsonRpcClient::new(&url, Some(config), Some("hd-2"), Duration::from_secs(5)).unwrap()
    };
    let with_cert = client(pki.client_tls_settings("hd-2", "hd-2"));
    let result = with_cert
        .call("hd-2._ping", serde_json::Map::new())
        .await
        .unwrap();
    assert_eq!(result["serverInfo"]["name"], "hd-2");

    let mut anonymous = pki.client_tls_settings("hd-2", "hd-2");
    anonymous.certificate_file = None;
    anonymous.key_file = None;
    let err = client(anonymous)
        .call("hd-2._ping", serde_json::Map::new())
        .await
        .unwrap_err();
    assert!(matches!(err, ClientError::Transport { .. }), "{err}");
    server.stop().await;
}

#[tokio::test]
async fn allowed_origins_get_cors_headers_and_preflights_are_answered() {
    let tmp = tempfile::tempdir().unwrap();
    let cors = CorsSettings {
        allowed_hosts: vec![regex::Regex::new("^http://localhost(:[0-9]+)?$").unwrap()],
        allowed_headers: vec!["X-Request-Id".into(), "Content-Type".into()],
        allowed_methods: vec!["POST".into(), "OPTIONS".into()],
    };
    let server = Server::start(
        settings(tmp.path(), None, Some(cors)),
        Listeners {
            grpc: None,
            jsonrpc: Some(listener().await.into()),
        },
    );
    let client: hyper_util::client::legacy::Client<_, Full<Bytes>> =
        hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
            .build_http();
    let preflight = |origin: &str| {
        http::Request::builder()
            .method("OPTIONS")
            .uri(server.url())
            .header("origin", origin)
            .header("access-control-request-headers", "content-type")
            .body(Full::new(Bytes::new()))
            .unwrap()
    };
    let response = client
        .request(preflight("http://localhost:8080"))
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let headers = response.headers();
    assert_eq!(
        headers["access-control-allow-origin"],
        "http://localhost:8080"
    );
    assert_eq!(
        headers["access-control-allow-headers"], "content-type, X-Request-Id",
        "the requested headers, then the configured ones not already asked for"
    );
    assert_eq!(headers["access-control-allow-methods"], "POST, OPTIONS");
    let response = client
        .request(preflight("http://evil.example"))
        .await
        .unwrap();
    assert!(
        response
            .headers()
            .get("access-control-allow-origin")
            .is_none()
    );
    server.stop().await;
}
