//! Token and connection abuse on the pairing port, on both drivers: every bad preamble is
//! closed within its deadline and counted by reason; a connection flood is bounded by
//! `max_conns_per_core`; a client that never reads is closed by the idle timeout; and a live
//! pair beside the attack keeps working.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers outside #[test] fns

use crate::abuse_support;

use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream};
use std::time::{Duration, Instant};

use abuse_support::*;
use tandem_engine::{CloseReason, Driver, EngineHandle, PairEvent, PairKind};

abuse_both_drivers!(
    bad_preambles_close_within_their_deadline_by_reason,
    slowloris_token_is_cut_at_the_deadline,
    connection_flood_is_bounded_and_live_pair_survives,
    client_that_never_reads_is_closed_when_idle,
);

/// An engine whose limiter never trips (these tests count reasons, not the limiter).
fn unlimited(driver: Driver) -> tandem_engine::EngineConfig {
    let mut cfg = config(driver);
    cfg.bad_token_limit = u32::MAX;
    cfg
}

fn ping(a: &mut TcpStream, b: &mut TcpStream) {
    a.write_all(b"ping").unwrap();
    let mut buf = [0u8; 4];
    b.read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"ping");
}

fn bad_preambles_close_within_their_deadline_by_reason(driver: Driver) {
    let (h, rx) = start(unlimited(driver));
    let addr = h.local_addrs().pairing;
    let deadline = Duration::from_secs(1);
    // Held open without a full token: closed at the token deadline (not before).
    let mut half_open = connect_from(1, addr);
    let mut short_held = send_from(1, addr, &[9; 10]);
    let opened = Instant::now();

    // Refused at once (well inside the deadline): junk, short then FIN, replayed, wrong side, expired.
    let mut junk = send_from(1, addr, junk_token().as_bytes());
    closed_within(&mut junk, Duration::ZERO);
    let mut short = send_from(1, addr, &[9; 31]);
    short.shutdown(Shutdown::Write).unwrap();
    closed_within(&mut short, Duration::ZERO);
    let t = h.create_pair(PairKind::Direct).unwrap();
    let mut a = send_from(1, addr, t.side_a.as_bytes());
    let mut b = send_from(1, addr, t.side_b.as_bytes());
    ping(&mut a, &mut b);
    let mut replay = send_from(1, addr, t.side_b.as_bytes());
    closed_within(&mut replay, Duration::ZERO);
    let sni = h.create_pair(PairKind::Sni).unwrap();
    let mut wrong = send_from(1, addr, sni.side_a.as_bytes());
    closed_within(&mut wrong, Duration::ZERO);
    let old = h
        .create_pair_with(PairKind::Direct, Duration::from_millis(50), None)
        .unwrap();
    let expired = |e: &PairEvent| matches!(e, PairEvent::Closed { id, reason: CloseReason::Expired, .. } if *id == old.id);
    (0..1000)
        .map(|_| rx.recv_timeout(STEP).expect("expiry event"))
        .find(expired)
        .expect("expiry within 1000 events");
    let mut late = send_from(1, addr, old.side_a.as_bytes());
    closed_within(&mut late, Duration::ZERO);

    for s in [&mut half_open, &mut short_held] {
        closed_within(s, deadline.saturating_sub(opened.elapsed()));
    }
    assert!(
        opened.elapsed() >= deadline,
        "closed before the token deadline"
    );

    let by = |f| total(&h, f);
    eventually("every refusal counted", || by(|s| s.preamble_timeouts) == 2);
    assert_eq!(by(|s| s.bad_unknown), 1, "junk");
    assert_eq!(by(|s| s.preamble_aborted), 1, "short then FIN");
    assert_eq!(by(|s| s.bad_reused), 1, "replayed");
    assert_eq!(by(|s| s.bad_wrong_side), 1, "wrong side");
    assert_eq!(by(|s| s.bad_expired), 1, "expired");
    assert_eq!(by(|s| s.waiting), 0, "nothing left waiting");
    // The live pair is untouched by all of it; only its two sockets stay open.
    ping(&mut b, &mut a);
    assert_eq!(by(|s| s.open_conns), 2);
    h.shutdown().unwrap();
}

fn slowloris_token_is_cut_at_the_deadline(driver: Driver) {
    let mut cfg = unlimited(driver);
    cfg.token_deadline = Duration::from_secs(2);
    let (h, _rx) = start(cfg);
    let t = h.create_pair(PairKind::Direct).unwrap();
    let mut s = connect_from(1, h.local_addrs().pairing);
    s.set_read_timeout(Some(Duration::from_secs(1))).unwrap();
    let opened = Instant::now();
    let mut buf = [0u8; 1];
    // One byte of a valid token per second; bounded by the 32 bytes of the token.
    let cut = t.side_a.as_bytes().iter().position(|byte| {
        let _ = s.write_all(&[*byte]);
        match s.read(&mut buf) {
            Ok(0) => true,
            Err(e) => e.kind() == std::io::ErrorKind::ConnectionReset,
            Ok(_) => panic!("the engine sent a byte"),
        }
    });
    let took = opened.elapsed();
    assert!(
        cut.is_some_and(|n| n < 32),
        "cut off before the token completed"
    );
    assert!(
        took >= Duration::from_secs(2) && took <= Duration::from_secs(2) + SLACK,
        "closed after {took:?}"
    );
    assert_eq!(total(&h, |s| s.preamble_timeouts), 1);
    assert_eq!(total(&h, |s| s.waiting), 0);
    h.shutdown().unwrap();
}

/// Opens `n` connections from 127.0.0.`host` that send nothing.
fn flood(h: &EngineHandle, host: u8, n: usize) -> Vec<TcpStream> {
    let addr = h.local_addrs().pairing;
    (0..n).map(|_| connect_from(host, addr)).collect()
}

fn connection_flood_is_bounded_and_live_pair_survives(driver: Driver) {
    const MAX: usize = 32;
    let mut cfg = unlimited(driver);
    cfg.cores = Some(vec![0]);
    cfg.max_conns_per_core = MAX;
    let (h, _rx) = start(cfg);
    let addr = h.local_addrs().pairing;
    let t = h.create_pair(PairKind::Direct).unwrap();
    let mut a = send_from(2, addr, t.side_a.as_bytes());
    let mut b = send_from(2, addr, t.side_b.as_bytes());
    ping(&mut a, &mut b);

    let mut conns = flood(&h, 6, 200);
    eventually("all 200 accepted or refused", || {
        total(&h, |s| s.accepted) == 202
    });
    let s = &h.stats()[0];
    assert!(s.open_conns <= MAX as u64, "{s:?}");
    assert_eq!(s.refused_at_accept, 200 - (MAX as u64 - 2), "{s:?}");
    assert_eq!(s.limited_refusals, 0, "refused for the connection limit");
    ping(&mut b, &mut a);
    for c in &mut conns {
        closed_within(c, Duration::from_secs(1));
    }
    eventually("flood closed at the token deadline", || {
        total(&h, |s| s.open_conns) == 2
    });
    assert_eq!(total(&h, |s| s.preamble_timeouts), MAX as u64 - 2);
    // Room again: a fresh pair pairs.
    let t2 = h.create_pair(PairKind::Direct).unwrap();
    let mut c = send_from(2, addr, t2.side_a.as_bytes());
    let mut d = send_from(2, addr, t2.side_b.as_bytes());
    ping(&mut c, &mut d);
    ping(&mut a, &mut b);
    h.shutdown().unwrap();
}

fn client_that_never_reads_is_closed_when_idle(driver: Driver) {
    let idle = Duration::from_millis(500);
    let mut cfg = unlimited(driver);
    cfg.idle_timeout = Some(idle);
    let (h, rx) = start(cfg);
    let addr = h.local_addrs().pairing;
    let t = h.create_pair(PairKind::Direct).unwrap();
    let mut writer = send_from(1, addr, t.side_a.as_bytes());
    let sink = send_from(1, addr, t.side_b.as_bytes());
    // Write until the never-reading side's buffers are full and the engine resets us;
    // bounded at 1 GiB so a missing close fails instead of running forever.
    let pushing = std::thread::spawn(move || {
        let chunk = vec![0x5a; 64 * 1024];
        (0..16_384).find_map(|_| writer.write_all(&chunk).err())
    });
    let closed = (0..1000)
        .map(|_| rx.recv_timeout(STEP).expect("pair event"))
        .find(|e| matches!(e, PairEvent::Closed { id, .. } if *id == t.id))
        .expect("the pair closes");
    assert!(
        matches!(
            closed,
            PairEvent::Closed {
                reason: CloseReason::Idle,
                ..
            }
        ),
        "{closed:?}"
    );
    assert!(pushing.join().unwrap().is_some(), "the writer was cut off");
    assert_eq!(total(&h, |s| s.closed_idle), 1);
    assert_eq!(total(&h, |s| s.live_pairs), 0);
    drop(sink);
    // Another pair on the same engine is served normally afterwards.
    let t2 = h.create_pair(PairKind::Direct).unwrap();
    let mut c = send_from(1, addr, t2.side_a.as_bytes());
    let mut d = send_from(1, addr, t2.side_b.as_bytes());
    ping(&mut c, &mut d);
    h.shutdown().unwrap();
}
