//! One pair's bulk transfer through a real running engine over loopback, against a direct
//! loopback TCP transfer measured in the same run.
//!
//! Variants (each moves `PER_ITER` bytes one way per iteration, client → engine → client):
//! - `relay splice`: default pipe pool, so every burst takes the splice(2) path, with the
//!   default 256 KiB pipes and with 64 KiB and 1 MiB ones (F_SETPIPE_SZ; 1 MiB is the default
//!   unprivileged /proc/sys/fs/pipe-max-size);
//! - `relay copy 16/64/256 KiB`: pipe pool of 0, so the copy fallback moves the bytes with a
//!   buffer of `EngineConfig::copy_buf_size`;
//! - `direct tcp`: the same two client threads over one loopback connection, no engine.
//!
//! There is no io_uring `IORING_OP_SPLICE` variant: monoio has no splice op, and driving the
//! op would need a direct io_uring dependency (see the engine report).
//!
//! Run: `CARGO_TARGET_DIR=/work/main/target-engine cargo bench -p tandem-engine --bench bulk`.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use tandem_engine::{Engine, EngineConfig, EngineHandle, PairKind, RefuseAll, Token};

const KIB: usize = 1024;
const MIB: usize = 1024 * KIB;
/// Bytes moved per iteration (bounds one iteration at well under a second on loopback).
const PER_ITER: usize = 64 * MIB;
/// Client read/write chunk, in bytes.
const CHUNK: usize = 256 * KIB;
/// Upper bound on any blocking client call (a stuck relay fails the bench instead of hanging).
const STEP: Duration = Duration::from_secs(30);

/// Two connected client sockets: bytes written to `tx` come out of `rx`.
struct Link {
    tx: TcpStream,
    rx: TcpStream,
    engine: Option<EngineHandle>,
}

impl Drop for Link {
    fn drop(&mut self) {
        if let Some(h) = self.engine.take() {
            h.shutdown().expect("engine shuts down");
        }
    }
}

fn client(s: &TcpStream) {
    s.set_read_timeout(Some(STEP)).unwrap();
    s.set_write_timeout(Some(STEP)).unwrap();
    s.set_nodelay(true).unwrap();
}

fn dial(addr: SocketAddr, token: &Token) -> TcpStream {
    let mut s = TcpStream::connect(addr).expect("connect to the engine");
    client(&s);
    s.write_all(token.as_bytes()).expect("write token");
    s
}

/// A pair through an engine on one unpinned core with `pipes` pipes of `pipe_size` bytes and
/// `copy_buf`-byte copy buffers.
fn relayed(pipes: usize, pipe_size: usize, copy_buf: usize) -> Link {
    let cfg = EngineConfig {
        cores: Some(vec![0]),
        pin: false,
        pipe_pool_size: pipes,
        pipe_size,
        copy_buf_size: copy_buf,
        ..EngineConfig::default()
    };
    let (h, _events) = Engine::start(cfg, Arc::new(RefuseAll)).expect("engine starts");
    let addr = h.local_addrs().pairing;
    let t = h.create_pair(PairKind::Direct).expect("pair created");
    let mut link = Link {
        tx: dial(addr, &t.side_a),
        rx: dial(addr, &t.side_b),
        engine: Some(h),
    };
    // Warm up and check the path is the one the variant names.
    transfer(&mut link, MIB);
    let s = &link.engine.as_ref().unwrap().stats()[0];
    if pipes == 0 {
        assert!(s.copy_fallbacks > 0 && s.pipe_leases == 0, "{s:?}");
    } else {
        assert!(s.pipe_leases > 0 && s.copy_fallbacks == 0, "{s:?}");
    }
    link
}

/// One loopback TCP connection, no engine.
fn direct() -> Link {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let tx = TcpStream::connect(l.local_addr().unwrap()).unwrap();
    let (rx, _) = l.accept().unwrap();
    client(&tx);
    client(&rx);
    Link {
        tx,
        rx,
        engine: None,
    }
}

/// Writes `n` bytes into `link.tx` while another thread reads them from `link.rx`; returns
/// the time until the last byte was read.
fn transfer(link: &mut Link, n: usize) -> Duration {
    let Link { tx, rx, .. } = link;
    let started = Instant::now();
    std::thread::scope(|s| {
        let reader = s.spawn(move || {
            let mut buf = vec![0u8; CHUNK];
            let mut left = n;
            while left > 0 {
                let k = rx.read(&mut buf[..CHUNK.min(left)]).expect("read");
                assert!(k > 0, "early EOF with {left} bytes left");
                left -= k;
            }
        });
        let buf = vec![0x5au8; CHUNK];
        let mut left = n;
        while left > 0 {
            let k = CHUNK.min(left);
            tx.write_all(&buf[..k]).expect("write");
            left -= k;
        }
        reader.join().expect("reader");
    });
    started.elapsed()
}

fn bulk(c: &mut Criterion) {
    let mut g = c.benchmark_group("bulk 64 MiB one way");
    g.throughput(Throughput::Bytes(PER_ITER as u64))
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    let d = EngineConfig::default();
    let (pipes, pipe) = (d.pipe_pool_size, d.pipe_size);
    // (name, None = direct | Some((pipe pool, pipe bytes, copy buffer bytes)))
    let variants = [
        ("direct tcp", None),
        ("relay splice (256 KiB pipe)", Some((pipes, pipe, 64 * KIB))),
        (
            "relay splice 64 KiB pipe",
            Some((pipes, 64 * KIB, 64 * KIB)),
        ),
        ("relay splice 1 MiB pipe", Some((pipes, MIB, 64 * KIB))),
        ("relay copy 16 KiB", Some((0, pipe, 16 * KIB))),
        ("relay copy 64 KiB", Some((0, pipe, 64 * KIB))),
        ("relay copy 256 KiB", Some((0, pipe, 256 * KIB))),
    ];
    for (name, relay) in variants {
        let mut link = match relay {
            None => direct(),
            Some((pipes, pipe, buf)) => relayed(pipes, pipe, buf),
        };
        g.bench_function(name, |b| {
            b.iter_custom(|iters| {
                (0..iters)
                    .map(|_| transfer(&mut link, PER_ITER))
                    .sum::<Duration>()
            })
        });
    }
    g.finish();
}

criterion_group!(benches, bulk);
criterion_main!(benches);
