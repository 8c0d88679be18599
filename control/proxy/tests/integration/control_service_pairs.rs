//! ControlService on a real engine over real mTLS: a pair created by `CreatePair` relays bytes
//! (1 MiB each way, sha256 compared), and `ListPairs`, `Stats` and `WatchEvents` reflect it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support::control_service;

use std::time::{Duration, SystemTime};

use chrono::DateTime;
use control_service::*;
use tandem_proto::control::{self as pb, pair_event::Kind};

async fn next_event(stream: &mut tonic::Streaming<pb::PairEvent>) -> pb::PairEvent {
    tokio::time::timeout(STEP, stream.message())
        .await
        .expect("an event in time")
        .unwrap()
        .expect("the stream is open")
}

fn find(list: &pb::ListPairsResponse, id: &pb::PairId) -> Option<pb::PairInfo> {
    list.pairs
        .iter()
        .find(|p| p.id.as_ref() == Some(id))
        .cloned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn created_pair_relays_and_shows_in_list_stats_and_events() {
    let dir = tempfile::tempdir().unwrap();
    let pki = pki(dir.path());
    let proxy = Proxy::start(&pki, policy(&pki)).await;
    let client = proxy.client_from(&pki, ADMIN).await.unwrap();
    let mut events = client.watch_events().await.unwrap();

    let before = SystemTime::now();
    let pair = client.create_pair(None).await.unwrap();
    assert_eq!(pair.endpoint, proxy.pairing.to_string());
    assert_ne!(pair.tokens[0], pair.tokens[1]);
    let expires: SystemTime = DateTime::parse_from_rfc3339(&pair.expires_at)
        .unwrap()
        .into();
    let ttl = expires.duration_since(before).unwrap();
    assert!(
        ttl > Duration::from_secs(29) && ttl < Duration::from_secs(32),
        "expiry is the engine's 30 s TTL from now: {ttl:?}"
    );
    let id = pb::PairId {
        core: pair.id.0,
        seq: pair.id.1,
    };

    // The per-core counts are the cores' own counters: the owning core updates them when it takes
    // the registration from its mailbox, just after CreatePair returns. Poll (bounded) for that.
    let mut listed = client.list_pairs(0).await.unwrap();
    for _ in 0..200 {
        if listed.cores.iter().map(|c| c.issued).sum::<u64>() == 1 {
            break;
        }
        tokio::task::yield_now().await;
        listed = client.list_pairs(0).await.unwrap();
    }
    let info = find(&listed, &id).expect("the issued pair is listed");
    assert_eq!(info.state(), pb::PairState::Issued);
    assert_eq!(info.expires_at, pair.expires_at);
    assert_eq!(listed.cores.len(), 2);
    assert_eq!(listed.cores.iter().map(|c| c.issued).sum::<u64>(), 1);

    let a = dial(&pair.endpoint, &pair.tokens[0]).await;
    let b = dial(&pair.endpoint, &pair.tokens[1]).await;
    let paired = next_event(&mut events).await;
    assert_eq!(paired.kind, Some(Kind::Paired(pb::Paired { id: Some(id) })));

    let listed = client.list_pairs(0).await.unwrap();
    assert_eq!(find(&listed, &id).unwrap().state(), pb::PairState::Live);
    assert_eq!(listed.cores.iter().map(|c| c.live).sum::<u64>(), 1);
    assert_eq!(listed.cores.iter().map(|c| c.issued).sum::<u64>(), 0);

    transfer_both_ways(a, b, 1).await;
    let closed = next_event(&mut events).await;
    assert!(closed.seq > paired.seq);
    assert_eq!(
        closed.kind,
        Some(Kind::Closed(pb::Closed {
            id: Some(id),
            reason: pb::CloseReason::Normal.into(),
            bytes_a_to_b: 1 << 20,
            bytes_b_to_a: 1 << 20,
        }))
    );
    let listed = client.list_pairs(0).await.unwrap();
    assert!(find(&listed, &id).is_none(), "a closed pair is not listed");

    let stats = client.stats().await.unwrap();
    assert_eq!(stats.cores.len(), 2);
    let sum = |f: fn(&pb::CoreStats) -> u64| stats.cores.iter().map(f).sum::<u64>();
    assert_eq!(sum(|c| c.paired), 1);
    assert_eq!(sum(|c| c.bytes_a_to_b), 1 << 20);
    assert_eq!(sum(|c| c.bytes_b_to_a), 1 << 20);
    assert_eq!(sum(|c| c.closed_normal), 1);
    assert!(stats.cores.iter().all(|c| !c.driver.is_empty()));
    let service = stats.service.unwrap();
    assert_eq!(service.pairs_created, 1);
    assert_eq!(service.events_received, 2);
    assert_eq!(service.watchers, 1);
    assert_eq!((service.denied_calls, service.draining), (0, false));
    drop(events);
    proxy.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ttl_is_honoured_and_capped_and_expiry_is_an_event() {
    let dir = tempfile::tempdir().unwrap();
    let pki = pki(dir.path());
    let proxy = Proxy::start(&pki, policy(&pki)).await;
    let client = proxy.client_from(&pki, ADMIN).await.unwrap();
    let mut events = client.watch_events().await.unwrap();

    let long = client
        .create_pair(Some(Duration::from_secs(86_400)))
        .await
        .unwrap();
    let expires: SystemTime = DateTime::parse_from_rfc3339(&long.expires_at)
        .unwrap()
        .into();
    let left = expires.duration_since(SystemTime::now()).unwrap();
    assert!(
        left <= Duration::from_secs(600),
        "a day is capped at 10 minutes: {left:?}"
    );

    let short = client
        .create_pair(Some(Duration::from_millis(200)))
        .await
        .unwrap();
    let event = next_event(&mut events).await;
    let Some(Kind::Closed(closed)) = event.kind else {
        panic!("expected the short pair to expire, got {event:?}");
    };
    assert_eq!(closed.id.map(|i| (i.core, i.seq)), Some(short.id));
    assert_eq!(closed.reason(), pb::CloseReason::Expired);
    // Its token is now refused: the connection is closed without a partner.
    let mut late = dial(&short.endpoint, &short.tokens[0]).await;
    let mut buf = [0u8; 1];
    let read = tokio::time::timeout(STEP, tokio::io::AsyncReadExt::read(&mut late, &mut buf)).await;
    assert!(matches!(read, Ok(Ok(0)) | Ok(Err(_))), "{read:?}");
    proxy.stop().await;
}
