//! The serving kit's deadlines, each cut-off tested with a short deadline (completion bounds are
//! generous): handshake, first request, keep-alive idleness, slow-drip headers and bodies, and
//! HTTP/2 streams whose bodies never end. A legitimate caller is served while they run.
#![allow(clippy::unwrap_used)]

use crate::support::kit::*;
use tandem_testkit::hostile::*;

use std::time::{Duration, Instant};

use serde_json::json;
use tokio::io::AsyncWriteExt;

#[tokio::test]
async fn a_silent_connection_is_cut_at_the_handshake_deadline() {
    let kit = Kit::start(short(|c| c.deadlines.handshake = SHORT)).await;
    let mut silent = connect_from(src(2), kit.addr).await.unwrap();
    let started = Instant::now();
    closed_by_server(&mut silent).await.unwrap();
    assert!(started.elapsed() >= SHORT - Duration::from_millis(50));
    assert_eq!(kit.count("handshake_timeout"), 1);
    kit.stop().await;
}

#[tokio::test]
async fn an_idle_connection_after_the_handshake_is_cut_at_the_first_request_deadline() {
    let kit = Kit::start(short(|c| c.deadlines.first_request = SHORT)).await;
    let mut idle = tls_from(src(2), kit.addr, kit.client.clone(), "srv")
        .await
        .unwrap();
    let started = Instant::now();
    closed_by_server(&mut idle).await.unwrap();
    assert!(started.elapsed() >= SHORT - Duration::from_millis(50));
    assert_eq!(kit.count("first_request_timeout"), 1);
    kit.stop().await;
}

#[tokio::test]
async fn a_keepalive_connection_is_cut_after_the_idle_timeout_not_before() {
    let kit = Kit::start(short(|c| c.deadlines.idle = Duration::from_secs(1))).await;
    let mut caller = Caller::connect(src(2), kit.addr, kit.client.clone(), "srv")
        .await
        .unwrap();
    // Requests back to back for longer than the idle timeout: the connection stays, since the
    // clock runs from the last answered request, not from the connection's start.
    let busy = Instant::now();
    while busy.elapsed() < Duration::from_millis(1500) {
        assert_eq!(caller.call("ping", json!({})).await.unwrap().0, 200);
    }
    // Then it idles: the server closes it, and counts why.
    let idle = Instant::now();
    caller.closed().await;
    assert!(idle.elapsed() >= Duration::from_millis(950));
    assert_eq!(kit.count("idle_timeout"), 1);
    kit.stop().await;
}

#[tokio::test]
async fn slow_drip_headers_are_cut_while_others_are_served() {
    let kit = Kit::start(short(|c| c.deadlines.header = SHORT)).await;
    let mut drip = tls_from(src(2), kit.addr, kit.client.clone(), "srv")
        .await
        .unwrap();
    let dripping = tokio::spawn(async move {
        // The attack's pace: one header byte every 100 ms (the attack, not a wait for readiness).
        let mut pace = tokio::time::interval(Duration::from_millis(100));
        for byte in b"POST /jsonrpc HTTP/1.1\r\nHost: x\r\nX-Slow: "
            .iter()
            .cycle()
            .take(200)
        {
            pace.tick().await;
            if drip.write_all(&[*byte]).await.is_err() || drip.flush().await.is_err() {
                return true;
            }
        }
        false
    });
    kit.legit_call_from(1).await;
    let cut = tokio::time::timeout(COMPLETES, dripping)
        .await
        .unwrap()
        .unwrap();
    assert!(cut, "the dripping client was never cut");
    kit.stop().await;
}

#[tokio::test]
async fn a_slow_drip_body_gets_408_while_others_are_served() {
    let kit = Kit::start(short(|c| c.deadlines.body = SHORT)).await;
    let mut drip = tls_from(src(2), kit.addr, kit.client.clone(), "srv")
        .await
        .unwrap();
    drip.write_all(
        b"POST /jsonrpc HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{",
    )
    .await
    .unwrap();
    drip.flush().await.unwrap();
    kit.legit_call_from(1).await;
    let mut answer = Vec::new();
    let read = async {
        use tokio::io::AsyncReadExt;
        let mut buf = [0u8; 1024];
        loop {
            match drip.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => answer.extend_from_slice(&buf[..n]),
            }
            if answer.windows(4).any(|w| w == b"\r\n\r\n") {
                break;
            }
        }
    };
    tokio::time::timeout(COMPLETES, read).await.unwrap();
    let head = String::from_utf8_lossy(&answer);
    assert!(head.starts_with("HTTP/1.1 408"), "{head}");
    kit.stop().await;
}

/// A request body that never sends its end.
struct Endless;

impl hyper::body::Body for Endless {
    type Data = bytes::Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<bytes::Bytes>, Self::Error>>> {
        std::task::Poll::Pending
    }
}

#[tokio::test]
async fn an_http2_stream_flood_is_bounded_per_connection_and_others_are_served() {
    let kit = Kit::start(short(|c| c.deadlines.body = SHORT)).await;
    let h2 = tandem_net::tls::client_config(&kit.pki.client_tls_settings("app", "srv"), &[b"h2"])
        .unwrap();
    let stream = tls_from(src(2), kit.addr, h2, "srv").await.unwrap();
    let (send, conn) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        hyper_util::rt::TokioIo::new(stream),
    )
    .await
    .unwrap();
    let conn = tokio::spawn(conn);
    // 200 streams whose bodies never end: the server runs at most its stream limit at once.
    let mut floods = Vec::new();
    for _ in 0..200 {
        let mut send = send.clone();
        floods.push(tokio::spawn(async move {
            let request = http::Request::post("https://srv/jsonrpc")
                .header("content-type", "application/json")
                .body(Endless)
                .unwrap();
            send.ready().await.map_err(|e| e.to_string())?;
            let response = send
                .send_request(request)
                .await
                .map_err(|e| format!("{e:?}"))?;
            Ok::<u16, String>(response.status().as_u16())
        }));
    }
    kit.legit_call_from(1).await;
    // Every stream ends: answered 408 at the body deadline, or refused (REFUSED_STREAM) when the
    // client opened it past the server's limit before learning it. None hangs.
    let mut answered = 0;
    for flood in floods {
        match tokio::time::timeout(COMPLETES, flood)
            .await
            .unwrap()
            .unwrap()
        {
            Ok(status) => {
                assert_eq!(status, 408);
                answered += 1;
            }
            Err(e) => assert!(e.contains("REFUSED_STREAM"), "{e}"),
        }
    }
    assert!(answered >= 64, "only {answered} streams were answered");
    conn.abort();
    kit.stop().await;
}
