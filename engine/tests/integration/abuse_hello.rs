//! ClientHello hostility on the TLS port, on both drivers. Real hellos from rustls with a
//! post-quantum sized key share (a 1216-byte X25519MLKEM768 share: rustls 0.23's ring provider
//! has no ML-KEM, so the test plugs in a key-exchange group that only produces the share), the
//! same hello re-framed over several records, padded past one 16 KiB record, and sent in
//! 1-byte segments, all route and are replayed whole. Truncated, malformed, oversized and
//! non-TLS input is closed without a reply, within the hello deadline, and counted.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers outside #[test] fns

use crate::abuse_support;

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use abuse_support::*;
use rustls::NamedGroup;
use rustls::crypto::{ActiveKeyExchange, SharedSecret, SupportedKxGroup};
use tandem_engine::{ClientHelloInfo, Driver, EngineConfig, EngineHandle, PairKind, Token};

abuse_both_drivers!(
    real_and_reshaped_hellos_route_and_replay_whole,
    hostile_hellos_are_closed_and_counted,
);

/// The SNI our resolver routes; any other name is refused.
const SNI: &str = "svc.example.com";
/// The hello deadline of `abuse_support::config`.
const HELLO_DEADLINE: Duration = Duration::from_secs(1);
/// Size of an X25519MLKEM768 client key share (ML-KEM-768 encapsulation key 1184 + X25519 32).
const PQ_SHARE: usize = 1216;

/// A key-exchange group that offers a PQ-sized share and can never complete (we only need the hello).
#[derive(Debug)]
struct PqShareOnly;

impl SupportedKxGroup for PqShareOnly {
    fn start(&self) -> Result<Box<dyn ActiveKeyExchange>, rustls::Error> {
        Ok(Box::new(PqShare(vec![0x42; PQ_SHARE])))
    }
    fn name(&self) -> NamedGroup {
        NamedGroup::X25519MLKEM768
    }
}

struct PqShare(Vec<u8>);

impl ActiveKeyExchange for PqShare {
    fn complete(self: Box<Self>, _: &[u8]) -> Result<SharedSecret, rustls::Error> {
        Err(rustls::Error::General("test-only key share".into()))
    }
    fn pub_key(&self) -> &[u8] {
        &self.0
    }
    fn group(&self) -> NamedGroup {
        NamedGroup::X25519MLKEM768
    }
}

/// The records of a real rustls ClientHello offering X25519MLKEM768 first (then X25519).
fn pq_hello(sni: &str) -> Vec<u8> {
    static PQ: PqShareOnly = PqShareOnly;
    let mut provider = rustls::crypto::ring::default_provider();
    provider.kx_groups.insert(0, &PQ);
    let cfg = rustls::ClientConfig::builder_with_provider(Arc::new(provider))
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .with_root_certificates(rustls::RootCertStore::empty())
        .with_no_client_auth();
    let name = rustls::pki_types::ServerName::try_from(sni.to_owned()).unwrap();
    let mut conn = rustls::ClientConnection::new(Arc::new(cfg), name).unwrap();
    let mut out = Vec::new();
    conn.write_tls(&mut out).unwrap();
    let share_header = [0x11, 0xec, (PQ_SHARE >> 8) as u8, PQ_SHARE as u8];
    assert!(
        out.windows(4).any(|w| w == share_header),
        "the hello carries an X25519MLKEM768 key share"
    );
    assert!(
        out.len() > PQ_SHARE,
        "the share is in the hello: {} bytes",
        out.len()
    );
    out
}

/// The handshake bytes of `records` (record headers stripped).
fn handshake(records: &[u8]) -> Vec<u8> {
    let mut hs = Vec::new();
    let mut rest = records;
    while rest.len() >= 5 {
        let len = usize::from(u16::from_be_bytes([rest[3], rest[4]]));
        hs.extend_from_slice(&rest[5..5 + len]);
        rest = &rest[5 + len..];
    }
    hs
}

/// Frames handshake bytes into records of at most `chunk` bytes.
fn frame(hs: &[u8], chunk: usize) -> Vec<u8> {
    let mut out = Vec::new();
    for part in hs.chunks(chunk) {
        out.extend_from_slice(&[22, 3, 1]);
        out.extend_from_slice(&(part.len() as u16).to_be_bytes());
        out.extend_from_slice(part);
    }
    out
}

/// Appends a padding extension (type 21) of `extra` zero bytes to a ClientHello handshake
/// message, fixing the extensions and handshake lengths.
fn pad(hs: &[u8], extra: usize) -> Vec<u8> {
    let mut at = 4 + 2 + 32; // header, legacy_version, random
    at += 1 + usize::from(hs[at]); // session id
    at += 2 + usize::from(u16::from_be_bytes([hs[at], hs[at + 1]])); // cipher suites
    at += 1 + usize::from(hs[at]); // compression methods
    let ext_len = usize::from(u16::from_be_bytes([hs[at], hs[at + 1]])) + 4 + extra;
    let mut out = hs.to_vec();
    out[at..at + 2].copy_from_slice(&(ext_len as u16).to_be_bytes());
    out.extend_from_slice(&21u16.to_be_bytes());
    out.extend_from_slice(&(extra as u16).to_be_bytes());
    out.resize(out.len() + extra, 0);
    let body = (out.len() - 4) as u32;
    out[1..4].copy_from_slice(&body.to_be_bytes()[1..]);
    out
}

/// An engine with a TLS port whose resolver issues an SNI pair for [`SNI`] and publishes the
/// target's token.
struct SniEngine {
    h: EngineHandle,
    issued: Arc<Mutex<Vec<Token>>>,
}

impl SniEngine {
    fn start(cfg: EngineConfig) -> Self {
        let cell: Arc<OnceLock<EngineHandle>> = Arc::new(OnceLock::new());
        let issued: Arc<Mutex<Vec<Token>>> = Arc::default();
        let (c, i) = (cell.clone(), issued.clone());
        let resolver = move |hello: &ClientHelloInfo, _: SocketAddr| {
            if hello.sni.as_deref() != Some(SNI) {
                return None;
            }
            let t = c.get()?.create_pair(PairKind::Sni).ok()?;
            i.lock().unwrap().push(t.side_b);
            Some(t.side_a)
        };
        let mut cfg = cfg;
        cfg.tls_addr = Some("127.0.0.1:0".parse().unwrap());
        let (h, _rx) = start_with(cfg, Arc::new(resolver));
        cell.set(h.clone()).ok().unwrap();
        SniEngine { h, issued }
    }

    fn tls(&self) -> SocketAddr {
        self.h.local_addrs().tls.unwrap()
    }

    /// Waits (bounded) for the resolver to issue the `n`th pair; returns its target token.
    fn nth_target(&self, n: usize) -> Token {
        let mut found = None;
        eventually("resolver issued the pair", || {
            found = self.issued.lock().unwrap().get(n).copied();
            found.is_some()
        });
        found.unwrap()
    }
}

/// Sends `bytes` to the TLS port in segments of `seg` bytes; the target must receive exactly
/// `bytes` first, then the pair relays.
fn route(e: &SniEngine, n: usize, bytes: &[u8], seg: usize) {
    let mut client = connect_from(1, e.tls());
    for part in bytes.chunks(seg) {
        client.write_all(part).unwrap();
    }
    let token = e.nth_target(n);
    let mut target = send_from(1, e.h.local_addrs().pairing, token.as_bytes());
    let mut replayed = vec![0u8; bytes.len()];
    target.read_exact(&mut replayed).unwrap();
    assert!(replayed == bytes, "hello {n} replayed byte for byte");
    target.write_all(b"server hello").unwrap();
    let mut buf = [0u8; 12];
    client.read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"server hello");
}

fn real_and_reshaped_hellos_route_and_replay_whole(driver: Driver) {
    let e = SniEngine::start(config(driver));
    let hello = pq_hello(SNI);
    let hs = handshake(&hello);
    let big = pad(&hs, 20 * 1024); // past one 16 KiB record
    let cases: [(&str, Vec<u8>, usize); 5] = [
        ("as rustls sent it", hello.clone(), usize::MAX),
        ("1-byte segments", hello.clone(), 1),
        ("over 9 records", frame(&hs, hs.len() / 8), 64),
        ("1-byte records", frame(&hs, 1), 4096),
        ("padded over 2 records", frame(&big, 16 * 1024), 1000),
    ];
    for (n, (name, bytes, seg)) in cases.iter().enumerate() {
        eprintln!("{name}: {} bytes", bytes.len());
        route(&e, n, bytes, *seg);
    }
    assert_eq!(total(&e.h, |s| s.paired), cases.len() as u64);
    assert_eq!(total(&e.h, |s| s.bad_hellos), 0);
    e.h.shutdown().unwrap();
}

/// Sends `bytes` (then FIN if `fin`) and expects a close without a reply (`limit` is the
/// deadline it should come at; whether it came at once or at the deadline shows in the
/// counters by reason, which the caller checks, not in the time: a loaded machine is late).
fn refused(e: &SniEngine, bytes: &[u8], fin: bool, limit: Duration) -> Duration {
    let mut s: TcpStream = send_from(1, e.tls(), bytes);
    if fin {
        s.shutdown(Shutdown::Write).unwrap();
    }
    closed_within(&mut s, limit)
}

fn hostile_hellos_are_closed_and_counted(driver: Driver) {
    let mut cfg = config(driver);
    cfg.bad_token_limit = u32::MAX;
    cfg.hello_max_bytes = tandem_engine::config::MIN_HELLO_BYTES;
    let e = SniEngine::start(cfg);
    let hello = pq_hello(SNI);
    let hs = handshake(&hello);
    let now = Duration::ZERO;

    refused(&e, &hello[..hello.len() / 2], true, now); // truncated, then FIN
    let mut bad_lengths = hello.clone();
    bad_lengths[9..12].copy_from_slice(&[0, 0, 3]); // handshake says 3 bytes: no room for a hello
    refused(&e, &bad_lengths, false, now);
    refused(&e, &frame(&pad(&hs, 20 * 1024), 16 * 1024), false, now); // past the 16 KiB bound
    let mut claims_16_mib = vec![22, 3, 1, 0x40, 0x00, 1, 0xff, 0xff, 0xff];
    claims_16_mib.resize(200, 0);
    refused(&e, &claims_16_mib, false, now); // refused on its length, not at the deadline
    refused(
        &e,
        b"GET / HTTP/1.1\r\nHost: svc.example.com\r\n\r\n",
        false,
        now,
    );
    refused(&e, b"SSH-2.0-OpenSSH_9.6\r\n", false, now);
    refused(&e, &[0x16, 0x03, 0x01, 0x00], true, now); // 4 bytes of a record header
    refused(&e, &pq_hello("unrouted.example.com"), false, now); // no route for this name
    let started = Instant::now();
    // Truncated and held open: cut at the hello deadline (1 s), not before.
    let took = refused(&e, &hello[..100], false, HELLO_DEADLINE);
    assert!(
        started.elapsed() >= HELLO_DEADLINE - Duration::from_millis(50),
        "{took:?}"
    );

    let by = |f| total(&e.h, f);
    // Only the held-open one was cut at the deadline: every other one was refused on its bytes.
    eventually("all counted", || by(|s| s.preamble_timeouts) == 1);
    assert_eq!(
        by(|s| s.bad_hellos),
        6,
        "malformed, oversized, claims 16 MiB, HTTP, SSH, unrouted"
    );
    assert_eq!(by(|s| s.preamble_aborted), 2, "truncated then FIN (twice)");
    assert_eq!(by(|s| s.paired) + by(|s| s.waiting), 0);
    assert!(e.issued.lock().unwrap().is_empty(), "no pair issued");
    // The workers survived all of it: a good hello (small enough for the bound) still routes.
    route(&e, 0, &hello, usize::MAX);
    e.h.shutdown().unwrap();
}
