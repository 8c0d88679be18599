//! The per-source accept rate (`accept_rates`, the proxy's `tcp_rate_limits`) on both data
//! ports, on both drivers: a flood from 127.0.0.2 is refused at accept past its rate and
//! counted, while a pair from 127.0.0.3 pairs and relays; each port has its own table; on two
//! cores each admits its share, so the source gets no more than the engine-wide limit.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers outside #[test] fns

use crate::abuse_support;

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::time::Duration;

use abuse_support::*;
use tandem_engine::{AcceptRate, Driver, EngineConfig, EngineHandle, PairKind};

abuse_both_drivers!(
    a_flood_from_one_source_is_refused_past_its_rate_while_another_pairs,
    two_cores_admit_no_more_than_the_engine_wide_rate,
);

/// New connections per source per window (small so the tests run quickly).
const RATE: u32 = 5;
/// Connections of the flood.
const FLOOD: u64 = 20;

/// An engine with [`RATE`] connections per source per minute on both ports, on `cores`; the
/// bad-preamble limiter off and long preamble deadlines, so only the rate refuses.
fn rated(driver: Driver, cores: Vec<usize>, limit: u32) -> EngineHandle {
    let cfg = EngineConfig {
        cores: Some(cores),
        tls_addr: Some("127.0.0.1:0".parse().unwrap()),
        accept_rates: vec![AcceptRate {
            window: Duration::from_secs(600),
            limit,
        }],
        bad_token_limit: u32::MAX,
        token_deadline: STEP,
        hello_deadline: STEP,
        ..config(driver)
    };
    start(cfg).0
}

/// Connect-and-close probes (no byte: never held against the source) from 127.0.0.`host`;
/// each is closed by the engine, at accept (refused) or on its EOF (admitted).
fn probes(host: u8, addr: SocketAddr, n: u64) {
    for _ in 0..n {
        let mut s = connect_from(host, addr);
        s.shutdown(Shutdown::Write).unwrap();
        assert_closed_by_engine(&mut s);
    }
}

/// Reads until the engine closes `s` (generous bound: a hang fails the test); no byte allowed.
fn assert_closed_by_engine(s: &mut TcpStream) {
    s.set_read_timeout(Some(STEP)).unwrap();
    let mut buf = [0u8; 16];
    match s.read(&mut buf) {
        Ok(0) => {}
        Err(e) if e.kind() == ErrorKind::ConnectionReset => {}
        other => panic!("expected the engine to close the connection, got {other:?}"),
    }
}

/// A pair dialled from 127.0.0.`host` relays a ping.
fn pairs_from(h: &EngineHandle, host: u8) {
    let addr = h.local_addrs().pairing;
    let t = h.create_pair(PairKind::Direct).unwrap();
    let mut a = send_from(host, addr, t.side_a.as_bytes());
    let mut b = send_from(host, addr, t.side_b.as_bytes());
    a.write_all(b"ping").unwrap();
    let mut buf = [0u8; 4];
    b.read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"ping");
}

fn a_flood_from_one_source_is_refused_past_its_rate_while_another_pairs(driver: Driver) {
    // One core: its share is the whole rate, so "the sixth is refused" is exact.
    let h = rated(driver, vec![0], RATE);
    let by = |f| total(&h, f);
    let pairing = h.local_addrs().pairing;
    probes(2, pairing, FLOOD);
    eventually("every probe accepted and closed", || {
        by(|s| s.accepted) == FLOOD && by(|s| s.open_conns) == 0
    });
    let refused = FLOOD - u64::from(RATE);
    assert_eq!(by(|s| s.rate_refusals), refused, "refused past the rate");
    assert_eq!(
        by(|s| s.refused_at_accept),
        refused,
        "all of them at accept"
    );
    assert_eq!(by(|s| s.preamble_aborted), u64::from(RATE), "admitted ones");
    assert_eq!(by(|s| s.limited_refusals) + by(|s| s.refused_conn_limit), 0);

    // A valid token from the flooding source is refused too: the rate, not the token, decides.
    let t = h.create_pair(PairKind::Direct).unwrap();
    let mut late = send_from(2, pairing, t.side_a.as_bytes());
    assert_closed_by_engine(&mut late);
    assert_eq!(by(|s| s.rate_refusals), refused + 1);
    assert_eq!(by(|s| s.waiting), 0, "the refused side never waited");
    h.cancel_pair(t.id).unwrap();

    // Another source pairs and relays.
    pairs_from(&h, 3);
    assert_eq!(by(|s| s.paired), 1);

    // The TLS port keeps its own table: the same source gets its rate there once more.
    let tls = h.local_addrs().tls.unwrap();
    probes(2, tls, FLOOD);
    eventually("TLS probes closed", || {
        by(|s| s.accepted) == 2 * FLOOD + 3 && by(|s| s.open_conns) == 0
    });
    assert_eq!(by(|s| s.rate_refusals), 2 * refused + 1);
    assert_eq!(by(|s| s.rate_sources), 3, "(.2, .3) on pairing, .2 on TLS");
    h.shutdown().unwrap();
}

fn two_cores_admit_no_more_than_the_engine_wide_rate(driver: Driver) {
    // 6 per source over 2 cores: each core admits 3 (SO_REUSEPORT spreads the probes).
    const LIMIT: u32 = 6;
    let h = rated(driver, vec![0, 1], LIMIT);
    let by = |f| total(&h, f);
    probes(2, h.local_addrs().pairing, FLOOD);
    eventually("every probe accepted and closed", || {
        by(|s| s.accepted) == FLOOD && by(|s| s.open_conns) == 0
    });
    let admitted = FLOOD - by(|s| s.rate_refusals);
    assert!(
        (1..=u64::from(LIMIT)).contains(&admitted),
        "{admitted} admitted of {FLOOD}"
    );
    for core in h.stats() {
        let per_core = core.accepted - core.rate_refusals;
        assert!(per_core <= u64::from(LIMIT / 2), "{core:?}");
    }
    pairs_from(&h, 3);
    h.shutdown().unwrap();
}
