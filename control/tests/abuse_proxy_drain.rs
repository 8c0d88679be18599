//! The real `proxy run public` (test role) drained with SIGTERM under load: pairs created with
//! `proxy ctl pair create --json` are mid-transfer when the signal arrives; after it, the data
//! port takes no new connection and `pair create` fails, while the live transfers finish intact
//! (sha256) within the drain grace, and the proxy exits with status 0.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod seed_support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use rand::{RngCore, SeedableRng};
use seed_support::{Layout, PROXY};
use sha2::{Digest, Sha256};

/// Pairs mid-transfer when SIGTERM arrives.
const PAIRS: usize = 3;
/// Bytes each way per pair: half before the signal, half after.
const BYTES: u64 = 32 << 20;
/// The proxy's drain grace (the default, `engine.drain_grace` 10 s; the test role sets none).
const GRACE: Duration = Duration::from_secs(10);
/// Upper bound for a start-up or a blocking step, so a hang fails the test.
const STEP: Duration = Duration::from_secs(60);

/// The proxy child: killed on drop; its stderr lines arrive on `lines`.
struct ProxyProc {
    child: Child,
    lines: mpsc::Receiver<String>,
}

impl ProxyProc {
    fn start(layout: &Layout) -> Self {
        let mut child = Command::new(PROXY)
            .args(["run", "public"])
            .envs(layout.env_with("PROXY_SETTINGS", "public-proxy-1"))
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        ProxyProc { child, lines }
    }

    /// Waits (bounded) for a log line containing `needle`.
    fn wait_for(&self, needle: &str) {
        let deadline = Instant::now() + STEP;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = self
                .lines
                .recv_timeout(left)
                .unwrap_or_else(|_| panic!("proxy: no {needle:?} within {STEP:?}"));
            if line.contains(needle) {
                return;
            }
        }
    }

    fn sigterm(&self) {
        // SAFETY: plain kill(2) on our own child's pid.
        let rc = unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        assert_eq!(rc, 0);
    }

    /// Waits (bounded) for the exit status, draining stderr so the child never blocks on it.
    fn wait_exit(&mut self, limit: Duration) -> std::process::ExitStatus {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "proxy still running after {limit:?}"
            );
            let _ = self.lines.recv_timeout(Duration::from_millis(20));
        }
    }
}

impl Drop for ProxyProc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `proxy ctl <action>` against the test proxy; stdout on success, stderr on failure.
fn ctl(layout: &Layout, action: &[&str]) -> Result<String, String> {
    let mut args = layout.ctl_args();
    args.extend(action.iter().map(|s| s.to_string()));
    let out = Command::new(Path::new(PROXY)).args(&args).output().unwrap();
    if out.status.success() {
        Ok(String::from_utf8(out.stdout).unwrap())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

/// `pair create --json`: the endpoint and both sides connected with their tokens.
fn create_pair(layout: &Layout) -> (TcpStream, TcpStream) {
    let text = ctl(layout, &["pair", "create", "--json"]).expect("pair create");
    let doc: serde_json::Value = serde_json::from_str(&text).unwrap();
    let endpoint = doc["endpoint"].as_str().unwrap();
    let dial = |token: &serde_json::Value| {
        let token = STANDARD.decode(token.as_str().unwrap()).unwrap();
        let mut s = TcpStream::connect(endpoint).unwrap();
        s.set_read_timeout(Some(STEP)).unwrap();
        s.set_write_timeout(Some(STEP)).unwrap();
        s.write_all(&token).unwrap();
        s
    };
    (dial(&doc["tokens"][0]), dial(&doc["tokens"][1]))
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

fn receive(mut s: TcpStream) -> ([u8; 32], u64) {
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 64 * 1024];
    let mut n = 0u64;
    loop {
        let k = s.read(&mut buf).unwrap();
        if k == 0 {
            return (h.finalize().into(), n);
        }
        h.update(&buf[..k]);
        n += k as u64;
    }
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
    // No new pairs: the data port stops taking connections and pair create fails (bounded poll).
    let deadline = Instant::now() + STEP;
    while TcpStream::connect(&pairing).is_ok() {
        assert!(Instant::now() < deadline, "pairing port still accepting");
        std::thread::sleep(Duration::from_millis(20));
    }
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
