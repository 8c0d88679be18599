//! The real `proxy run public` (test role) drained with SIGTERM, in two cases that do not depend
//! on the machine's speed:
//!
//! - **completion**: with a generous `engine.drain_grace` (120 s), pairs created with `proxy ctl
//!   pair create --json` are mid-transfer when the signal arrives; the data port then takes no
//!   new connection and `pair create` fails, while the live transfers finish intact (sha256) and
//!   the proxy exits 0 as soon as they end (however long a loaded machine takes, within the grace);
//! - **cut-off**: with a short grace (1 s), a stalled pair (one peer stops reading, the other
//!   never finishes sending) is cut once the grace has passed, not before, and the proxy exits 0.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support::proxy_process;
use crate::support::seed;

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use proxy_process::{ProxyProc, STEP, create_pair, ctl, receive};
use rand::{RngCore, SeedableRng};
use seed::Layout;
use sha2::{Digest, Sha256};

/// Pairs mid-transfer when SIGTERM arrives.
const PAIRS: usize = 3;
/// Bytes each way per pair: half before the signal, half after.
const BYTES: u64 = 32 << 20;
/// The completion case's grace: far more than the transfers need on any machine.
const LONG_GRACE: Duration = Duration::from_secs(120);
/// The cut-off case's grace.
const SHORT_GRACE: Duration = Duration::from_secs(1);

/// Sets the test role's `engine.drain_grace` with a settings file merged over the role's.
fn with_drain_grace(layout: &Layout, grace: Duration) {
    let text = format!(
        "public:\n  engine:\n    drain_grace: {}\n",
        grace.as_secs_f64()
    );
    std::fs::write(
        layout.role("public-proxy-1").join("002_drain_grace.yml"),
        text,
    )
    .unwrap();
}

/// Writes `BYTES` seeded bytes: half, then tells `halfway` and waits for `go`, then the rest.
fn send(
    mut s: TcpStream,
    seed: u64,
    halfway: mpsc::Sender<()>,
    go: mpsc::Receiver<()>,
) -> [u8; 32] {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 64 * 1024];
    let chunks = BYTES / buf.len() as u64;
    for i in 0..chunks {
        if i == chunks / 2 {
            halfway.send(()).unwrap();
            go.recv_timeout(STEP).expect("go signal");
        }
        rng.fill_bytes(&mut buf);
        s.write_all(&buf).unwrap();
        h.update(&buf);
    }
    s.shutdown(std::net::Shutdown::Write).unwrap();
    h.finalize().into()
}

/// One direction: sha256 sent, (sha256 received, bytes received).
type Flow = (JoinHandle<[u8; 32]>, JoinHandle<([u8; 32], u64)>);

/// SIGTERM, then: the drain starts, the last data port closes, the pairing port refuses
/// connections and `pair create` fails.
fn sigterm_and_check_no_new_pairs(proxy: &mut ProxyProc, layout: &Layout) -> Instant {
    let pairing = format!("127.0.0.1:{}", layout.ports["TANDEM_TEST_PP_INTERNAL_PORT"]);
    proxy.sigterm();
    let signalled = Instant::now();
    proxy.wait_for("public proxy stopping: draining");
    // Once the engine says its last listener closed, the data port refuses connections.
    proxy.wait_for("every data port is closed");
    assert!(
        TcpStream::connect(&pairing).is_err(),
        "pairing port still accepting"
    );
    assert!(
        ctl(layout, &["pair", "create", "--json"]).is_err(),
        "pair create refused while draining"
    );
    signalled
}

#[test]
fn sigterm_drains_live_pairs_refuses_new_ones_and_exits_zero() {
    let layout = Layout::new();
    with_drain_grace(&layout, LONG_GRACE);
    let mut proxy = ProxyProc::start(&layout);
    proxy.wait_for("public proxy started");

    let (halfway_tx, halfway) = mpsc::channel();
    let mut gos = Vec::new();
    let mut flows: Vec<Flow> = Vec::new();
    for p in 0..PAIRS {
        let (a, b) = create_pair(&layout);
        for (i, (from, to)) in [(a.try_clone().unwrap(), b.try_clone().unwrap()), (b, a)]
            .into_iter()
            .enumerate()
        {
            let (go_tx, go) = mpsc::channel();
            gos.push(go_tx);
            let tx = halfway_tx.clone();
            let seed = (p * 2 + i) as u64;
            flows.push((
                std::thread::spawn(move || send(from, seed, tx, go)),
                std::thread::spawn(move || receive(to)),
            ));
        }
    }
    for _ in 0..flows.len() {
        halfway.recv_timeout(STEP).expect("every flow halfway");
    }

    sigterm_and_check_no_new_pairs(&mut proxy, &layout);

    // The live pairs finish their transfers during the grace, at whatever pace the machine has.
    for go in gos {
        go.send(()).unwrap();
    }
    for (sender, receiver) in flows {
        let sent = sender.join().expect("sender");
        let (got, n) = receiver.join().expect("receiver");
        assert_eq!(n, BYTES, "every byte arrived");
        assert_eq!(sent, got, "sha256 of the stream");
    }
    // The proxy exits once the last pair closed (the bound only catches a hang).
    let status = proxy.wait_exit(LONG_GRACE + STEP);
    assert!(status.success(), "exit status {status:?}");
    assert_eq!(status.code(), Some(0));
}

/// Writes until the socket fails (the proxy cut the pair); returns the bytes written.
fn write_until_cut(mut s: TcpStream) -> u64 {
    let buf = vec![0x5a_u8; 64 * 1024];
    let mut sent = 0u64;
    while let Ok(n) = s.write(&buf) {
        sent += n as u64;
    }
    sent
}

#[test]
fn sigterm_cuts_a_stalled_pair_after_a_short_grace_and_exits_zero() {
    let layout = Layout::new();
    with_drain_grace(&layout, SHORT_GRACE);
    let mut proxy = ProxyProc::start(&layout);
    proxy.wait_for("public proxy started");

    // A stalled pair: A sends without end, B reads the first bytes and then stops reading.
    let (a, mut b) = create_pair(&layout);
    let writer = std::thread::spawn(move || write_until_cut(a));
    let mut first = [0u8; 1024];
    b.read_exact(&mut first).unwrap();

    let signalled = sigterm_and_check_no_new_pairs(&mut proxy, &layout);
    let status = proxy.wait_exit(SHORT_GRACE + STEP);
    let exited = signalled.elapsed();
    assert!(status.success(), "exit status {status:?}");
    assert_eq!(status.code(), Some(0));
    assert!(
        exited >= SHORT_GRACE,
        "the pair was given its grace first: exited after {exited:?}"
    );
    // Both sides of the stalled pair were cut: A's writes fail, B reads a reset or EOF.
    let sent = writer.join().expect("writer");
    assert!(sent > 1024, "A was mid-transfer: {sent} bytes");
    b.set_read_timeout(Some(STEP)).unwrap();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match b.read(&mut buf) {
            Ok(0) => break,
            Ok(_) => {}
            Err(e) if e.kind() == ErrorKind::ConnectionReset => break,
            Err(e) => panic!("B: the stalled pair was not cut: {e}"),
        }
    }
}
