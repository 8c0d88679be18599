//! The real `proxy run public` (test role) drained with SIGTERM under load: pairs created with
//! `proxy ctl pair create --json` are mid-transfer when the signal arrives; after it, the data
//! port takes no new connection and `pair create` fails, while the live transfers finish intact
//! (sha256) within the drain grace, and the proxy exits with status 0.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::abuse_support;
use crate::seed_support;

use std::io::Write;
use std::net::TcpStream;
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use abuse_support::{ProxyProc, STEP, create_pair, ctl, receive};
use rand::{RngCore, SeedableRng};
use seed_support::Layout;
use sha2::{Digest, Sha256};

/// Pairs mid-transfer when SIGTERM arrives.
const PAIRS: usize = 3;
/// Bytes each way per pair: half before the signal, half after.
const BYTES: u64 = 32 << 20;
/// The proxy's drain grace (the default, `engine.drain_grace` 10 s; the test role sets none).
const GRACE: Duration = Duration::from_secs(10);
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

#[test]
fn sigterm_drains_live_pairs_refuses_new_ones_and_exits_zero() {
    let layout = Layout::new();
    let mut proxy = ProxyProc::start(&layout);
    proxy.wait_for("public proxy started");
    let pairing = format!("127.0.0.1:{}", layout.ports["TANDEM_TEST_PP_INTERNAL_PORT"]);

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

    proxy.sigterm();
    let signalled = Instant::now();
    proxy.wait_for("public proxy stopping: draining");
    // No new pairs: once the engine says its last listener closed, the data port refuses
    // connections, and pair create fails.
    proxy.wait_for("every data port is closed");
    assert!(
        TcpStream::connect(&pairing).is_err(),
        "pairing port still accepting"
    );
    assert!(
        ctl(&layout, &["pair", "create", "--json"]).is_err(),
        "pair create refused while draining"
    );

    // The live pairs finish their transfers during the grace.
    for go in gos {
        go.send(()).unwrap();
    }
    for (sender, receiver) in flows {
        let sent = sender.join().expect("sender");
        let (got, n) = receiver.join().expect("receiver");
        assert_eq!(n, BYTES, "every byte arrived");
        assert_eq!(sent, got, "sha256 of the stream");
    }
    assert!(
        signalled.elapsed() < GRACE,
        "transfers finished inside the grace"
    );
    let status = proxy.wait_exit(GRACE + STEP);
    assert!(status.success(), "exit status {status:?}");
    assert_eq!(status.code(), Some(0));
}
