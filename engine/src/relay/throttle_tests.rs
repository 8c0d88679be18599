use super::*;
use std::rc::Rc;

fn rate(per_second: u64, burst: u64) -> ByteRate {
    ByteRate {
        per_second: NonZeroU64::new(per_second).unwrap(),
        burst: NonZeroU64::new(burst).unwrap(),
    }
}

#[test]
fn a_bucket_grants_its_burst_then_refills_exactly() {
    let t0 = Instant::now();
    let b = Bucket::new(rate(1000, 500), t0);
    assert_eq!(b.available(t0), 500);
    b.spend(500);
    assert_eq!(b.available(t0), 0);
    // Half the burst (250 B) at 1000 B/s is 250 ms away.
    assert_eq!(b.wait(t0), Some(Duration::from_millis(250)));
    // 1 ms earns exactly one byte, with no rounding lost over many small refills.
    for i in 1..=100 {
        b.available(t0 + Duration::from_millis(i));
    }
    assert_eq!(b.available(t0 + Duration::from_millis(100)), 100);
    assert_eq!(
        b.wait(t0 + Duration::from_millis(100)),
        Some(Duration::from_millis(150)),
        "below half the burst, a direction parks until half is back"
    );
    assert_eq!(b.wait(t0 + Duration::from_millis(250)), None);
    assert_eq!(
        b.available(t0 + Duration::from_secs(60)),
        500,
        "capped at the burst"
    );
}

#[test]
fn a_slow_rate_refills_by_fractions_of_a_byte() {
    let t0 = Instant::now();
    let b = Bucket::new(rate(3, 1), t0);
    b.spend(1);
    assert_eq!(b.available(t0 + Duration::from_millis(300)), 0);
    assert_eq!(b.available(t0 + Duration::from_millis(334)), 1);
}

#[test]
fn a_throttle_grants_the_smallest_credit_and_charges_every_bucket() {
    let t0 = Instant::now();
    let shared = Rc::new(Bucket::new(rate(1_000_000, 10_000), t0));
    let a = Throttle::new(
        Some(Bucket::new(rate(1000, 4000), t0)),
        Some(shared.clone()),
    );
    let b = Throttle::new(None, Some(shared.clone()));
    assert_eq!(a.grant(1 << 20, t0), 4000);
    a.spend(4000);
    assert_eq!(a.grant(1 << 20, t0), 0, "the pair's bucket is empty");
    assert_eq!(
        b.grant(1 << 20, t0),
        6000,
        "the operator's bucket was charged"
    );
    b.spend(6000);
    assert!(a.wait(t0).is_some() && b.wait(t0).is_some());
    assert_eq!(b.grant(100, t0 + Duration::from_millis(1)), 100);
}

#[test]
fn an_operator_rate_is_split_over_the_cores() {
    assert_eq!(rate(1001, 10).core_share(2), rate(501, 5));
    assert_eq!(rate(7, 1).core_share(0), rate(7, 1));
    assert_eq!(rate(1, 1).core_share(4), rate(1, 1));
}

#[test]
fn a_clock_that_goes_back_neither_refills_nor_panics() {
    let t0 = Instant::now() + Duration::from_secs(5);
    let b = Bucket::new(rate(10, 10), t0);
    b.spend(10);
    assert_eq!(b.available(t0 - Duration::from_secs(1)), 0);
}

#[test]
fn a_late_wake_up_keeps_the_credit_of_the_park_up_to_twice_the_burst() {
    let t0 = Instant::now();
    let b = Bucket::new(rate(1000, 100), t0);
    b.spend(100);
    // Parked for 50 ms of credit, woken 100 ms late: 150 B earned, kept (cap 200 after a park).
    b.refill_parked(t0 + Duration::from_millis(150));
    assert_eq!(b.available(t0 + Duration::from_millis(150)), 150);
    assert_eq!(
        b.available(t0 + Duration::from_millis(250)),
        150,
        "a normal refill neither adds above the burst nor cuts the parked credit"
    );
    b.spend(150);
    b.refill_parked(t0 + Duration::from_secs(10));
    assert_eq!(
        b.available(t0 + Duration::from_secs(10)),
        200,
        "at most twice the burst"
    );
    b.spend(200);
    assert_eq!(
        b.available(t0 + Duration::from_secs(60)),
        100,
        "idle credit stops at the burst"
    );
}
