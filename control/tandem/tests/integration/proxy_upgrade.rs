//! The real `proxy run public` upgraded in place with SIGUSR2 (issue 15), with the binary
//! copied to a directory of the test's own, so that the test can replace it at its path:
//!
//! - **three upgrades in a row mid-transfer**: a pair created by `proxy ctl pair create` moves
//!   `TANDEM_UPGRADE_TEST_BYTES` (64 MiB by default) each way while SIGUSR2 arrives three times,
//!   each time at the process that took over; a second pair has its side A waiting throughout;
//!   a client connects to the pairing port in a loop. The transfer completes intact (sha256),
//!   side B pairs with the waiting side A after the upgrades, the engine counts no reset, the
//!   looping client never sees a refusal, and each old process exits 0;
//! - **a failed upgrade**: a "new binary" that exits 1, one that writes garbage on the hand-over
//!   socket, and a real binary that takes the whole state and then fails (its settings name
//!   another core count): each time the old process logs why, takes everything back and serves
//!   on: the live pair relays, the waiting side pairs, new pairs are issued.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support::proxy_process;
use crate::support::seed;
use crate::support::upgrade::{
    Successors, copy_binary, dial, ping_pong, signal, tokens, wait_gone, with_long_ttl,
};

use std::io::{ErrorKind, Write};
use std::net::TcpStream;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use proxy_process::{HyperStub, STEP, ctl, receive};
use rand::{RngCore, SeedableRng};
use seed::Layout;
use sha2::{Digest, Sha256};
use tandem_testkit::process::{Proc, spawn};

/// Bytes each way through the transfer pair (`TANDEM_UPGRADE_TEST_BYTES` overrides, e.g.
/// 1073741824 for the 1 GiB demo).
fn transfer_bytes() -> u64 {
    std::env::var("TANDEM_UPGRADE_TEST_BYTES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(64 << 20)
}

/// Transfer pairs (`TANDEM_UPGRADE_TEST_PAIRS` overrides; 1 by default).
fn transfer_pairs() -> usize {
    std::env::var("TANDEM_UPGRADE_TEST_PAIRS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1)
}

/// Upgrades in a row.
const UPGRADES: usize = 3;

/// Replaces the file at `path` (renamed over it: the running binary's file stays intact).
fn replace(path: &Path, contents: &[u8]) {
    use std::os::unix::fs::PermissionsExt;
    let tmp = path.with_extension("new");
    std::fs::write(&tmp, contents).unwrap();
    std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

fn start(layout: &Layout, binary: &Path) -> (Proc, HyperStub) {
    with_long_ttl(layout);
    let hyper = HyperStub::start(layout);
    let mut proc = spawn(
        "proxy",
        binary.to_str().unwrap(),
        &["run", "public", "--upgrade-ready-within", "60"],
        &layout.env_with("PROXY_SETTINGS", "public-proxy-1"),
    );
    proc.wait_for("public proxy started");
    (proc, hyper)
}

/// Writes `n` seeded bytes; stops at 90% until `go`; returns their sha256.
fn send(mut s: TcpStream, n: u64, seed: u64, go: mpsc::Receiver<()>) -> [u8; 32] {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 64 * 1024];
    let mut sent = 0u64;
    let mut gated = false;
    while sent < n {
        if !gated && sent >= n / 10 * 9 {
            go.recv_timeout(STEP * 10).expect("go");
            gated = true;
        }
        let k = (n - sent).min(buf.len() as u64) as usize;
        rng.fill_bytes(&mut buf[..k]);
        s.write_all(&buf[..k]).unwrap();
        h.update(&buf[..k]);
        sent += k as u64;
    }
    s.shutdown(std::net::Shutdown::Write).unwrap();
    h.finalize().into()
}

/// Connects to `addr` in a loop until `stop`; counts connections and refusals.
fn connect_loop(addr: String, stop: Arc<AtomicBool>) -> JoinHandle<(u64, u64)> {
    std::thread::spawn(move || {
        let (mut ok, mut refused) = (0, 0);
        while !stop.load(Ordering::Relaxed) {
            match TcpStream::connect(&addr) {
                Ok(s) => {
                    ok += 1;
                    drop(s);
                }
                Err(e) if e.kind() == ErrorKind::ConnectionRefused => refused += 1,
                Err(e) => panic!("connect: {e}"),
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        (ok, refused)
    })
}

/// The `name=value` field of a log line.
fn field(line: &str, name: &str) -> String {
    line.split(&format!("{name}="))
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .unwrap_or_else(|| panic!("no {name} in {line}"))
        .to_owned()
}

/// Sums every `key` number in `proxy ctl stats --json`.
fn stat(layout: &Layout, key: &str) -> u64 {
    fn sum(v: &serde_json::Value, key: &str) -> u64 {
        match v {
            serde_json::Value::Object(m) => m
                .iter()
                .map(|(k, v)| {
                    if k == key {
                        v.as_u64().unwrap_or(0)
                    } else {
                        sum(v, key)
                    }
                })
                .sum(),
            serde_json::Value::Array(a) => a.iter().map(|v| sum(v, key)).sum(),
            _ => 0,
        }
    }
    let text = ctl(layout, &["stats", "--json"]).expect("stats");
    sum(&serde_json::from_str(&text).unwrap(), key)
}

#[test]
fn sigusr2_three_times_mid_transfer_keeps_every_pair_and_refuses_no_connection_io_uring() {
    three_upgrades_mid_transfer("io_uring");
}

#[test]
fn sigusr2_three_times_mid_transfer_keeps_every_pair_and_refuses_no_connection_epoll() {
    three_upgrades_mid_transfer("epoll");
}

fn three_upgrades_mid_transfer(driver: &str) {
    let layout = Layout::new();
    std::fs::write(
        layout.role("public-proxy-1").join("002_driver.yml"),
        format!("public:\n  engine:\n    driver: {driver}\n"),
    )
    .unwrap();
    let binary = copy_binary(&layout);
    let (mut proxy, _hyper) = start(&layout, &binary);
    let mut successors = Successors::default();
    let bytes = transfer_bytes();

    // The transfer pair, both ways, gated at 90% until the upgrades are done.
    let pairs = transfer_pairs();
    let mut gos = Vec::new();
    let mut flows = Vec::new();
    let mut endpoint = String::new();
    for p in 0..pairs {
        let (e, t) = tokens(&layout);
        let (mut a, mut b) = (dial(&e, &t[0]), dial(&e, &t[1]));
        ping_pong(&mut a, &mut b);
        endpoint = e;
        for (i, (from, to)) in [(a.try_clone().unwrap(), b.try_clone().unwrap()), (b, a)]
            .into_iter()
            .enumerate()
        {
            let (go_tx, go) = mpsc::channel();
            gos.push(go_tx);
            let seed = (2 * p + i) as u64;
            // The first pairs wait at 90% while the others are created (one `ctl` each).
            to.set_read_timeout(Some(STEP * 10)).unwrap();
            flows.push((
                std::thread::spawn(move || send(from, bytes, seed, go)),
                std::thread::spawn(move || receive(to)),
            ));
        }
    }
    // The waiting pair: side A now, side B after the upgrades.
    let (w_endpoint, w) = tokens(&layout);
    let mut waiting_a = dial(&w_endpoint, &w[0]);
    // A client connecting to the pairing port in a loop, from before the first signal.
    let stop = Arc::new(AtomicBool::new(false));
    let looper = connect_loop(endpoint.clone(), stop.clone());

    let mut pid = proxy.id() as i32;
    for round in 1..=UPGRADES {
        let signalled = Instant::now();
        signal(pid, libc::SIGUSR2);
        let done = proxy.wait_for("upgrade complete");
        let to_ready = signalled.elapsed();
        let new_pid: i32 = field(&done, "new_pid").parse().unwrap();
        successors.0.push(new_pid);
        eprintln!(
            "{driver}: upgrade {round}: signal to ready {to_ready:?} (old process: took_ms={}), bytes_moved={}, live_pairs={}, issued_pairs={}, sockets={}",
            field(&done, "took_ms"),
            field(&done, "bytes_moved"),
            field(&done, "live_pairs"),
            field(&done, "issued_pairs"),
            field(&done, "sockets"),
        );
        assert_eq!(
            field(&done, "live_pairs"),
            pairs.to_string(),
            "the transfer pairs moved"
        );
        assert_eq!(field(&done, "issued_pairs"), "1", "the waiting pair moved");
        if round == 1 {
            let status = proxy.wait_exit(STEP);
            assert_eq!(status.code(), Some(0), "the first process exits 0");
        } else {
            wait_gone(pid);
        }
        pid = new_pid;
    }
    // The waiting side's partner pairs with it in the process that now holds it.
    let mut waiting_b = dial(&w_endpoint, &w[1]);
    ping_pong(&mut waiting_a, &mut waiting_b);
    for go in gos {
        go.send(()).unwrap();
    }
    for (sender, receiver) in flows {
        let sent = sender.join().expect("sender");
        let (got, n) = receiver.join().expect("receiver");
        assert_eq!(n, bytes, "every byte arrived");
        assert_eq!(sent, got, "sha256 of the stream");
    }
    stop.store(true, Ordering::Relaxed);
    let (connected, refused) = looper.join().unwrap();
    eprintln!("looping client: {connected} connections, {refused} refused");
    assert!(connected > 0);
    assert_eq!(refused, 0, "the pairing port never refused a connection");
    assert_eq!(stat(&layout, "closed_reset"), 0, "no pair was reset");
    signal(pid, libc::SIGTERM);
    wait_gone(pid);
}

#[test]
fn a_new_binary_that_fails_leaves_the_old_one_serving_with_everything() {
    let layout = Layout::new();
    std::fs::write(
        layout.role("public-proxy-1").join("002_cores.yml"),
        "public:\n  engine:\n    cores: 2\n",
    )
    .unwrap();
    let binary = copy_binary(&layout);
    let (mut proxy, _hyper) = start(&layout, &binary);
    let pid = proxy.id() as i32;
    let (endpoint, t) = tokens(&layout);
    let (mut a, mut b) = (dial(&endpoint, &t[0]), dial(&endpoint, &t[1]));
    ping_pong(&mut a, &mut b);
    let (w_endpoint, w) = tokens(&layout);
    let mut waiting_a = dial(&w_endpoint, &w[0]);

    // 1: the binary at the path exits 1 at once (asked by `proxy ctl upgrade`, which fails).
    let real = std::fs::read(&binary).unwrap();
    replace(&binary, b"#!/bin/sh\nexit 1\n");
    let err = ctl(&layout, &["upgrade"]).expect_err("ctl upgrade reports the rollback");
    assert!(err.contains("upgrade rolled back"), "{err}");
    proxy.wait_for("upgrade failed; this process keeps serving");
    ping_pong(&mut a, &mut b);

    // 2: a hostile peer on the hand-over socket: garbage, then silence.
    replace(
        &binary,
        b"#!/bin/sh\nprintf 'GET / HTTP/1.1\\r\\n\\r\\n' >&3\nsleep 2\n",
    );
    signal(pid, libc::SIGUSR2);
    let line = proxy.wait_for("upgrade failed; this process keeps serving");
    assert!(line.contains("bad_magic"), "{line}");
    ping_pong(&mut a, &mut b);

    // 3: the real binary takes the whole state, then cannot use it (another core count).
    replace(&binary, &real);
    std::fs::write(
        layout.role("public-proxy-1").join("002_cores.yml"),
        "public:\n  engine:\n    cores: 1\n",
    )
    .unwrap();
    signal(pid, libc::SIGUSR2);
    proxy.wait_for("engine exported");
    let line = proxy.wait_for("upgrade failed; this process keeps serving");
    assert!(line.contains("cores"), "the new process said why: {line}");
    // Everything came back: the live pair relays, the waiting side pairs, pairs are issued.
    ping_pong(&mut a, &mut b);
    let mut waiting_b = dial(&w_endpoint, &w[1]);
    ping_pong(&mut waiting_a, &mut waiting_b);
    let (e, t2) = tokens(&layout);
    let (mut c, mut d) = (dial(&e, &t2[0]), dial(&e, &t2[1]));
    ping_pong(&mut c, &mut d);
    assert_eq!(stat(&layout, "closed_reset"), 0);
    let status = {
        signal(pid, libc::SIGTERM);
        drop((a, b, c, d, waiting_a, waiting_b));
        proxy.wait_exit(STEP)
    };
    assert_eq!(status.code(), Some(0));
}

#[test]
fn proxy_ctl_upgrade_hands_a_live_pair_to_the_new_process() {
    let layout = Layout::new();
    let binary = copy_binary(&layout);
    let (mut proxy, _hyper) = start(&layout, &binary);
    let mut successors = Successors::default();
    let (endpoint, t) = tokens(&layout);
    let (mut a, mut b) = (dial(&endpoint, &t[0]), dial(&endpoint, &t[1]));
    ping_pong(&mut a, &mut b);
    let out = ctl(&layout, &["upgrade"]).expect("ctl upgrade");
    assert!(out.starts_with("upgraded: new pid "), "{out}");
    let new_pid: i32 = out
        .trim_start_matches("upgraded: new pid ")
        .split(',')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    successors.0.push(new_pid);
    assert!(out.contains("1 live"), "{out}");
    assert_eq!(
        proxy.wait_exit(STEP).code(),
        Some(0),
        "the old process exits 0"
    );
    ping_pong(&mut a, &mut b);
    let (e, t2) = tokens(&layout);
    let (mut c, mut d) = (dial(&e, &t2[0]), dial(&e, &t2[1]));
    ping_pong(&mut c, &mut d);
    signal(new_pid, libc::SIGTERM);
    wait_gone(new_pid);
}
