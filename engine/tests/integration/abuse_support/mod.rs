//! Helpers for the hostile-input tests (`abuse_*.rs`): engines with short deadlines, clients
//! bound to a chosen loopback source address, close timing, a live pair checked with sha256,
//! counters summed over cores, and the process's resident memory.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::io::{ErrorKind, Read, Write};
use std::net::{Ipv4Addr, Shutdown, SocketAddr, SocketAddrV4, TcpStream};
use std::sync::Arc;
use std::sync::mpsc::Receiver;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rand::{RngCore, SeedableRng};
use sha2::{Digest, Sha256};
use tandem_engine::{
    CoreStatsSnapshot, Driver, Engine, EngineConfig, EngineHandle, PairEvent, PairKind, RefuseAll,
    SniResolver, Token,
};

/// Upper bound for any single blocking step (a hang fails the test instead of stalling CI).
pub const STEP: Duration = Duration::from_secs(30);

/// How late past its deadline the engine may close a connection before a test calls it a hang.
/// Generous on purpose: a loaded machine may be seconds late, and no test distinguishes "at
/// once" from "at the deadline" by time (the counters by reason say which it was); only lower
/// bounds ("not before the deadline") are timed.
pub const SLACK: Duration = Duration::from_secs(20);

/// Two unpinned cores on `driver`, short preamble deadlines so tests run quickly.
pub fn config(driver: Driver) -> EngineConfig {
    EngineConfig {
        cores: Some(vec![0, 1]),
        pin: false,
        driver,
        token_deadline: Duration::from_secs(1),
        hello_deadline: Duration::from_secs(1),
        ..EngineConfig::default()
    }
}

/// Starts an engine that refuses every TLS connection.
pub fn start(cfg: EngineConfig) -> (EngineHandle, Receiver<PairEvent>) {
    start_with(cfg, Arc::new(RefuseAll))
}

/// Starts an engine with `resolver`, asserting it runs on the asked driver.
pub fn start_with(
    cfg: EngineConfig,
    resolver: Arc<dyn SniResolver>,
) -> (EngineHandle, Receiver<PairEvent>) {
    let want = match cfg.driver {
        Driver::IoUring => Some(tandem_engine::DriverInUse::IoUring),
        Driver::Legacy => Some(tandem_engine::DriverInUse::Legacy),
        Driver::Auto => None,
    };
    let (h, rx) = Engine::start(cfg, resolver).expect("engine starts");
    if let Some(want) = want {
        assert!(
            h.drivers().iter().all(|d| *d == Some(want)),
            "{:?}",
            h.drivers()
        );
    }
    (h, rx)
}

/// A counter summed over the engine's cores.
pub fn total(h: &EngineHandle, f: fn(&CoreStatsSnapshot) -> u64) -> u64 {
    h.stats().iter().map(f).sum()
}

/// Polls `cond` every 10 ms until it holds; panics after [`STEP`] naming `what`.
pub fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + STEP;
    while !cond() {
        assert!(Instant::now() < deadline, "not within {STEP:?}: {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Connects to `addr` from the loopback address `127.0.0.<host>` (any port).
pub fn connect_from(host: u8, addr: SocketAddr) -> TcpStream {
    try_connect_from(host, addr).expect("connect")
}

/// Like [`connect_from`], returning the error.
pub fn try_connect_from(host: u8, addr: SocketAddr) -> std::io::Result<TcpStream> {
    let sock = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)?;
    let src = SocketAddrV4::new(Ipv4Addr::new(127, 0, 0, host), 0);
    sock.bind(&SocketAddr::V4(src).into())?;
    sock.connect(&addr.into())?;
    let s: TcpStream = sock.into();
    s.set_read_timeout(Some(STEP))?;
    s.set_write_timeout(Some(STEP))?;
    s.set_nodelay(true)?;
    Ok(s)
}

/// Connects from `127.0.0.<host>` and writes `bytes` (errors ignored: the engine may have
/// closed already).
pub fn send_from(host: u8, addr: SocketAddr, bytes: &[u8]) -> TcpStream {
    let mut s = connect_from(host, addr);
    let _ = s.write_all(bytes);
    s
}

/// Reads until the engine closes `s` (EOF or reset); panics if it sends a byte or does not
/// close within `limit` + [`SLACK`] (a hang). Returns how long it took.
pub fn closed_within(s: &mut TcpStream, limit: Duration) -> Duration {
    let start = Instant::now();
    s.set_read_timeout(Some(limit + SLACK)).unwrap();
    let mut buf = [0u8; 64];
    match s.read(&mut buf) {
        Ok(0) => {}
        Err(e) if e.kind() == ErrorKind::ConnectionReset => {}
        Ok(n) => panic!("engine sent {n} bytes to a refused connection"),
        Err(e) => panic!("not closed within {:?}: {e}", limit + SLACK),
    }
    start.elapsed()
}

/// One direction's result: sha256 sent, sha256 received, bytes received.
type DirectionResult = ([u8; 32], [u8; 32], u64);

/// A pair carrying `bytes` each way at once with sha256 on both ends; `join` asserts integrity.
pub struct LiveTransfer {
    threads: Vec<JoinHandle<DirectionResult>>,
}

impl LiveTransfer {
    /// Creates a pair on `h`, dials both sides from 127.0.0.`host` and starts the transfer.
    pub fn start(h: &EngineHandle, host: u8, bytes: u64) -> Self {
        let addr = h.local_addrs().pairing;
        let t = h.create_pair(PairKind::Direct).unwrap();
        let a = send_from(host, addr, t.side_a.as_bytes());
        let b = send_from(host, addr, t.side_b.as_bytes());
        let threads = [
            (a.try_clone().unwrap(), b.try_clone().unwrap(), 1),
            (b, a, 2),
        ]
        .into_iter()
        .map(|(from, to, seed)| {
            let writer = std::thread::spawn(move || send_seeded(from, bytes, seed));
            std::thread::spawn(move || {
                let (got, n) = recv_hashed(to);
                let sent = writer.join().unwrap();
                (sent, got, n)
            })
        })
        .collect();
        LiveTransfer { threads }
    }

    /// Waits for both directions; asserts every byte arrived intact.
    pub fn join(self, bytes: u64) {
        for t in self.threads {
            let (sent, got, n) = t.join().expect("transfer thread");
            assert_eq!(n, bytes, "bytes received");
            assert_eq!(sent, got, "sha256 of the received stream");
        }
    }
}

/// Writes `n` pseudo-random bytes (seeded), shuts down writing, returns their sha256.
pub fn send_seeded(mut s: TcpStream, n: u64, seed: u64) -> [u8; 32] {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 128 * 1024];
    let mut left = n;
    while left > 0 {
        let k = left.min(buf.len() as u64) as usize;
        rng.fill_bytes(&mut buf[..k]);
        s.write_all(&buf[..k]).unwrap();
        h.update(&buf[..k]);
        left -= k as u64;
    }
    s.shutdown(Shutdown::Write).unwrap();
    h.finalize().into()
}

/// Reads to EOF; returns the sha256 and the byte count.
pub fn recv_hashed(mut s: TcpStream) -> ([u8; 32], u64) {
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 128 * 1024];
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

/// Resident set size of this process, in KiB (`VmRSS` in /proc/self/status).
pub fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .expect("VmRSS in /proc/self/status")
}

/// The records of a real rustls TLS 1.3 ClientHello naming `sni` (what a browser's first flight
/// looks like to the engine).
pub fn client_hello(sni: &str) -> Vec<u8> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let cfg = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .with_root_certificates(rustls::RootCertStore::empty())
        .with_no_client_auth();
    let name = rustls::pki_types::ServerName::try_from(sni.to_owned()).unwrap();
    let mut conn = rustls::ClientConnection::new(Arc::new(cfg), name).unwrap();
    let mut out = Vec::new();
    conn.write_tls(&mut out).unwrap();
    out
}

/// A random token no pair was issued for.
pub fn junk_token() -> Token {
    Token::random()
}

/// Generates `name_io_uring` and `name_epoll` tests calling `body(driver)`.
macro_rules! abuse_both_drivers {
    ($($name:ident),* $(,)?) => {
        mod io_uring {
            $(#[test] fn $name() { super::$name(tandem_engine::Driver::IoUring) })*
        }
        mod epoll {
            $(#[test] fn $name() { super::$name(tandem_engine::Driver::Legacy) })*
        }
    };
}
