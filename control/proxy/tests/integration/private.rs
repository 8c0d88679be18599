//! The private proxy's TerminateTLS mode (one-shot HTTPS server on the paired socket, to plain
//! HTTP or JSON-RPC upstreams, 502 when the upstream fails) and its announcements: persisted
//! across a restart and re-announced to the public proxy at start.
#![allow(clippy::unwrap_used)]

use crate::support::private::{DOMAIN, Private, terminate_tls, tls_to_domain};
use crate::support::proxy;

use std::net::SocketAddr;
use std::time::Duration;

use proxy::*;
use serde_json::json;
use tandem_net::jsonrpc::params;
use tandem_proxy::settings::ProxyClientSettings;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

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

/// Plays the public proxy: a one-connection pairing port; `incomingConnection` makes the
/// private proxy dial it and write `token`; returns the socket after checking the token.
async fn incoming(private: &Private) -> TcpStream {
    let pairing = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let token = [9u8; 32];
    let r = private
        .incoming(pairing.local_addr().unwrap(), token)
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
    let mut tls = tls_to_domain(paired, root).await;
    tls.write_all(request.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), tls.read_to_end(&mut out))
        .await
        .expect("the one-shot server closes after the first response")
        .ok();
    String::from_utf8_lossy(&out).into_owned()
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
    let private = Private::start(&settings, false).await;
    private.announce().await;
    let paired = incoming(&private).await;
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
        proxy_url: None,
    });
    let private = Private::start(&settings, false).await;
    private.announce().await;
    let out = https(incoming(&private).await, &root, "POST /jsonrpc HTTP/1.1\r\nHost: foo\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}").await;
    assert!(out.ends_with("POST /rpc {}"), "{out}");
    let out = https(
        incoming(&private).await,
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
    let private = Private::start(&settings, false).await;
    private.announce().await;
    let out = https(
        incoming(&private).await,
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
    let private = Private::start(&settings, false).await;
    private.announce().await;
    let before = hyper
        .hyper
        .calls_to("public-proxy-1.ga.announceConnections");
    assert!(before >= 1);
    private.stop().await;

    let private = Private::start(&settings, false).await;
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
