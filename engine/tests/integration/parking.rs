//! Quiet pairs park (no task) and resume when either side speaks, closes or resets, on both
//! drivers; the idle timeout and drain reach parked pairs; a client holding many parked pairs
//! and waking them all the time does not hold up another pair. `park_after` is short (50 ms)
//! and the tick fast, and every wait is a bounded poll of the engine's counters or events.

use crate::abuse_support::eventually;
use crate::common;

use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream};
use std::sync::mpsc::Receiver;
use std::time::Duration;

use common::*;
use tandem_engine::{
    CloseReason, CoreStatsSnapshot, Driver, EngineConfig, EngineHandle, PairEvent, PairKind,
};

both_drivers!(
    a_quiet_pair_parks_and_relays_both_ways_when_woken,
    a_parked_pair_whose_peer_closes_finishes_normally,
    a_parked_pair_whose_peer_resets_is_reset,
    a_reset_of_a_finished_side_closes_a_parked_half_closed_pair,
    the_idle_timeout_closes_a_parked_pair,
    drain_closes_parked_pairs,
    many_parked_pairs_woken_at_once_do_not_hold_up_another_pair,
    the_core_releases_memory_after_pairs_park_and_not_before,
);

/// Quiet time before a pair parks in these tests.
const PARK_AFTER: Duration = Duration::from_millis(50);

pub fn parking_config(driver: Driver) -> EngineConfig {
    EngineConfig {
        park_after: Some(PARK_AFTER),
        tick: Duration::from_millis(20),
        idle_timeout: None,
        ..config(driver)
    }
}

pub fn total(h: &EngineHandle, f: impl Fn(&CoreStatsSnapshot) -> u64) -> u64 {
    h.stats().iter().map(f).sum()
}

/// Waits (bounded) until `n` pairs are parked and `parks` parks happened in all.
pub fn parked(h: &EngineHandle, n: u64, parks: u64) {
    eventually(&format!("{n} pairs parked after {parks} parks"), || {
        total(h, |s| s.parked_pairs) == n && total(h, |s| s.parks) >= parks
    });
}

/// A relaying pair of `h`, one ping-pong done.
fn pair(h: &EngineHandle) -> (tandem_engine::PairId, TcpStream, TcpStream) {
    let t = h.create_pair(PairKind::Direct).unwrap();
    let addr = h.local_addrs().pairing;
    let (mut a, mut b) = (dial(addr, &t.side_a), dial(addr, &t.side_b));
    ping_pong(&mut a, &mut b);
    (t.id, a, b)
}

fn closed(rx: &Receiver<PairEvent>, id: tandem_engine::PairId) -> (CloseReason, [u64; 2]) {
    match wait_event(
        rx,
        |e| matches!(e, PairEvent::Closed { id: i, .. } if *i == id),
    ) {
        PairEvent::Closed {
            reason,
            bytes_a_to_b,
            bytes_b_to_a,
            ..
        } => (reason, [bytes_a_to_b, bytes_b_to_a]),
        other => unreachable!("{other:?}"),
    }
}

fn a_quiet_pair_parks_and_relays_both_ways_when_woken(driver: Driver) {
    let (h, rx) = start(parking_config(driver));
    let (id, mut a, mut b) = pair(&h);
    let (mut to_b, mut to_a) = (4u64, 4u64);
    for cycle in 1..=4u64 {
        parked(&h, 1, cycle);
        assert_eq!(total(&h, |s| s.live_pairs), 1, "a parked pair is live");
        // Either side may speak first; a larger message than the ping checks the byte counts.
        let msg = vec![cycle as u8; 1000 * cycle as usize];
        let mut got = vec![0u8; msg.len()];
        if cycle % 2 == 1 {
            a.write_all(&msg).unwrap();
            b.read_exact(&mut got).unwrap();
            to_b += msg.len() as u64;
            ping_pong(&mut b, &mut a);
        } else {
            b.write_all(&msg).unwrap();
            a.read_exact(&mut got).unwrap();
            to_a += msg.len() as u64;
            ping_pong(&mut a, &mut b);
        }
        assert_eq!(got, msg);
        to_b += 4;
        to_a += 4;
        assert!(total(&h, |s| s.unparks) >= cycle, "woken by its peer");
    }
    a.shutdown(Shutdown::Write).unwrap();
    b.shutdown(Shutdown::Write).unwrap();
    assert_eq!(closed(&rx, id), (CloseReason::Normal, [to_b, to_a]));
    assert_closed(&mut a);
    assert_eq!(total(&h, |s| s.parked_pairs), 0);
    assert_eq!(total(&h, |s| s.live_pairs), 0);
    h.shutdown().unwrap();
}

fn a_parked_pair_whose_peer_closes_finishes_normally(driver: Driver) {
    let (h, rx) = start(parking_config(driver));
    let (id, mut a, mut b) = pair(&h);
    parked(&h, 1, 1);
    a.shutdown(Shutdown::Write).unwrap();
    let mut buf = [0u8; 8];
    assert_eq!(b.read(&mut buf).unwrap(), 0, "a's FIN reached b");
    // Half-closed, the pair parks again; b's last words and FIN still go through.
    parked(&h, 1, 2);
    b.write_all(b"bye").unwrap();
    a.read_exact(&mut buf[..3]).unwrap();
    assert_eq!(&buf[..3], b"bye");
    b.shutdown(Shutdown::Write).unwrap();
    assert_eq!(closed(&rx, id), (CloseReason::Normal, [4, 7]));
    assert_closed(&mut a);
    h.shutdown().unwrap();
}

/// Closes `s` with a reset (SO_LINGER 0).
fn reset(s: TcpStream) {
    socket2::SockRef::from(&s)
        .set_linger(Some(Duration::ZERO))
        .unwrap();
    drop(s);
}

fn a_parked_pair_whose_peer_resets_is_reset(driver: Driver) {
    let (h, rx) = start(parking_config(driver));
    let (id, a, mut b) = pair(&h);
    parked(&h, 1, 1);
    reset(a);
    assert_eq!(closed(&rx, id), (CloseReason::Reset, [4, 4]));
    assert_closed(&mut b);
    assert_eq!(total(&h, |s| s.closed_reset), 1);
    assert_eq!(total(&h, |s| s.parked_pairs), 0);
    h.shutdown().unwrap();
}

fn a_reset_of_a_finished_side_closes_a_parked_half_closed_pair(driver: Driver) {
    let (h, rx) = start(parking_config(driver));
    let (id, a, mut b) = pair(&h);
    a.shutdown(Shutdown::Write).unwrap();
    let mut buf = [0u8; 8];
    assert_eq!(b.read(&mut buf).unwrap(), 0, "a's FIN reached b");
    // Parked with a→b finished: a is watched for errors only. Its reset closes the pair
    // (a relaying pair would notice only when b spoke).
    parked(&h, 1, 1);
    reset(a);
    assert_eq!(closed(&rx, id), (CloseReason::Reset, [4, 4]));
    assert_closed(&mut b);
    h.shutdown().unwrap();
}

fn the_idle_timeout_closes_a_parked_pair(driver: Driver) {
    let idle = Duration::from_millis(600);
    let (h, rx) = start(EngineConfig {
        idle_timeout: Some(idle),
        ..parking_config(driver)
    });
    let (id, mut a, mut b) = pair(&h);
    parked(&h, 1, 1);
    assert_eq!(closed(&rx, id), (CloseReason::Idle, [4, 4]));
    // Closed from the lot: parked once more than woken (a slow test may see it park before
    // its first byte, and wake).
    assert_eq!(
        total(&h, |s| s.parks),
        total(&h, |s| s.unparks) + 1,
        "closed from the lot"
    );
    assert_closed(&mut a);
    assert_closed(&mut b);
    assert_eq!(total(&h, |s| s.closed_idle), 1);
    assert_eq!(total(&h, |s| s.parked_pairs), 0);
    h.shutdown().unwrap();
}

fn drain_closes_parked_pairs(driver: Driver) {
    let (h, rx) = start(parking_config(driver));
    let mut pairs: Vec<_> = (0..3).map(|_| pair(&h)).collect();
    parked(&h, 3, 3);
    h.drain(Duration::from_millis(100)).unwrap();
    let mut ended = std::collections::HashMap::new();
    while ended.len() < pairs.len() {
        if let PairEvent::Closed {
            id,
            reason,
            bytes_a_to_b,
            bytes_b_to_a,
            ..
        } = wait_event(&rx, |e| matches!(e, PairEvent::Closed { .. }))
        {
            ended.insert(id, (reason, [bytes_a_to_b, bytes_b_to_a]));
        }
    }
    for (id, a, b) in &mut pairs {
        assert_eq!(ended[id], (CloseReason::Drain, [4, 4]));
        assert_closed(a);
        assert_closed(b);
    }
    assert_eq!(total(&h, |s| s.closed_drain), 3);
    assert_eq!(total(&h, |s| s.parked_pairs), 0);
    assert_eq!(total(&h, |s| s.open_conns), 0);
}

/// Pairs a hostile client holds parked and wakes all at once, again and again.
const HOSTILE_PAIRS: usize = 200;
/// Ping-pongs the other pair does meanwhile.
const ROUNDS: usize = 50;

fn many_parked_pairs_woken_at_once_do_not_hold_up_another_pair(driver: Driver) {
    let (h, _rx) = start(parking_config(driver));
    let hostile: Vec<_> = (0..HOSTILE_PAIRS).map(|_| pair(&h)).collect();
    parked(&h, HOSTILE_PAIRS as u64, HOSTILE_PAIRS as u64);
    let (_, mut a, mut b) = pair(&h);
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let waker = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut hostile = hostile;
            let mut waves = 0u64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                // Every parked pair wakes (a byte from side A), then goes quiet to park again.
                for (_, x, _) in &mut hostile {
                    x.write_all(b"w").unwrap();
                }
                for (_, _, y) in &mut hostile {
                    let mut one = [0u8; 1];
                    y.read_exact(&mut one).unwrap();
                }
                waves += 1;
                std::thread::sleep(PARK_AFTER * 2);
            }
            waves
        })
    };
    for _ in 0..ROUNDS {
        ping_pong(&mut a, &mut b);
    }
    eventually("the hostile pairs woke", || {
        total(&h, |s| s.unparks) >= HOSTILE_PAIRS as u64
    });
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let waves = waker.join().unwrap();
    assert!(waves >= 1);
    ping_pong(&mut a, &mut b);
    h.shutdown().unwrap();
}

/// Calls of [`count_release`] in this test process.
static RELEASES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

fn count_release() {
    RELEASES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
}

fn the_core_releases_memory_after_pairs_park_and_not_before(driver: Driver) {
    // Pairs that relay but never park: the hook is never called, however many ticks pass.
    let never = EngineConfig {
        park_after: Some(Duration::from_secs(3600)),
        pair_ttl: Duration::from_secs(2),
        release_memory: Some(count_release),
        ..parking_config(driver)
    };
    let (h, _rx) = start(never);
    let (_, mut a, mut b) = pair(&h);
    for _ in 0..20 {
        ping_pong(&mut a, &mut b);
    }
    // Ticks ran after the traffic: the tick expires a pair nobody dialed (2 s TTL).
    h.create_pair(PairKind::Direct).unwrap();
    eventually("an unused pair expired by the tick", || {
        total(&h, |s| s.expired) >= 1
    });
    assert_eq!(total(&h, |s| s.memory_releases), 0, "no park, no release");
    h.drain(Duration::from_secs(1)).unwrap();
    // Pairs that park: the core releases after they parked, from its own thread's tick.
    let parks = EngineConfig {
        release_memory: Some(count_release),
        ..parking_config(driver)
    };
    let (h, _rx) = start(parks);
    let pairs: Vec<_> = (0..3).map(|_| pair(&h)).collect();
    parked(&h, 3, 3);
    eventually("a memory release after the pairs parked", || {
        total(&h, |s| s.memory_releases) >= 1
    });
    assert!(RELEASES.load(std::sync::atomic::Ordering::Relaxed) >= 1);
    drop(pairs);
}
