use std::num::{NonZeroU32, NonZeroUsize};
use std::time::Duration;

use proptest::prelude::*;

use super::*;
use crate::bucket::Rate;

fn config(max: usize, per_source: u32, rate: Option<(u32, u32)>) -> AdmissionConfig {
    AdmissionConfig {
        max_connections: NonZeroUsize::new(max).unwrap(),
        per_source_connections: NonZeroU32::new(per_source).unwrap(),
        per_source_rate: rate.map(|(per_second, burst)| Rate { per_second, burst }),
        max_tracked_sources: NonZeroUsize::new(1024).unwrap(),
    }
}

fn ip(last: u8) -> IpAddr {
    IpAddr::from([127, 0, 0, last])
}

#[test]
fn a_source_at_its_cap_evicts_its_own_oldest_unproven_connection() {
    let now = Instant::now();
    let mut t = AdmissionTable::new(config(100, 3, None));
    let a = t.admit(ip(2), now, "a1").unwrap().id;
    t.admit(ip(2), now, "a2").unwrap();
    t.admit(ip(2), now, "a3").unwrap();
    let other = t.admit(ip(3), now, "b1").unwrap();
    assert!(other.evicted.is_empty());
    t.prove(a);
    let fourth = t.admit(ip(2), now, "a4").unwrap();
    assert_eq!(fourth.evicted, vec![("a2", Eviction::SourceFull)]);
    assert_eq!(t.len(), 4);
    // Once every connection of the source has proved itself, the source is refused.
    t.prove(fourth.id);
    let a3 = t.admit(ip(2), now, "a5").unwrap();
    assert_eq!(a3.evicted, vec![("a3", Eviction::SourceFull)]);
    t.prove(a3.id);
    assert_eq!(t.admit(ip(2), now, "a6").unwrap_err(), Refusal::SourceFull);
    // Other sources are not affected.
    assert!(t.admit(ip(4), now, "c1").is_ok());
}

#[test]
fn a_full_listener_evicts_the_oldest_unproven_connection_of_any_source() {
    let now = Instant::now();
    let mut t = AdmissionTable::new(config(3, 10, None));
    let first = t.admit(ip(2), now, "x1").unwrap().id;
    t.admit(ip(3), now, "y1").unwrap();
    t.admit(ip(4), now, "z1").unwrap();
    t.prove(first);
    let legit = t.admit(ip(5), now, "legit").unwrap();
    assert_eq!(legit.evicted, vec![("y1", Eviction::Full)]);
    t.prove(legit.id);
    let next = t.admit(ip(6), now, "w").unwrap();
    assert_eq!(next.evicted, vec![("z1", Eviction::Full)]);
    t.prove(next.id);
    assert_eq!(t.admit(ip(7), now, "v").unwrap_err(), Refusal::Full);
    t.release(first, now);
    assert!(t.admit(ip(7), now, "v").is_ok());
}

#[test]
fn the_accept_rate_is_per_source_and_refills() {
    let now = Instant::now();
    let mut t = AdmissionTable::new(config(100, 100, Some((10, 2))));
    assert!(t.admit(ip(2), now, ()).is_ok());
    assert!(t.admit(ip(2), now, ()).is_ok());
    assert_eq!(t.admit(ip(2), now, ()).unwrap_err(), Refusal::SourceRate);
    assert!(
        t.admit(ip(3), now, ()).is_ok(),
        "another source has its own bucket"
    );
    assert!(t.admit(ip(2), now + Duration::from_millis(100), ()).is_ok());
}

#[test]
fn released_and_evicted_ids_free_their_slots_once() {
    let now = Instant::now();
    let mut t = AdmissionTable::new(config(2, 1, None));
    let a = t.admit(ip(2), now, 1).unwrap().id;
    let b = t.admit(ip(2), now, 2).unwrap();
    assert_eq!(b.evicted, vec![(1, Eviction::SourceFull)]);
    t.release(a, now); // already evicted: nothing happens
    assert_eq!(t.len(), 1);
    t.release(b.id, now);
    t.release(b.id, now);
    assert!(t.is_empty());
    assert_eq!(
        t.tracked_sources(),
        0,
        "a source with nothing open and no rate is forgotten"
    );
}

#[test]
fn tracked_sources_stay_bounded_under_a_many_source_flood() {
    let now = Instant::now();
    let mut cfg = config(8, 2, Some((1, 1)));
    cfg.max_tracked_sources = NonZeroUsize::new(16).unwrap();
    let mut t = AdmissionTable::new(cfg);
    for i in 0..10_000u32 {
        let ip = IpAddr::from(std::net::Ipv4Addr::from(0x0a00_0000 + i));
        if let Ok(a) = t.admit(ip, now, i) {
            t.release(a.id, now);
        }
        assert!(t.tracked_sources() <= 16 + 8);
    }
}

#[derive(Debug, Clone)]
enum Op {
    Admit(u8),
    Prove(usize),
    Release(usize),
    Wait(u16),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0u8..6).prop_map(Op::Admit),
        2 => any::<usize>().prop_map(Op::Prove),
        2 => any::<usize>().prop_map(Op::Release),
        1 => (0u16..500).prop_map(Op::Wait),
    ]
}

proptest! {
    /// Whatever the sequence, the caps hold, evictions only take unproven connections, and every
    /// connection is accounted for exactly once (held, evicted or released).
    #[test]
    fn caps_hold_and_only_unproven_connections_are_evicted(ops in prop::collection::vec(op(), 1..300)) {
        let mut now = Instant::now();
        let mut t = AdmissionTable::new(config(8, 3, Some((20, 4))));
        // (serial, id, source, proven)
        let mut held: Vec<(u64, ConnId, u8, bool)> = Vec::new();
        let mut serial = 0u64;
        for op in ops {
            match op {
                Op::Admit(src) => {
                    serial += 1;
                    if let Ok(a) = t.admit(ip(src), now, serial) {
                        for (victim, _) in a.evicted {
                            let pos = held.iter().position(|h| h.0 == victim);
                            prop_assert!(pos.is_some(), "evicted an unknown connection");
                            let gone = held.remove(pos.unwrap_or_default());
                            prop_assert!(!gone.3, "evicted a proven connection");
                        }
                        held.push((serial, a.id, src, false));
                    }
                }
                Op::Prove(i) if !held.is_empty() => {
                    let i = i % held.len();
                    t.prove(held[i].1);
                    held[i].3 = true;
                }
                Op::Release(i) if !held.is_empty() => {
                    let i = i % held.len();
                    t.release(held.remove(i).1, now);
                }
                Op::Wait(ms) => now += Duration::from_millis(u64::from(ms)),
                _ => {}
            }
            prop_assert!(t.len() <= 8);
            prop_assert_eq!(t.len(), held.len());
            for src in 0u8..6 {
                prop_assert!(held.iter().filter(|h| h.2 == src).count() <= 3);
            }
            for h in &held {
                prop_assert_eq!(t.unproven.contains(&h.1), !h.3);
            }
        }
    }
}
