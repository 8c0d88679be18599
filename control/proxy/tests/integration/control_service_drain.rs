//! `Drain` over the ControlService: a live pair is closed after the grace, new pairs are refused
//! with `Unavailable` (counted) and the pairing port stops accepting.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support::control_service;

use std::time::Duration;

use control_service::*;
use tandem_proto::control::{self as pb, pair_event::Kind};
use tokio::io::AsyncReadExt;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drain_closes_live_pairs_and_stops_new_ones() {
    let dir = tempfile::tempdir().unwrap();
    let pki = pki(dir.path());
    let proxy = Proxy::start(&pki, policy(&pki)).await;
    let client = proxy.client_from(&pki, ADMIN).await.unwrap();
    let mut events = client.watch_events().await.unwrap();

    let pair = client.create_pair(None).await.unwrap();
    let mut a = dial(&pair.endpoint, &pair.tokens[0]).await;
    let _b = dial(&pair.endpoint, &pair.tokens[1]).await;
    let paired = tokio::time::timeout(STEP, events.message())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert!(matches!(paired.kind, Some(Kind::Paired(_))));

    let done = client.drain(Duration::from_millis(100)).await.unwrap();
    assert_eq!(done.live_at_start, 1);
    assert!(done.took_ms >= 100, "the live pair had its grace: {done:?}");

    let closed = tokio::time::timeout(STEP, events.message())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    let Some(Kind::Closed(closed)) = closed.kind else {
        panic!("expected Closed, got {closed:?}");
    };
    assert_eq!(closed.reason(), pb::CloseReason::Drain);
    let mut buf = [0u8; 1];
    let read = tokio::time::timeout(STEP, a.read(&mut buf)).await.unwrap();
    assert!(
        matches!(read, Ok(0) | Err(_)),
        "the live side was closed: {read:?}"
    );

    let e = client.create_pair(None).await.unwrap_err();
    assert_eq!(e.code(), Some(tonic::Code::Unavailable), "{e}");
    let service = client.stats().await.unwrap().service.unwrap();
    assert!(service.draining);
    assert_eq!((service.pairs_created, service.create_failures), (1, 1));
    assert!(
        tokio::net::TcpStream::connect(proxy.pairing).await.is_err(),
        "the pairing port no longer accepts"
    );
    drop((events, client));
    proxy.stop().await;
}
