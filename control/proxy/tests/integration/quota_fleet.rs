//! The quotas counted across a fleet ([`RedisCounter`]) on a real Redis: two proxies' counters on
//! one Redis share an operator's live-pairs quota, a release on one node frees it for the other,
//! a hostile operator at its quota does not affect another, a dead node's pairs stop counting
//! after its lease, and with Redis down admission fails closed (counted as `unavailable`).

use std::num::NonZeroU64;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tandem_proxy::quota::{QuotaCounter, QuotaError, QuotaKind, Quotas, RedisCounter};
use tandem_proxy::settings::{QuotaLimits, QuotaSettings};
use tandem_testkit::poll::{POLL_BOUND, until};
use tandem_testkit::redis::RedisServer;

/// A lease long enough for a loaded machine between two refreshes of a live node.
const LEASE: Duration = Duration::from_secs(30);

fn live(n: u64) -> QuotaLimits {
    QuotaLimits {
        live_pairs: NonZeroU64::new(n),
        ..QuotaLimits::default()
    }
}

async fn node(redis: &RedisServer, lease: Duration) -> RedisCounter {
    RedisCounter::open(&redis.settings("fleet:quotas"), lease)
        .await
        .unwrap()
}

fn exceeded(result: Result<(), QuotaError>, quota: QuotaKind) -> bool {
    matches!(result, Err(QuotaError::Exceeded { quota: q, .. }) if q == quota)
}

/// Waits until `counter` admits a pair of `operator` under `limits`.
async fn admits_eventually(counter: &RedisCounter, operator: &str, limits: &QuotaLimits) {
    until("the other node admits the pair", POLL_BOUND, || async {
        counter
            .admit(operator, limits, SystemTime::now())
            .await
            .ok()
    })
    .await;
}

#[tokio::test]
async fn two_nodes_share_the_live_pairs_quota_and_a_release_on_one_frees_it_for_the_other() {
    let redis = RedisServer::start().unwrap();
    let (a, b) = (node(&redis, LEASE).await, node(&redis, LEASE).await);
    let limits = live(2);
    let now = SystemTime::now();
    a.admit("hd-1", &limits, now).await.unwrap();
    b.admit("hd-1", &limits, now).await.unwrap();
    // The quota is the fleet's: both nodes refuse the third pair.
    assert!(exceeded(
        a.admit("hd-1", &limits, now).await,
        QuotaKind::LivePairs
    ));
    assert!(exceeded(
        b.admit("hd-1", &limits, now).await,
        QuotaKind::LivePairs
    ));
    assert_eq!(b.usage("hd-1", now).live_pairs, 2);
    // A pair ends on node A: node B may take one more, and then none.
    a.ended("hd-1", false, 1000, SystemTime::now());
    admits_eventually(&b, "hd-1", &limits).await;
    assert!(exceeded(
        a.admit("hd-1", &limits, now).await,
        QuotaKind::LivePairs
    ));
    assert_eq!(a.unwritten(), 0);
}

#[tokio::test]
async fn a_hostile_operator_at_its_quota_does_not_affect_another() {
    let redis = RedisServer::start().unwrap();
    let (a, b) = (node(&redis, LEASE).await, node(&redis, LEASE).await);
    let limits = live(3);
    let now = SystemTime::now();
    for counter in [&a, &b, &a] {
        counter.admit("hostile", &limits, now).await.unwrap();
    }
    for _ in 0..20 {
        assert!(exceeded(
            b.admit("hostile", &limits, now).await,
            QuotaKind::LivePairs
        ));
        assert!(exceeded(
            a.admit("hostile", &limits, now).await,
            QuotaKind::LivePairs
        ));
    }
    for counter in [&b, &a, &b] {
        counter.admit("hd-2", &limits, now).await.unwrap();
    }
    assert!(exceeded(
        a.admit("hd-2", &limits, now).await,
        QuotaKind::LivePairs
    ));
    assert_eq!(a.usage("hostile", now).live_pairs, 3);
}

#[tokio::test]
async fn the_pairs_per_minute_quota_is_the_fleets() {
    let redis = RedisServer::start().unwrap();
    let (a, b) = (node(&redis, LEASE).await, node(&redis, LEASE).await);
    let limits = QuotaLimits {
        pairs_per_minute: NonZeroU64::new(2),
        ..QuotaLimits::default()
    };
    // One fixed instant: the same UTC minute for every call.
    let now = SystemTime::now();
    a.admit("hd-1", &limits, now).await.unwrap();
    a.abandoned("hd-1");
    b.admit("hd-1", &limits, now).await.unwrap();
    assert!(exceeded(
        a.admit("hd-1", &limits, now).await,
        QuotaKind::PairsPerMinute
    ));
    // The next minute starts at zero.
    let later = now + Duration::from_secs(60);
    b.admit("hd-1", &limits, later).await.unwrap();
}

#[tokio::test]
async fn a_dead_nodes_pairs_stop_counting_after_its_lease() {
    let redis = RedisServer::start().unwrap();
    let short = Duration::from_millis(900);
    let dying = node(&redis, short).await;
    let survivor = node(&redis, LEASE).await;
    let limits = live(1);
    dying
        .admit("hd-1", &limits, SystemTime::now())
        .await
        .unwrap();
    assert!(exceeded(
        survivor.admit("hd-1", &limits, SystemTime::now()).await,
        QuotaKind::LivePairs
    ));
    // The node dies with its pair live (no release): its lease runs out, its pair stops counting.
    drop(dying);
    admits_eventually(&survivor, "hd-1", &limits).await;
}

#[tokio::test]
async fn with_redis_down_admission_fails_closed_and_is_counted() {
    let mut redis = RedisServer::start().unwrap();
    let counter = Arc::new(node(&redis, LEASE).await);
    let settings = QuotaSettings {
        default: live(5),
        ..QuotaSettings::default()
    };
    let quotas = Quotas::new(settings, counter.clone());
    let admitted = quotas.admit("hd-1", SystemTime::now()).await.unwrap();
    quotas.abandoned(admitted);
    redis.kill().unwrap();
    let refused = quotas.admit("hd-1", SystemTime::now()).await.unwrap_err();
    assert!(matches!(refused, QuotaError::Unavailable(_)), "{refused:?}");
    assert!(
        quotas
            .refusals()
            .iter()
            .any(|((_, why), n)| *why == "unavailable" && *n == 1),
        "{:?}",
        quotas.refusals()
    );
    // Back up: the pending release is written and admission works again.
    redis.restart().unwrap();
    let again = until("admission works again", POLL_BOUND, || async {
        quotas.admit("hd-1", SystemTime::now()).await.ok()
    })
    .await;
    quotas.abandoned(again);
    until("the pending releases are written", POLL_BOUND, || async {
        (counter.unwritten() == 0).then_some(())
    })
    .await;
    let now = SystemTime::now();
    until("no pair of hd-1 counts", POLL_BOUND, || async {
        let answer = counter.admit("hd-1", &live(1), now).await;
        answer.ok()
    })
    .await;
}
