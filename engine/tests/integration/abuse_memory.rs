//! Memory stays flat under a flood of bad connections, and a live pair beside the flood keeps
//! its integrity. One test runs both drivers one after the other: RSS is per process, so no
//! other test of this binary may run at the same time.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers outside #[test] fns

use crate::abuse_support;

use std::net::{Shutdown, SocketAddr};
use std::time::Duration;

use abuse_support::*;
use tandem_engine::Driver;

/// Bad connections measured (the figure).
const FLOOD: usize = 20_000;
/// Bad connections before the baseline, so allocator pools and runtime slabs reach their
/// steady size first.
const WARMUP: usize = 2_000;
/// Attacker threads (each opens its share one after another).
const ATTACKERS: usize = 4;
/// Rotating attack sources: 127.0.0.10 ..= 127.0.0.249 (240 sources, each back only after
/// the other 239, so the 64-entry limiter table must evict and they are rarely limited).
const SOURCES: std::ops::RangeInclusive<u8> = 10..=249;
/// The hot source: every other bad connection comes from 127.0.0.9, which gets limited.
const HOT: u8 = 9;
/// Limiter entries per core: fewer than the sources, so the table must evict.
const TABLE: usize = 64;
/// Bytes each way on the live pair.
const LIVE_BYTES: u64 = 32 << 20;
/// Allowed RSS growth over the flood, in KiB. Engine state for 20,000 closed connections is
/// bounded (limiter: 64 entries per core; pair table: nothing waits); 8 MiB leaves room for
/// allocator fragmentation and test threads' buffers, and is far below what a leak of even
/// 1 KiB per connection would add (20 MB).
const MAX_GROWTH_KIB: u64 = 8 * 1024;

/// One bad connection from `host`: mostly junk tokens, every 8th a short token then FIN.
fn attack_once(host: u8, addr: SocketAddr, i: usize) {
    let Ok(mut s) = try_connect_from(host, addr) else {
        return;
    };
    if i.is_multiple_of(8) {
        let _ = std::io::Write::write_all(&mut s, &[0xee; 12]);
        let _ = s.shutdown(Shutdown::Write);
    } else {
        let _ = std::io::Write::write_all(&mut s, junk_token().as_bytes());
    }
    closed_within(&mut s, Duration::from_secs(5));
}

/// `n` bad connections from [`ATTACKERS`] threads, sources cycling through [`SOURCES`].
fn attack(addr: SocketAddr, n: usize) {
    let span = usize::from(SOURCES.end() - SOURCES.start()) + 1;
    let threads: Vec<_> = (0..ATTACKERS)
        .map(|t| {
            std::thread::spawn(move || {
                for i in (t..n).step_by(ATTACKERS) {
                    let host = if i.is_multiple_of(2) {
                        HOT
                    } else {
                        SOURCES.start() + (i / 2 % span) as u8
                    };
                    attack_once(host, addr, i);
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
}

fn flood_beside_a_live_pair(driver: Driver) {
    let mut cfg = config(driver);
    cfg.bad_token_table = TABLE;
    let (h, _rx) = start(cfg);
    let addr = h.local_addrs().pairing;
    attack(addr, WARMUP);
    eventually("warm-up closed", || total(&h, |s| s.open_conns) == 0);
    let before = rss_kib();

    let live = LiveTransfer::start(&h, 2, LIVE_BYTES);
    attack(addr, FLOOD);
    live.join(LIVE_BYTES);
    eventually("flood closed", || total(&h, |s| s.open_conns) == 0);
    let after = rss_kib();

    let stats = h.stats();
    let sum = |f: fn(&tandem_engine::CoreStatsSnapshot) -> u64| stats.iter().map(f).sum::<u64>();
    assert_eq!(
        sum(|s| s.accepted),
        (WARMUP + FLOOD + 2) as u64,
        "{stats:?}"
    );
    assert_eq!(sum(|s| s.paired), 1);
    assert_eq!(sum(|s| s.waiting), 0);
    assert!(
        sum(|s| s.limited_refusals) > 0,
        "repeat sources were limited"
    );
    assert!(
        sum(|s| s.bad_unknown) + sum(|s| s.preamble_aborted) + sum(|s| s.limited_refusals)
            == (WARMUP + FLOOD) as u64,
        "every bad connection counted once by reason: {stats:?}"
    );
    for s in &stats {
        assert!(
            s.limited_sources <= TABLE as u64,
            "limiter table bounded: {s:?}"
        );
    }
    let growth = after.saturating_sub(before);
    eprintln!("{driver:?}: RSS {before} KiB -> {after} KiB over {FLOOD} bad connections");
    assert!(
        growth <= MAX_GROWTH_KIB,
        "RSS grew {growth} KiB over {FLOOD} bad connections ({before} -> {after})"
    );
    h.shutdown().unwrap();
}

#[test]
fn memory_stays_flat_under_a_flood_on_both_drivers() {
    for driver in [Driver::IoUring, Driver::Legacy] {
        flood_beside_a_live_pair(driver);
    }
}
