//! Bulk data integrity and the SNI path, on both drivers.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers outside #[test] fns

use crate::common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::{Arc, OnceLock};

use common::*;
use rand::{Rng, RngCore};
use sha2::{Digest, Sha256};
use tandem_engine::{ClientHelloInfo, Driver, EngineHandle, PairKind, Token};

both_drivers!(
    data_integrity_both_directions_at_once,
    sni_passthrough_replays_the_hello
);

/// Writes `n` random bytes, returns their sha256.
fn send_random(mut s: TcpStream, n: usize) -> [u8; 32] {
    let mut rng = rand::rng();
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 256 * 1024];
    let mut left = n;
    while left > 0 {
        let k = left.min(rng.random_range(1..=buf.len()));
        rng.fill_bytes(&mut buf[..k]);
        s.write_all(&buf[..k]).unwrap();
        h.update(&buf[..k]);
        left -= k;
    }
    s.shutdown(std::net::Shutdown::Write).unwrap();
    h.finalize().into()
}

fn recv_all(mut s: TcpStream) -> ([u8; 32], usize) {
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 256 * 1024];
    let mut total = 0;
    loop {
        let n = s.read(&mut buf).unwrap();
        if n == 0 {
            return (h.finalize().into(), total);
        }
        h.update(&buf[..n]);
        total += n;
    }
}

fn data_integrity_both_directions_at_once(driver: Driver) {
    // Pool of 0 pipes: every transfer takes the copy fallback; default pool: all splice.
    for pipes in [0, 1024] {
        let mut cfg = config(driver);
        cfg.pipe_pool_size = pipes;
        let (h, _rx) = start(cfg);
        let addr = h.local_addrs().pairing;
        let mut rng = rand::rng();
        let sizes = [
            rng.random_range(1..=64 << 20),
            rng.random_range(1..=64 << 20),
        ];
        let t = h.create_pair(PairKind::Direct).unwrap();
        let a = dial(addr, &t.side_a);
        let b = dial(addr, &t.side_b);
        let (a2, b2) = (a.try_clone().unwrap(), b.try_clone().unwrap());
        let wa = std::thread::spawn(move || send_random(a, sizes[0]));
        let wb = std::thread::spawn(move || send_random(b, sizes[1]));
        let ra = std::thread::spawn(move || recv_all(a2));
        let (got_b, n_b) = recv_all(b2);
        let (got_a, n_a) = ra.join().unwrap();
        assert_eq!((n_b, n_a), (sizes[0], sizes[1]));
        assert_eq!(got_b, wa.join().unwrap());
        assert_eq!(got_a, wb.join().unwrap());
        let s = h.stats();
        let leases: u64 = s.iter().map(|s| s.pipe_leases).sum();
        let copies: u64 = s.iter().map(|s| s.copy_fallbacks).sum();
        if pipes == 0 {
            assert!(leases == 0 && copies > 0, "{s:?}");
        } else {
            assert!(leases > 0 && copies == 0, "{s:?}");
        }
        h.shutdown().unwrap();
    }
}

fn sni_passthrough_replays_the_hello(driver: Driver) {
    let handle: Arc<OnceLock<EngineHandle>> = Arc::new(OnceLock::new());
    // The resolver hands the private side's token to the test (a readiness signal, no polling).
    let (token_tx, token_rx) = std::sync::mpsc::channel::<Token>();
    let hh = handle.clone();
    let resolver = move |hello: &ClientHelloInfo, _peer| {
        if hello.sni.as_deref() != Some("svc.internal-server.local") {
            return None;
        }
        let t = hh.get()?.create_pair(PairKind::Sni).ok()?;
        let _ = token_tx.send(t.side_b);
        Some(t.side_a)
    };
    let mut cfg = config(driver);
    cfg.tls_addr = Some("127.0.0.1:0".parse().unwrap());
    let (h, _rx) = start_with(cfg, Arc::new(resolver));
    handle.set(h.clone()).ok().unwrap();
    let tls_addr = h.local_addrs().tls.unwrap();
    let hello = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/corpus/openssl_tls13_sni_alpn.bin"
    ))
    .unwrap();
    let mut client = TcpStream::connect(tls_addr).unwrap();
    client.set_read_timeout(Some(STEP)).unwrap();
    for part in hello.chunks(50) {
        client.write_all(part).unwrap(); // the hello arrives in several segments
    }
    // The resolver runs on the worker; wait (bounded) for it to have issued the pair.
    let token = token_rx.recv_timeout(STEP).expect("resolver called");
    let mut private = dial(h.local_addrs().pairing, &token);
    let mut replayed = vec![0u8; hello.len()];
    private.read_exact(&mut replayed).unwrap();
    assert_eq!(replayed, hello);
    ping_pong(&mut client, &mut private);

    let mut other = TcpStream::connect(tls_addr).unwrap();
    other.set_read_timeout(Some(STEP)).unwrap();
    other.write_all(&hello[..10]).unwrap();
    other
        .write_all(b"garbage that is not a hello at all")
        .unwrap();
    assert_closed(&mut other);
    h.shutdown().unwrap();
}
