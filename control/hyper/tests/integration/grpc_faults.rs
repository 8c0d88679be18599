//! A slow, dead or unreachable peer gives the caller a clear error within the deadline; shutdown
//! ends the server task.
#![allow(clippy::unwrap_used)]

use tandem_testkit::grpc;

use std::sync::Arc;
use std::time::{Duration, Instant};

use grpc::*;
use serde_json::json;
use tandem_hyper::broker::types::{Channel, DirectorySource};
use tandem_hyper::grpc::InjectError;
use tandem_testkit::pki::TestPki;
use tokio::net::TcpStream;

/// hd-2 serves with `sink` on a listener; the directory says hd-2 is at `advertised` (or at the
/// server itself).
async fn hd2(
    pki: &TestPki,
    sink: Arc<dyn tandem_hyper::broker::types::RequestSink>,
    advertised: Option<String>,
    call_ms: u64,
) -> (Server, Arc<dyn DirectorySource>) {
    let (listener, addr) = bind().await;
    let address = advertised.unwrap_or(addr);
    let dir = directory(vec![
        entry(pki, "hd-1", "g", None),
        entry(pki, "hd-2", "g", Some(json!({"address": address}))),
    ]);
    (
        start_server(pki, "hd-2", listener, dir.clone(), sink, call_ms),
        dir,
    )
}

#[tokio::test]
async fn a_peer_killed_mid_call_fails_the_call_before_the_deadline() {
    let tmp = tempfile::tempdir().unwrap();
    let pki = pki(tmp.path());
    // hd-1 reaches hd-2 through a TCP relay that we kill while hd-2 is working on the call.
    let (relay_listener, relay_addr) = bind().await;
    let hang = Arc::new(HangSink::default());
    let (server, dir) = hd2(&pki, hang.clone(), Some(relay_addr), 30_000).await;
    let target = server.addr();
    let relay = tokio::spawn(async move {
        let (mut inbound, _) = relay_listener.accept().await.unwrap();
        let mut outbound = TcpStream::connect(target).await.unwrap();
        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
    });
    let client = client_as(&pki, "hd-1", "hd-1", dir, 120_000);
    let started = Instant::now();
    let call = tokio::spawn({
        let client = client.clone();
        async move {
            client
                .deliver(request("hd-2", "echo", "1", json!({})), me("hd-1"))
                .await
        }
    });
    hang.arrived.notified().await;
    relay.abort();
    let err = call.await.unwrap().unwrap_err();
    assert!(matches!(err.kind(), "channel" | "timeout"), "{err}");
    // Failed by the peer's death, not the 120 s deadline; generous for a loaded machine.
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "well within the 120 s deadline: {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn a_peer_that_never_answers_gives_a_timeout_error() {
    let tmp = tempfile::tempdir().unwrap();
    let pki = pki(tmp.path());
    let (_server, dir) = hd2(&pki, Arc::new(HangSink::default()), None, 30_000).await;
    let client = client_as(&pki, "hd-1", "hd-1", dir, 300);
    let started = Instant::now();
    let err = client
        .deliver(request("hd-2", "echo", "1", json!({})), me("hd-1"))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), "timeout", "{err}");
    assert!(err.to_string().contains("hd-2"));
    // The 300 ms client deadline, not the server's 30 s one; room for a loaded machine.
    assert!(started.elapsed() < Duration::from_secs(20));
}

#[tokio::test]
async fn unreachable_unknown_and_proxied_peers_fail_clearly() {
    let tmp = tempfile::tempdir().unwrap();
    let pki = pki(tmp.path());
    // A port nobody listens on: bind, note it, close it.
    let (closed, closed_addr) = bind().await;
    drop(closed);
    let dir = directory(vec![
        entry(&pki, "hd-1", "g", None),
        entry(&pki, "hd-2", "g", Some(json!({"address": closed_addr}))),
        entry(
            &pki,
            "hd-3",
            "g",
            Some(json!({"address": "127.0.0.1:1", "proxy": "px"})),
        ),
        entry(
            &pki,
            "internal",
            "g",
            Some(json!({"address": "127.0.0.1:1", "internal": true})),
        ),
    ]);
    let client = client_as(&pki, "hd-1", "hd-1", dir, 5_000);
    let started = Instant::now();
    let err = client
        .deliver(request("hd-2", "echo", "1", json!({})), me("hd-1"))
        .await
        .unwrap_err();
    // Refused at once: kind "channel", not "timeout" (the 5 s deadline); the bound only
    // catches a hang.
    assert_eq!(err.kind(), "channel", "{err}");
    assert!(started.elapsed() < Duration::from_secs(20));
    let err = client
        .deliver(request("nobody", "echo", "1", json!({})), me("hd-1"))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), "unknown_operator");
    let err = client
        .deliver(request("hd-3", "echo", "1", json!({})), me("hd-1"))
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("only reachable via proxy px"),
        "{err}"
    );
    let mut bad = request("hd-2", "echo", "1", json!({}));
    bad.id = "no-address".into();
    assert_eq!(
        client.deliver(bad, me("hd-1")).await.unwrap_err().kind(),
        "bad_address"
    );
    let internal = entry(
        &pki,
        "internal",
        "g",
        Some(json!({"address": "x:1", "internal": true})),
    );
    let address = tandem_hyper::broker::types::Address::parse("internal.echo(1)").unwrap();
    assert!(
        !client.can_deliver_to(&address, &internal),
        "internal servers are not dialed"
    );
    let mine = entry(
        &pki,
        "hd-3",
        "g",
        Some(json!({"address": "x:1", "proxy": "hd-1"})),
    );
    let address = tandem_hyper::broker::types::Address::parse("hd-3.echo(1)").unwrap();
    assert!(
        !client.can_deliver_to(&address, &mine),
        "peers behind ourselves as proxy are not dialed"
    );
}

#[tokio::test]
async fn shutdown_ends_the_server_task_and_refuses_injection() {
    let tmp = tempfile::tempdir().unwrap();
    let pki = pki(tmp.path());
    let (mut server, dir) = hd2(&pki, Arc::new(EchoSink::default()), None, 5_000).await;
    let client = client_as(&pki, "hd-1", "hd-1", dir, 5_000);
    client
        .deliver(request("hd-2", "echo", "1", json!({})), me("hd-1"))
        .await
        .unwrap();
    drop(client);
    server.stop.take().unwrap().send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(10), server.handle.task)
        .await
        .unwrap()
        .unwrap();
    let (_l, addr) = bind().await;
    let stream = TcpStream::connect(addr).await.unwrap();
    assert_eq!(
        server.handle.inject.inject(stream).await,
        Err(InjectError::Stopped)
    );
}

#[tokio::test]
async fn connections_over_the_tcp_rate_limit_are_closed() {
    use std::num::NonZeroU32;
    use tandem_settings::listeners::{RatePeriod, TcpRateLimit};
    let tmp = tempfile::tempdir().unwrap();
    let pki = pki(tmp.path());
    let (listener, addr) = bind().await;
    let dir = directory(vec![
        entry(&pki, "hd-1", "g", None),
        entry(&pki, "hd-2", "g", Some(json!({"address": addr}))),
    ]);
    let mut settings = server_settings(&pki, "hd-2");
    settings.tcp_rate_limits = vec![TcpRateLimit {
        period: RatePeriod::Hour,
        limit: NonZeroU32::new(1).unwrap(),
    }];
    let _server = start_server_with(
        settings,
        "hd-2",
        listener,
        dir.clone(),
        Arc::new(EchoSink::default()),
        5_000,
    );
    // The first client's connection is within the limit and is reused for every call.
    let first = client_as(&pki, "hd-1", "hd-1", dir.clone(), 5_000);
    for i in 0..3 {
        let id = i.to_string();
        first
            .deliver(request("hd-2", "echo", &id, json!({})), me("hd-1"))
            .await
            .unwrap();
    }
    // A second connection from the same address in the same hour is closed at accept.
    let second = client_as(&pki, "hd-1", "hd-1", dir, 5_000);
    let err = second
        .deliver(request("hd-2", "echo", "x", json!({})), me("hd-1"))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), "channel", "{err}");
}
