//! Helpers for the proxy-level hostile-input tests (`abuse_proxy_*.rs`): the real `proxy run
//! public` with the test role as a child whose pid we signal and whose memory we read, and
//! `proxy ctl` calls against it.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use rand::{RngCore, SeedableRng};
use sha2::{Digest, Sha256};

use crate::seed_support::{Layout, PROXY};

/// Upper bound for a start-up or a blocking step, so a hang fails the test.
pub const STEP: Duration = Duration::from_secs(60);

/// The proxy child: killed on drop; its stderr lines arrive on `lines`.
pub struct ProxyProc {
    child: Child,
    lines: mpsc::Receiver<String>,
}

impl ProxyProc {
    pub fn start(layout: &Layout) -> Self {
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
    pub fn wait_for(&self, needle: &str) {
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

    pub fn sigterm(&self) {
        // SAFETY: plain kill(2) on our own child's pid.
        let rc = unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        assert_eq!(rc, 0);
    }

    /// Waits (bounded) for the exit status, draining stderr so the child never blocks on it.
    pub fn wait_exit(&mut self, limit: Duration) -> std::process::ExitStatus {
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
pub fn ctl(layout: &Layout, action: &[&str]) -> Result<String, String> {
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
pub fn create_pair(layout: &Layout) -> (TcpStream, TcpStream) {
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

/// The resident set size of the proxy process, in KiB (`VmRSS` of /proc/<pid>/status).
impl ProxyProc {
    pub fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .expect("VmRSS of the proxy")
    }
}

/// Reads to EOF; returns the sha256 and the byte count.
pub fn receive(mut s: TcpStream) -> ([u8; 32], u64) {
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

/// Writes `n` seeded pseudo-random bytes, shuts down writing, returns their sha256.
pub fn send_seeded(mut s: TcpStream, n: u64, seed: u64) -> [u8; 32] {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 64 * 1024];
    let mut left = n;
    while left > 0 {
        let k = left.min(buf.len() as u64) as usize;
        rng.fill_bytes(&mut buf[..k]);
        s.write_all(&buf[..k]).unwrap();
        h.update(&buf[..k]);
        left -= k as u64;
    }
    s.shutdown(std::net::Shutdown::Write).unwrap();
    h.finalize().into()
}
