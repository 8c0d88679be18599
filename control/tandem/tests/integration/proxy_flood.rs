//! The real `proxy run public` (test role) under a flood of 20,000 bad connections on its
//! pairing port (junk tokens from a hot source and 240 rotating ones): the proxy's memory stays
//! flat, every connection is counted (`proxy ctl stats --json`), the hot source is refused at
//! accept, and a live pair from `proxy ctl pair create` carries 32 MiB each way intact beside it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support::proxy_process;
use crate::support::seed;

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use proxy_process::{ProxyProc, STEP, create_pair, ctl, receive, send_seeded};
use seed::Layout;

/// Bad connections measured (the figure).
const FLOOD: usize = 20_000;
/// Bad connections before the baseline (allocator and runtime pools reach steady size).
const WARMUP: usize = 2_000;
/// Attacker threads.
const ATTACKERS: usize = 4;
/// Rotating sources 127.0.0.10 ..= 127.0.0.249; the hot source is 127.0.0.9.
const SOURCES: std::ops::RangeInclusive<u8> = 10..=249;
const HOT: u8 = 9;
/// Bytes each way on the live pair.
const LIVE: u64 = 32 << 20;
/// Allowed growth of the proxy's RSS over the flood, in KiB: its engine state per closed
/// connection is nil and its limiter table is bounded (4096 entries per core, ~100 B each);
/// 16 MiB leaves room for allocator behaviour across 2 worker threads and the tokio runtime,
/// and is far below a leak of 1 KiB per connection (20 MB).
const MAX_GROWTH_KIB: u64 = 16 * 1024;

/// One junk token from 127.0.0.`host`; waits (bounded) for the proxy to close it.
async fn junk(host: u8, addr: SocketAddr) {
    let sock = tokio::net::TcpSocket::new_v4().unwrap();
    sock.bind(SocketAddr::V4(SocketAddrV4::new(
        Ipv4Addr::new(127, 0, 0, host),
        0,
    )))
    .unwrap();
    let Ok(mut s) = sock.connect(addr).await else {
        return;
    };
    let _ = s.write_all(&rand::random::<[u8; 32]>()).await;
    let mut buf = [0u8; 8];
    match tokio::time::timeout(STEP, s.read(&mut buf)).await {
        Ok(Ok(0) | Err(_)) => {}
        Ok(Ok(n)) => panic!("the proxy answered a junk token with {n} bytes"),
        Err(_) => panic!("a junk connection was not closed within {STEP:?}"),
    }
}

/// `n` junk connections from [`ATTACKERS`] threads, every other one from the hot source.
fn flood(addr: SocketAddr, n: usize) {
    let span = usize::from(SOURCES.end() - SOURCES.start()) + 1;
    let threads: Vec<_> = (0..ATTACKERS)
        .map(|t| {
            std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap();
                rt.block_on(async {
                    for i in (t..n).step_by(ATTACKERS) {
                        let host = if i.is_multiple_of(2) {
                            HOT
                        } else {
                            SOURCES.start() + (i / 2 % span) as u8
                        };
                        junk(host, addr).await;
                    }
                });
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
}

/// Per-core engine counters summed, from `proxy ctl stats --json`.
fn stat(layout: &Layout, key: &str) -> u64 {
    let text = ctl(layout, &["stats", "--json"]).expect("stats");
    let doc: serde_json::Value = serde_json::from_str(&text).unwrap();
    doc["cores"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c[key].as_u64().unwrap())
        .sum()
}

/// Polls (bounded) until `key` reaches `want`.
fn stat_reaches(layout: &Layout, key: &str, want: u64) {
    tandem_testkit::poll::until_blocking(
        &format!("{key} reaching {want}"),
        tandem_testkit::poll::POLL_BOUND,
        || (stat(layout, key) == want).then_some(()),
    );
}

#[test]
fn proxy_memory_stays_flat_under_20k_junk_connections_beside_a_live_pair() {
    let layout = Layout::new();
    let mut proxy = ProxyProc::start(&layout);
    proxy.wait_for("public proxy started");
    let pairing: SocketAddr = format!("127.0.0.1:{}", layout.ports["TANDEM_TEST_PP_INTERNAL_PORT"])
        .parse()
        .unwrap();
    flood(pairing, WARMUP);
    stat_reaches(&layout, "open_conns", 0);
    let before = proxy.rss_kib();

    let (a, b) = create_pair(&layout);
    let flows: Vec<_> = [
        (a.try_clone().unwrap(), b.try_clone().unwrap(), 1),
        (b, a, 2),
    ]
    .into_iter()
    .map(|(from, to, seed)| {
        let sent = std::thread::spawn(move || send_seeded(from, LIVE, seed));
        (sent, std::thread::spawn(move || receive(to)))
    })
    .collect();
    flood(pairing, FLOOD);
    for (sent, got) in flows {
        let sent = sent.join().unwrap();
        let (got, n) = got.join().unwrap();
        assert_eq!(n, LIVE, "every byte of the live pair arrived");
        assert_eq!(sent, got, "sha256 of the live pair's stream");
    }
    stat_reaches(&layout, "open_conns", 0);
    let after = proxy.rss_kib();

    let bad = (WARMUP + FLOOD) as u64;
    let counted = stat(&layout, "bad_unknown") + stat(&layout, "refused_at_accept");
    assert_eq!(counted, bad, "every junk connection counted once");
    assert!(
        stat(&layout, "refused_at_accept") > 0,
        "the hot source was limited"
    );
    assert_eq!(stat(&layout, "paired"), 1);
    assert_eq!(stat(&layout, "waiting"), 0);
    let growth = after.saturating_sub(before);
    eprintln!("proxy RSS {before} KiB -> {after} KiB over {FLOOD} junk connections");
    assert!(
        growth <= MAX_GROWTH_KIB,
        "proxy RSS grew {growth} KiB ({before} -> {after})"
    );
}
