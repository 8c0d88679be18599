//! Pairing over real sockets, on both drivers.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers outside #[test] fns

use crate::abuse_support::eventually;
use crate::common;

use std::io::Write;
use std::net::Shutdown;
use std::time::Duration;

use common::*;
use tandem_engine::{CloseReason, CoreId, Driver, PairEvent, PairKind, Token};

both_drivers!(
    pairs_in_both_arrival_orders,
    cross_core_handoff,
    token_one_byte_at_a_time,
    slow_token_hits_the_deadline,
    bad_tokens_are_refused_by_reason,
    waiting_set_is_bounded,
    half_close_each_way,
    reset_propagates,
    idle_timeout_closes,
    drain_lets_pairs_finish_then_closes,
    drain_cuts_a_pair_still_open_after_the_grace,
);

fn pairs_in_both_arrival_orders(driver: Driver) {
    let (h, rx) = start(config(driver));
    let addr = h.local_addrs().pairing;
    for a_first in [true, false] {
        let t = h.create_pair(PairKind::Direct).unwrap();
        let (mut a, mut b) = if a_first {
            let a = dial(addr, &t.side_a);
            (a, dial(addr, &t.side_b))
        } else {
            let b = dial(addr, &t.side_b);
            (dial(addr, &t.side_a), b)
        };
        ping_pong(&mut a, &mut b);
        let ev = wait_event(&rx, |e| matches!(e, PairEvent::Paired { .. }));
        assert!(matches!(ev, PairEvent::Paired { id, .. } if id == t.id));
    }
    h.shutdown().unwrap();
}

fn cross_core_handoff(driver: Driver) {
    let (h, _rx) = start(config(driver));
    let addr = h.local_addrs().pairing;
    for i in 0..16 {
        let t = h
            .create_pair_with(
                PairKind::Direct,
                Duration::from_secs(30),
                Some(CoreId(i % 2)),
            )
            .unwrap();
        assert_eq!(h.owner_of(&t.side_a), CoreId(i % 2));
        assert_eq!(h.owner_of(&t.side_b), CoreId(i % 2));
        let mut a = dial(addr, &t.side_a);
        let mut b = dial(addr, &t.side_b);
        ping_pong(&mut a, &mut b);
    }
    // The sending core counts a hand-off just after its mailbox accepted it, so the receiving core
    // may pair, relay and count it first: wait (bounded) until the two counts agree.
    let deadline = std::time::Instant::now() + STEP;
    let mut stats = h.stats();
    let count = |stats: &[tandem_engine::stats::CoreStatsSnapshot],
                 f: fn(&tandem_engine::stats::CoreStatsSnapshot) -> u64| {
        stats.iter().map(f).sum::<u64>()
    };
    while count(&stats, |s| s.handoffs_in) != count(&stats, |s| s.handoffs_out)
        && std::time::Instant::now() < deadline
    {
        std::thread::yield_now();
        stats = h.stats();
    }
    let handed: u64 = stats.iter().map(|s| s.handoffs_in).sum();
    let sent: u64 = stats.iter().map(|s| s.handoffs_out).sum();
    // 32 connections spread by SO_REUSEPORT over 2 cores: P(no handoff) = 2^-32.
    assert!(handed > 0 && handed == sent, "{stats:?}");
    assert_eq!(stats.iter().map(|s| s.paired).sum::<u64>(), 16);
    h.shutdown().unwrap();
}

fn token_one_byte_at_a_time(driver: Driver) {
    let (h, _rx) = start(config(driver));
    let addr = h.local_addrs().pairing;
    let t = h.create_pair(PairKind::Direct).unwrap();
    let mut a = std::net::TcpStream::connect(addr).unwrap();
    a.set_nodelay(true).unwrap();
    a.set_read_timeout(Some(STEP)).unwrap();
    for b in t.side_a.as_bytes() {
        a.write_all(&[*b]).unwrap();
    }
    let mut b = dial(addr, &t.side_b);
    ping_pong(&mut a, &mut b);
    h.shutdown().unwrap();
}

fn slow_token_hits_the_deadline(driver: Driver) {
    let mut cfg = config(driver);
    cfg.token_deadline = Duration::from_millis(200);
    let (h, _rx) = start(cfg);
    let t = h.create_pair(PairKind::Direct).unwrap();
    let mut s = std::net::TcpStream::connect(h.local_addrs().pairing).unwrap();
    s.set_read_timeout(Some(STEP)).unwrap();
    s.write_all(&t.side_a.as_bytes()[..10]).unwrap();
    assert_closed(&mut s);
    assert_eq!(
        h.stats().iter().map(|s| s.preamble_timeouts).sum::<u64>(),
        1
    );
    h.shutdown().unwrap();
}

fn bad_tokens_are_refused_by_reason(driver: Driver) {
    let (h, rx) = start(config(driver));
    let addr = h.local_addrs().pairing;
    let mut s = dial(addr, &Token::random());
    assert_closed(&mut s);

    let t = h.create_pair(PairKind::Direct).unwrap();
    let mut a = dial(addr, &t.side_a);
    let mut b = dial(addr, &t.side_b);
    ping_pong(&mut a, &mut b);
    let mut third = dial(addr, &t.side_a);
    assert_closed(&mut third);

    let sni = h.create_pair(PairKind::Sni).unwrap();
    let mut wrong = dial(addr, &sni.side_a);
    assert_closed(&mut wrong);

    let short = h
        .create_pair_with(PairKind::Direct, Duration::from_millis(50), None)
        .unwrap();
    wait_event(
        &rx,
        |e| matches!(e, PairEvent::Closed { id, reason: CloseReason::Expired, .. } if *id == short.id),
    );
    let mut late = dial(addr, &short.side_a);
    assert_closed(&mut late);

    let sum =
        |f: fn(&tandem_engine::CoreStatsSnapshot) -> u64| h.stats().iter().map(f).sum::<u64>();
    assert_eq!(sum(|s| s.bad_unknown), 1);
    assert_eq!(sum(|s| s.bad_reused), 1);
    assert_eq!(sum(|s| s.bad_wrong_side), 1);
    assert_eq!(sum(|s| s.bad_expired), 1);
    h.shutdown().unwrap();
}

fn waiting_set_is_bounded(driver: Driver) {
    let mut cfg = config(driver);
    cfg.cores = Some(vec![0]);
    cfg.max_waiting_per_core = 1;
    let (h, _rx) = start(cfg);
    let addr = h.local_addrs().pairing;
    let p1 = h.create_pair(PairKind::Direct).unwrap();
    let p2 = h.create_pair(PairKind::Direct).unwrap();
    let mut w1 = dial(addr, &p1.side_a);
    let mut w2 = dial(addr, &p2.side_a);
    assert_closed(&mut w2);
    assert_eq!(h.stats()[0].waiting_full, 1);
    let mut b1 = dial(addr, &p1.side_b);
    ping_pong(&mut w1, &mut b1);
    h.shutdown().unwrap();
}

fn half_close_each_way(driver: Driver) {
    let (h, rx) = start(config(driver));
    let addr = h.local_addrs().pairing;
    for a_closes in [true, false] {
        let t = h.create_pair(PairKind::Direct).unwrap();
        let mut a = dial(addr, &t.side_a);
        let mut b = dial(addr, &t.side_b);
        let (closer, other) = if a_closes {
            (&mut a, &mut b)
        } else {
            (&mut b, &mut a)
        };
        closer.write_all(b"request").unwrap();
        closer.shutdown(Shutdown::Write).unwrap();
        let (got, err) = read_to_end(other);
        assert_eq!((got.as_slice(), err), (&b"request"[..], None));
        other.write_all(b"late reply").unwrap();
        other.shutdown(Shutdown::Write).unwrap();
        let (got, err) = read_to_end(closer);
        assert_eq!((got.as_slice(), err), (&b"late reply"[..], None));
        let ev = wait_event(
            &rx,
            |e| matches!(e, PairEvent::Closed { id, .. } if *id == t.id),
        );
        let PairEvent::Closed {
            reason,
            bytes_a_to_b,
            bytes_b_to_a,
            ..
        } = ev
        else {
            unreachable!()
        };
        assert_eq!(reason, CloseReason::Normal);
        let (ab, ba) = if a_closes { (7, 10) } else { (10, 7) };
        assert_eq!((bytes_a_to_b, bytes_b_to_a), (ab, ba));
    }
    h.shutdown().unwrap();
}

fn reset_propagates(driver: Driver) {
    let (h, rx) = start(config(driver));
    let addr = h.local_addrs().pairing;
    let t = h.create_pair(PairKind::Direct).unwrap();
    let mut a = dial(addr, &t.side_a);
    let mut b = dial(addr, &t.side_b);
    ping_pong(&mut a, &mut b);
    socket2::SockRef::from(&a)
        .set_linger(Some(Duration::ZERO))
        .unwrap();
    drop(a);
    let (_, err) = read_to_end(&mut b);
    assert_eq!(err, Some(std::io::ErrorKind::ConnectionReset));
    let ev = wait_event(&rx, |e| matches!(e, PairEvent::Closed { .. }));
    assert!(
        matches!(
            ev,
            PairEvent::Closed {
                reason: CloseReason::Reset,
                ..
            }
        ),
        "{ev:?}"
    );
    h.shutdown().unwrap();
}

fn idle_timeout_closes(driver: Driver) {
    let mut cfg = config(driver);
    cfg.idle_timeout = Some(Duration::from_millis(300));
    let (h, rx) = start(cfg);
    let addr = h.local_addrs().pairing;
    let t = h.create_pair(PairKind::Direct).unwrap();
    let mut a = dial(addr, &t.side_a);
    let mut b = dial(addr, &t.side_b);
    ping_pong(&mut a, &mut b);
    let ev = wait_event(&rx, |e| matches!(e, PairEvent::Closed { .. }));
    assert!(
        matches!(
            ev,
            PairEvent::Closed {
                reason: CloseReason::Idle,
                ..
            }
        ),
        "{ev:?}"
    );
    assert_closed(&mut a);
    assert_closed(&mut b);
    h.shutdown().unwrap();
}

/// The grace of the completion case: far longer than the pair needs on any machine (drain
/// returns as soon as the pair ends, so the test does not wait for it).
const LONG_GRACE: Duration = Duration::from_secs(120);

fn drain_lets_pairs_finish_then_closes(driver: Driver) {
    let (h, rx) = start(config(driver));
    let addr = h.local_addrs().pairing;
    let t = h.create_pair(PairKind::Direct).unwrap();
    let mut a = dial(addr, &t.side_a);
    let mut b = dial(addr, &t.side_b);
    ping_pong(&mut a, &mut b);
    let h2 = h.clone();
    let drainer = std::thread::spawn(move || h2.drain(LONG_GRACE));
    // Draining: the listeners close (bounded poll) and no pair can be created...
    eventually("the listeners closed by the drain", || {
        std::net::TcpStream::connect(addr).is_err()
    });
    assert!(h.create_pair(PairKind::Direct).is_err());
    // ...while the live pair still works, and ends normally when its sides finish.
    ping_pong(&mut a, &mut b);
    a.shutdown(Shutdown::Write).unwrap();
    b.shutdown(Shutdown::Write).unwrap();
    let ev = wait_event(
        &rx,
        |e| matches!(e, PairEvent::Closed { id, .. } if *id == t.id),
    );
    assert!(
        matches!(
            ev,
            PairEvent::Closed {
                reason: CloseReason::Normal,
                ..
            }
        ),
        "{ev:?}"
    );
    drainer.join().unwrap().unwrap();
    assert_closed(&mut a);
}

fn drain_cuts_a_pair_still_open_after_the_grace(driver: Driver) {
    let grace = Duration::from_millis(300);
    let (h, rx) = start(config(driver));
    let addr = h.local_addrs().pairing;
    let t = h.create_pair(PairKind::Direct).unwrap();
    let mut a = dial(addr, &t.side_a);
    let mut b = dial(addr, &t.side_b);
    ping_pong(&mut a, &mut b);
    // The pair stays open and idle: the drain cuts it once the grace has passed, not before.
    let started = std::time::Instant::now();
    h.drain(grace).unwrap();
    assert!(started.elapsed() >= grace, "cut before the grace");
    let ev = wait_event(&rx, |e| matches!(e, PairEvent::Closed { .. }));
    assert!(
        matches!(
            ev,
            PairEvent::Closed {
                reason: CloseReason::Drain,
                ..
            }
        ),
        "{ev:?}"
    );
    assert_closed(&mut a);
    assert_closed(&mut b);
    assert!(
        std::net::TcpStream::connect(addr).is_err(),
        "listeners closed after drain"
    );
    assert!(h.create_pair(PairKind::Direct).is_err());
}
