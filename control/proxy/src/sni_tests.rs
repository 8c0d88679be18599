//! SNI pairs count against their domain's owner: with a live-pairs quota of one, an operator's
//! second pair is refused (cancelled in the engine, counted by quota) while another operator's
//! is admitted, and the slot comes back when the engine reports the first pair's end; with the
//! local and the Redis counter.
#![allow(clippy::unwrap_used)]

use std::num::NonZeroU64;
use std::sync::mpsc::Receiver;

use tandem_engine::{CloseReason, Engine, EngineConfig, PairEvent, RefuseAll};
use tandem_testkit::poll::{POLL_BOUND, until};
use tandem_testkit::redis::RedisServer;

use super::*;
use crate::quota::{MemoryCounter, QuotaCounter, RedisCounter};
use crate::settings::QuotaSettings;

const TTL: Duration = Duration::from_secs(30);

fn engine() -> (EngineHandle, Receiver<PairEvent>) {
    let config = EngineConfig {
        cores: Some(vec![0]),
        pin: false,
        ..EngineConfig::default()
    };
    Engine::start(config, Arc::new(RefuseAll)).unwrap()
}

/// A new SNI pair of `operator`'s domain, as the resolver queues it.
fn job(engine: &EngineHandle, operator: &str) -> SniJob {
    let ticket = engine.create_pair(PairKind::Sni).unwrap();
    SniJob {
        operator: operator.into(),
        domain: format!("app.{operator}.example"),
        pair: ticket.id,
        pairing_token: ticket.side_b,
        source: "127.0.0.1:40000".parse().unwrap(),
    }
}

/// The next close event of `id` (bounded).
fn closed(events: &Receiver<PairEvent>, id: PairId) -> PairEvent {
    loop {
        let ev = events.recv_timeout(POLL_BOUND).unwrap();
        if matches!(&ev, PairEvent::Closed { id: i, .. } if *i == id) {
            return ev;
        }
    }
}

fn one_live_pair() -> QuotaSettings {
    let mut s = QuotaSettings::default();
    s.default.live_pairs = NonZeroU64::new(1);
    s
}

async fn refused_while_another_is_served_and_released(counter: Arc<dyn QuotaCounter>) {
    let quotas = Quotas::new(one_live_pair(), counter);
    let (engine, events) = engine();
    let first = job(&engine, "op-a");
    assert!(admit_sni(&quotas, &engine, &first, TTL).await);
    let over = job(&engine, "op-a");
    assert!(!admit_sni(&quotas, &engine, &over, TTL).await);
    let ev = closed(&events, over.pair);
    assert!(
        matches!(
            ev,
            PairEvent::Closed {
                reason: CloseReason::Cancelled,
                ..
            }
        ),
        "the refused pair is cancelled: {ev:?}"
    );
    assert!(
        quotas
            .refusals()
            .contains(&(("other".to_owned(), "live_pairs"), 1)),
        "{:?}",
        quotas.refusals()
    );
    let other = job(&engine, "op-b");
    assert!(
        admit_sni(&quotas, &engine, &other, TTL).await,
        "another operator is served"
    );

    // The first pair ends: the engine's close event releases op-a's slot.
    engine.cancel_pair(first.pair).unwrap();
    quotas.on_event(&closed(&events, first.pair), SystemTime::now());
    until("op-a's slot comes back", POLL_BOUND, || async {
        let next = job(&engine, "op-a");
        admit_sni(&quotas, &engine, &next, TTL).await.then_some(())
    })
    .await;
    engine.shutdown().unwrap();
}

#[tokio::test]
async fn sni_pairs_count_against_the_owner_with_the_local_counter() {
    refused_while_another_is_served_and_released(Arc::new(MemoryCounter::default())).await;
}

#[tokio::test]
async fn sni_pairs_count_against_the_owner_with_the_redis_counter() {
    let redis = RedisServer::start().unwrap();
    let counter = RedisCounter::open(&redis.settings("sni:quotas"), crate::quota::DEFAULT_LEASE)
        .await
        .unwrap();
    refused_while_another_is_served_and_released(Arc::new(counter)).await;
}
