use std::num::NonZeroU64;
use std::time::Duration;

use super::*;

fn n(v: u64) -> Option<NonZeroU64> {
    NonZeroU64::new(v)
}

fn admit(c: &MemoryCounter, op: &str, l: &QuotaLimits, now: SystemTime) -> Result<(), QuotaError> {
    c.admit_now(op, l, now)
}

fn quota_of(r: Result<(), QuotaError>) -> Option<QuotaKind> {
    match r {
        Err(QuotaError::Exceeded { quota, .. }) => Some(quota),
        _ => None,
    }
}

// A minute boundary, so that + 59 s stays in the same UTC minute.
fn t0() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_800_000_000 / 86_400 * 86_400)
}

#[test]
fn live_pairs_are_reached_and_released_when_a_pair_ends() {
    let c = MemoryCounter::default();
    let l = QuotaLimits {
        live_pairs: n(2),
        ..Default::default()
    };
    admit(&c, "a", &l, t0()).unwrap();
    admit(&c, "a", &l, t0()).unwrap();
    c.paired("a");
    c.paired("a");
    assert_eq!(
        quota_of(admit(&c, "a", &l, t0())),
        Some(QuotaKind::LivePairs)
    );
    admit(&c, "b", &l, t0()).expect("another operator is not affected");
    c.ended("a", false, 10, t0());
    admit(&c, "a", &l, t0()).expect("released by the pair's end");
}

#[test]
fn waiting_pairs_are_released_when_a_pair_pairs_or_is_abandoned() {
    let c = MemoryCounter::default();
    let l = QuotaLimits {
        waiting_pairs: n(1),
        ..Default::default()
    };
    admit(&c, "a", &l, t0()).unwrap();
    assert_eq!(
        quota_of(admit(&c, "a", &l, t0())),
        Some(QuotaKind::WaitingPairs)
    );
    c.paired("a");
    admit(&c, "a", &l, t0()).unwrap();
    c.abandoned("a");
    admit(&c, "a", &l, t0()).unwrap();
    c.ended("a", true, 0, t0());
    assert_eq!(c.usage("a", t0()).waiting_pairs, 0);
    assert_eq!(
        c.usage("a", t0()).live_pairs,
        1,
        "the paired one is still live"
    );
}

#[test]
fn pairs_per_minute_reset_at_the_next_minute() {
    let c = MemoryCounter::default();
    let l = QuotaLimits {
        pairs_per_minute: n(2),
        ..Default::default()
    };
    admit(&c, "a", &l, t0()).unwrap();
    c.abandoned("a");
    admit(&c, "a", &l, t0() + Duration::from_secs(10)).unwrap();
    let late = t0() + Duration::from_secs(59);
    assert_eq!(
        quota_of(admit(&c, "a", &l, late)),
        Some(QuotaKind::PairsPerMinute)
    );
    admit(&c, "a", &l, t0() + Duration::from_secs(60)).expect("a new minute");
    assert_eq!(
        c.usage("a", t0() + Duration::from_secs(61))
            .pairs_this_minute,
        1
    );
}

#[test]
fn bytes_per_day_refuse_once_spent_and_reset_at_midnight_utc() {
    let c = MemoryCounter::default();
    let l = QuotaLimits {
        bytes_per_day: n(1000),
        ..Default::default()
    };
    admit(&c, "a", &l, t0()).unwrap();
    c.ended("a", true, 999, t0());
    admit(&c, "a", &l, t0()).expect("999 of 1000 bytes used");
    c.ended("a", true, 1, t0());
    let e = admit(&c, "a", &l, t0()).unwrap_err();
    assert_eq!(
        e.to_string(),
        "quota bytes_per_day of operator \"a\" reached (limit 1000)",
        "the error names the quota and its limit"
    );
    admit(&c, "a", &l, t0() + Duration::from_secs(86_400)).expect("a new day");
}

#[test]
fn the_operator_bound_drops_idle_operators_then_refuses() {
    let c = MemoryCounter::new(2);
    let l = QuotaLimits::default();
    admit(&c, "a", &l, t0()).unwrap();
    admit(&c, "b", &l, t0()).unwrap();
    assert_eq!(admit(&c, "c", &l, t0()), Err(QuotaError::Full("operators")));
    c.abandoned("b");
    // b is idle once its minute passed.
    admit(&c, "c", &l, t0() + Duration::from_secs(60)).unwrap();
    assert_eq!(c.all(t0()).len(), 2);
}
