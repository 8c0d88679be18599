//! The per-source-IP limiter under hostile input, on both drivers: after `bad_token_limit`
//! bad preambles (junk tokens, short tokens, slowloris/half-open timeouts) from one source,
//! its next connections are refused at accept and counted, while another source pairs as usual.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers outside #[test] fns

use crate::abuse_support;

use std::io::{Read, Write};
use std::net::Shutdown;
use std::time::Duration;

use abuse_support::*;
use tandem_engine::{Driver, EngineHandle, PairKind};

abuse_both_drivers!(
    junk_tokens_get_a_source_limited,
    short_tokens_get_a_source_limited,
    slowloris_timeouts_get_a_source_limited,
);

/// Bad preambles one source may present per window (small so the tests run quickly).
const LIMIT: u32 = 5;

/// One core: the limiter is per core, and SO_REUSEPORT spreads connections over cores by
/// hash, so a single core makes "the sixth connection is refused" exact.
fn limited_engine(driver: Driver) -> EngineHandle {
    let mut cfg = config(driver);
    cfg.cores = Some(vec![0]);
    cfg.bad_token_limit = LIMIT;
    cfg.bad_token_window = Duration::from_secs(60);
    start(cfg).0
}

/// A valid pair from 127.0.0.`host` is refused (closed at accept, not paired) and counted.
fn assert_source_refused(h: &EngineHandle, host: u8) {
    let refused_before = total(h, |s| s.refused_at_accept);
    let t = h.create_pair(PairKind::Direct).unwrap();
    let addr = h.local_addrs().pairing;
    let mut a = send_from(host, addr, t.side_a.as_bytes());
    closed_within(&mut a, Duration::ZERO);
    assert_eq!(total(h, |s| s.refused_at_accept), refused_before + 1);
    assert_eq!(total(h, |s| s.limited_refusals), refused_before + 1);
    assert_eq!(total(h, |s| s.waiting), 0, "the refused side never waited");
    h.cancel_pair(t.id).unwrap();
}

/// Another source (127.0.0.2) still pairs and relays.
fn assert_other_source_pairs(h: &EngineHandle) {
    let addr = h.local_addrs().pairing;
    let t = h.create_pair(PairKind::Direct).unwrap();
    let mut a = send_from(2, addr, t.side_a.as_bytes());
    let mut b = send_from(2, addr, t.side_b.as_bytes());
    a.write_all(b"ping").unwrap();
    let mut buf = [0u8; 4];
    b.read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"ping");
    assert_eq!(total(h, |s| s.paired), 1);
}

fn junk_tokens_get_a_source_limited(driver: Driver) {
    let h = limited_engine(driver);
    let addr = h.local_addrs().pairing;
    for _ in 0..LIMIT {
        let mut s = send_from(3, addr, junk_token().as_bytes());
        closed_within(&mut s, Duration::ZERO);
    }
    assert_eq!(total(&h, |s| s.bad_unknown), u64::from(LIMIT));
    assert_source_refused(&h, 3);
    assert_other_source_pairs(&h);
    assert_eq!(total(&h, |s| s.limited_sources), 1, "one source tracked");
    h.shutdown().unwrap();
}

fn short_tokens_get_a_source_limited(driver: Driver) {
    let h = limited_engine(driver);
    let addr = h.local_addrs().pairing;
    for _ in 0..LIMIT {
        let mut s = send_from(4, addr, &junk_token().as_bytes()[..7]);
        s.shutdown(Shutdown::Write).unwrap();
        closed_within(&mut s, Duration::ZERO);
    }
    eventually("short tokens counted", || {
        total(&h, |s| s.preamble_aborted) == u64::from(LIMIT)
    });
    assert_source_refused(&h, 4);
    assert_other_source_pairs(&h);
    h.shutdown().unwrap();
}

fn slowloris_timeouts_get_a_source_limited(driver: Driver) {
    let h = limited_engine(driver);
    let addr = h.local_addrs().pairing;
    // Half-open (nothing sent) and slow (a few bytes, then silence) connections, all at once.
    let mut conns: Vec<_> = (0..LIMIT)
        .map(|i| {
            let bytes = if i % 2 == 0 { &[][..] } else { &[1, 2, 3][..] };
            send_from(5, addr, bytes)
        })
        .collect();
    for s in &mut conns {
        closed_within(s, Duration::from_secs(1));
    }
    eventually("timeouts counted", || {
        total(&h, |s| s.preamble_timeouts) == u64::from(LIMIT)
    });
    assert_source_refused(&h, 5);
    assert_other_source_pairs(&h);
    h.shutdown().unwrap();
}
