use std::num::NonZeroU64;
use std::time::Duration;

use tandem_engine::{CloseReason, CoreId};

use super::*;
use crate::quota::{QuotaCarry, QuotaKind};

fn id(seq: u64) -> PairId {
    PairId {
        core: CoreId(0),
        seq,
    }
}

fn settings() -> QuotaSettings {
    let mut s = QuotaSettings::default();
    s.default.live_pairs = NonZeroU64::new(1);
    let mut big = s.default;
    big.live_pairs = NonZeroU64::new(3);
    s.operators.insert("named".into(), big);
    s
}

#[tokio::test]
async fn events_release_the_owner_and_refusals_are_counted_by_label() {
    let q = Quotas::new(settings(), Arc::new(MemoryCounter::default()));
    let now = SystemTime::now();
    let a = q.admit("anon", now).await.unwrap();
    q.issued(a, id(1), now + Duration::from_secs(30));
    let e = q.admit("anon", now).await.unwrap_err();
    assert_eq!(e.kind(), QuotaKind::LivePairs.as_str());
    for seq in 2..5 {
        let a = q.admit("named", now).await.unwrap();
        q.issued(a, id(seq), now);
    }
    assert!(q.admit("named", now).await.is_err());
    q.on_event(
        &PairEvent::Paired {
            id: id(1),
            sources: [
                "127.0.0.1:1".parse().unwrap(),
                "127.0.0.1:2".parse().unwrap(),
            ],
            waited: std::time::Duration::ZERO,
        },
        now,
    );
    assert_eq!(q.usage("anon", now).waiting_pairs, 0);
    q.on_event(
        &PairEvent::Closed {
            id: id(1),
            reason: CloseReason::Normal,
            bytes_a_to_b: 5,
            bytes_b_to_a: 7,
        },
        now,
    );
    assert_eq!(q.usage("anon", now).live_pairs, 0);
    assert_eq!(q.usage("anon", now).bytes_today, 12);
    let a = q
        .admit("anon", now)
        .await
        .expect("released by the close event");
    q.abandoned(a);
    assert_eq!(
        q.refusals(),
        vec![
            (("named".to_owned(), "live_pairs"), 1),
            (("other".to_owned(), "live_pairs"), 1)
        ]
    );
    let report = q.report(now);
    assert_eq!(
        report
            .iter()
            .map(|o| o.operator.as_str())
            .collect::<Vec<_>>(),
        ["anon", "named"]
    );
    assert_eq!(report[1].limits.live_pairs, NonZeroU64::new(3));
}

#[test]
fn bandwidth_is_given_with_a_stable_operator_key() {
    let mut s = QuotaSettings::default();
    let rate = tandem_engine::ByteRate {
        per_second: NonZeroU64::new(1000).unwrap(),
        burst: NonZeroU64::new(100).unwrap(),
    };
    s.default.operator_bandwidth = Some(rate);
    let a = Admitted {
        operator: Arc::from("x"),
        limits: s.default,
    };
    let b = Admitted {
        operator: Arc::from("x"),
        limits: s.default,
    };
    let c = Admitted {
        operator: Arc::from("y"),
        limits: s.default,
    };
    assert_eq!(a.bandwidth(), b.bandwidth());
    assert_ne!(a.bandwidth(), c.bandwidth());
    assert_eq!(a.bandwidth().pair, None);
    assert_eq!(a.bandwidth().operator.map(|o| o.rate), Some(rate));
}

#[tokio::test]
async fn a_hand_over_carries_the_pairs_handed_over_and_the_windows_it_was_taken_in() {
    let old = Quotas::new(settings(), Arc::new(MemoryCounter::default()));
    let now = SystemTime::now();
    let ttl = now + Duration::from_secs(300);
    for seq in 1..4 {
        let a = old.admit("named", now).await.unwrap();
        old.issued(a, id(seq), ttl);
    }
    let a = old.admit("anon", now).await.unwrap();
    old.issued(a, id(9), ttl);
    old.on_event(
        &PairEvent::Closed {
            id: id(9),
            reason: CloseReason::Normal,
            bytes_a_to_b: 40,
            bytes_b_to_a: 2,
        },
        now,
    );
    // Pair 1 relays (its Paired event not applied yet), pair 2 waits, pair 3 stays behind.
    let carry = old.hand_over(&[id(2)], &[id(1)], now);
    let carry = QuotaCarry::decode(&carry.encode().unwrap()).unwrap();

    let new = Quotas::new(settings(), Arc::new(MemoryCounter::default()));
    new.take_over(carry.clone());
    let named = new.usage("named", now);
    assert_eq!(
        (named.live_pairs, named.waiting_pairs),
        (2, 1),
        "pair 3 stayed"
    );
    assert_eq!(named.pairs_this_minute, 3);
    assert_eq!(new.usage("anon", now).bytes_today, 42);
    // A handed-over pair that ends in the new process releases its operator's quota.
    new.on_event(
        &PairEvent::Closed {
            id: id(1),
            reason: CloseReason::Normal,
            bytes_a_to_b: 5,
            bytes_b_to_a: 5,
        },
        now,
    );
    let named = new.usage("named", now);
    assert_eq!((named.live_pairs, named.waiting_pairs), (1, 1));
    assert_eq!(named.bytes_today, 10);
    // Counts taken in an earlier minute (and day) start over in the new process's windows.
    let stale = Quotas::new(settings(), Arc::new(MemoryCounter::default()));
    stale.take_over(QuotaCarry {
        taken_at: now - Duration::from_secs(2 * 86_400),
        ..carry
    });
    let named = stale.usage("named", now);
    assert_eq!((named.live_pairs, named.pairs_this_minute), (2, 0));
    assert_eq!(stale.usage("anon", now).bytes_today, 0);
}
