//! The private proxy's TerminateTLS mode (one-shot HTTPS server on the paired socket, to plain
//! HTTP or JSON-RPC upstreams, 502 when the upstream fails) and its announcements: persisted
//! across a restart and re-announced to the public proxy at start.
#![allow(clippy::unwrap_used)]

use crate::proxy_support;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use proxy_support::*;
use serde_json::json;
use tandem_control::http::JsonRpcClient;
use tandem_control::jsonrpc::params;
use tandem_control::proxy::PrivateProxy;
use tandem_control::settings::PrivateProxySettings;
use tandem_control::settings::proxy::ProxyClientSettings;
use tandem_control::settings::tls::TlsSettings;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

const DOMAIN: &str = "foo.internal-server.local";

/// A plain HTTP upstream answering `<method> <path> <body>` (one request per connection).
async fn upstream() -> (SocketAddr, JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            let mut req = Vec::new();
            let mut buf = [0u8; 4096];
            let head_end = loop {
                let n = s.read(&mut buf).await.unwrap_or(0);
                if n == 0 {
                    break None;
                }
                req.extend_from_slice(&buf[..n]);
                if let Some(i) = req.windows(4).position(|w| w == b"\r\n\r\n") {
                    break Some(i + 4);
                }
            };
            let Some(head_end) = head_end else { continue };
            let head = String::from_utf8_lossy(&req[..head_end]).to_string();
            let len: usize = head
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase()
                        .strip_prefix("content-length:")
                        .map(|v| v.trim().parse().unwrap())
                })
                .unwrap_or(0);
            while req.len() < head_end + len {
                let n = s.read(&mut buf).await.unwrap_or(0);
                if n == 0 {
                    break;
                }
                req.extend_from_slice(&buf[..n]);
            }
            let mut first = head.split_whitespace();
            let body = format!(
                "{} {} {}",
                first.next().unwrap_or(""),
                first.next().unwrap_or(""),
                String::from_utf8_lossy(&req[head_end..])
            );
            let response = format!(
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = s.write_all(response.as_bytes()).await;
        }
    });
    (addr, task)
}

/// Writes a PEM certificate and key for `DOMAIN` into `dir`; returns TLS settings serving it.
fn terminate_tls(dir: &Path) -> (TlsSettings, rustls_pki_types::CertificateDer<'static>) {
    let ck = rcgen::generate_simple_self_signed(vec![DOMAIN.to_owned()]).unwrap();
    let (cert, key) = (dir.join("internal.crt"), dir.join("internal.key"));
    std::fs::write(&cert, ck.cert.pem()).unwrap();
    std::fs::write(&key, ck.signing_key.serialize_pem()).unwrap();
    let settings = TlsSettings {
        ca_certificate_files: vec![cert.clone()],
        certificate_file: Some(cert),
        key_file: Some(key),
        server_name: None,
        verify_client: false,
        request_client_cert: false,
        insecure_skip_verify: false,
    };
    (settings, ck.cert.der().clone())
}

struct Private {
    client: JsonRpcClient,
    stop: oneshot::Sender<()>,
    task: JoinHandle<()>,
}

async fn start_private(settings: &PrivateProxySettings) -> Private {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let private = PrivateProxy::start(settings, listener).await.unwrap();
    let url = format!("http://{}/jsonrpc", private.jsonrpc_addr());
    let (stop, rx) = oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        private
            .serve(async {
                let _ = rx.await;
            })
            .await
            .unwrap();
    });
    Private {
        client: JsonRpcClient::new(&url, None, None, CALL_TIMEOUT).unwrap(),
        stop,
        task,
    }
}

impl Private {
    async fn stop(self) {
        drop(self.client);
        let _ = self.stop.send(());
        self.task.await.unwrap();
    }
}

fn app() -> serde_json::Value {
    client_info(&with_proxy_settings(
        entry("internal-server", &[], &[]),
        PRIVATE,
        &[".internal-server.local"],
    ))
}

/// Plays the public proxy: a one-connection pairing port; `incomingConnection` makes the
/// private proxy dial it and write `token`; returns the socket after checking the token.
async fn incoming(private: &JsonRpcClient) -> TcpStream {
    let pairing = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let token = [9u8; 32];
    let r = private
        .call(
            "incomingConnection",
            params([
                ("domain", json!(DOMAIN)),
                ("token", json!(STANDARD.encode(token))),
                ("endpoint", json!(pairing.local_addr().unwrap().to_string())),
                ("_client", client_info(&entry(PUBLIC, &[], &[]))),
            ]),
        )
        .await
        .unwrap();
    assert_eq!(r, json!({"message": "ok"}));
    let (mut s, _) = pairing.accept().await.unwrap();
    let mut got = [0u8; 32];
    s.read_exact(&mut got).await.unwrap();
    assert_eq!(got, token);
    s
}

/// An HTTPS request over `paired` (TLS to the private proxy's terminating server).
async fn https(
    paired: TcpStream,
    root: &rustls_pki_types::CertificateDer<'static>,
    request: &str,
) -> String {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(root.clone()).unwrap();
    let config = rustls::ClientConfig::builder_with_provider(tandem_control::tls::provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let name = rustls_pki_types::ServerName::try_from(DOMAIN.to_owned()).unwrap();
    let mut tls = connector.connect(name, paired).await.unwrap();
    tls.write_all(request.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), tls.read_to_end(&mut out))
        .await
        .expect("the one-shot server closes after the first response")
        .ok();
    String::from_utf8_lossy(&out).into_owned()
}

/// Announces `DOMAIN` to the public proxy. The fake Hyper has no route to a public proxy here,
/// so the remote call fails (404, passed through); the announcement is kept and persisted
/// anyway, as in the original, and re-announced periodically.
async fn announced(private: &Private) {
    let err = private
        .client
        .call(
            "announceConnection",
            params([
                ("proxy", json!(PUBLIC)),
                ("domain", json!(DOMAIN)),
                ("_client", app()),
            ]),
        )
        .await
        .unwrap_err();
    assert!(err.to_string().contains("404"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn terminate_tls_forwards_one_request_to_http_and_jsonrpc_upstreams() {
    let dir = tempfile::tempdir().unwrap();
    let hyper = RunningHyper::start(PRIVATE, Vec::new()).await;
    let (up, up_task) = upstream().await;
    let (tls, root) = terminate_tls(dir.path());

    // Plain HTTP upstream.
    let mut settings = private_settings(dir.path(), hyper.addr, up);
    settings.internal_endpoint.tls = Some(tls.clone());
    let private = start_private(&settings).await;
    announced(&private).await;
    let paired = incoming(&private.client).await;
    let out = https(
        paired,
        &root,
        "POST /a/b?x=1 HTTP/1.1\r\nHost: foo\r\nContent-Length: 3\r\n\r\nabc",
    )
    .await;
    assert!(out.starts_with("HTTP/1.1 200"), "{out}");
    assert!(out.ends_with("POST /a/b?x=1 abc"), "{out}");
    private.stop().await;

    // JSON-RPC upstream: only jsonrpc_path is served.
    let dir2 = tempfile::tempdir().unwrap();
    let mut settings = private_settings(dir2.path(), hyper.addr, up);
    settings.internal_endpoint.tls = Some(tls.clone());
    settings.internal_endpoint.jsonrpc_client = Some(ProxyClientSettings {
        endpoint: format!("http://{up}/rpc"),
        tls: None,
    });
    let private = start_private(&settings).await;
    announced(&private).await;
    let out = https(incoming(&private.client).await, &root, "POST /jsonrpc HTTP/1.1\r\nHost: foo\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}").await;
    assert!(out.ends_with("POST /rpc {}"), "{out}");
    let out = https(
        incoming(&private.client).await,
        &root,
        "GET /other HTTP/1.1\r\nHost: foo\r\n\r\n",
    )
    .await;
    assert!(out.starts_with("HTTP/1.1 404"), "{out}");
    private.stop().await;

    // Upstream down: 502.
    let dir3 = tempfile::tempdir().unwrap();
    let closed = TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap()
        .local_addr()
        .unwrap();
    let mut settings = private_settings(dir3.path(), hyper.addr, closed);
    settings.internal_endpoint.tls = Some(tls);
    let private = start_private(&settings).await;
    announced(&private).await;
    let out = https(
        incoming(&private.client).await,
        &root,
        "GET / HTTP/1.1\r\nHost: foo\r\n\r\n",
    )
    .await;
    assert!(out.starts_with("HTTP/1.1 502"), "{out}");
    private.stop().await;
    up_task.abort();
    hyper.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn announcements_persist_and_are_reannounced_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let hyper = RunningHyper::start(PRIVATE, Vec::new()).await;
    let settings = private_settings(dir.path(), hyper.addr, "127.0.0.1:1".parse().unwrap());
    let private = start_private(&settings).await;
    announced(&private).await;
    let before = hyper
        .hyper
        .calls_to("public-proxy-1.ga.announceConnections");
    assert!(before >= 1);
    private.stop().await;

    let private = start_private(&settings).await;
    let live = private
        .client
        .call("getAnnouncements", params([]))
        .await
        .unwrap();
    assert_eq!(live[0]["domain"], DOMAIN);
    assert_eq!(live[0]["proxy"], PUBLIC);
    eventually("re-announced at start", || {
        hyper
            .hyper
            .calls_to("public-proxy-1.ga.announceConnections")
            > before
    })
    .await;
    private.stop().await;
    hyper.stop().await;
}
