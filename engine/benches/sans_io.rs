//! Micro-benchmarks of the sans-IO cores: pair-table operations and ClientHello parsing.
#![allow(clippy::unwrap_used, missing_docs)]

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use tandem_engine::clienthello::ClientHelloReader;
use tandem_engine::pair_table::{Arrival, PairTable, TableLimits};
use tandem_engine::{CoreId, PairId, PairKind, Port, Token};

fn pair_table(c: &mut Criterion) {
    let limits = TableLimits {
        max_pairs: 1 << 20,
        max_waiting: 1 << 20,
        tomb_ttl: Duration::from_secs(30),
    };
    let mut table: PairTable<u32> = PairTable::new(limits);
    let now = Instant::now();
    let mut seq = 0u64;
    c.bench_function("pair_table register+arrive+arrive", |b| {
        b.iter(|| {
            seq += 1;
            let tokens = [Token::random(), Token::random()];
            let id = PairId {
                core: CoreId(0),
                seq,
            };
            table
                .register(id, tokens, PairKind::Direct, now, Duration::from_secs(30))
                .unwrap();
            black_box(table.arrive(&tokens[0], Port::Pairing, 1, now));
            let done = table.arrive(&tokens[1], Port::Pairing, 2, now);
            assert!(matches!(done, Arrival::Paired { .. }));
        })
    });
    c.bench_function("pair_table unknown token", |b| {
        let t = Token::random();
        b.iter(|| black_box(table.arrive(&t, Port::Pairing, 0, now)))
    });
}

fn hello(pad: usize, chunk: usize) -> Vec<u8> {
    let mut body = vec![3, 3];
    body.extend_from_slice(&[7; 32]);
    body.extend_from_slice(&[0, 0, 2, 0x13, 0x01, 1, 0]);
    let host = b"svc.internal-server.local";
    let mut exts = vec![0, 0];
    exts.extend_from_slice(&((host.len() + 5) as u16).to_be_bytes());
    exts.extend_from_slice(&((host.len() + 3) as u16).to_be_bytes());
    exts.push(0);
    exts.extend_from_slice(&(host.len() as u16).to_be_bytes());
    exts.extend_from_slice(host);
    exts.extend_from_slice(&[0, 51]);
    exts.extend_from_slice(&(pad as u16).to_be_bytes());
    exts.extend(std::iter::repeat_n(0x42, pad));
    body.extend_from_slice(&(exts.len() as u16).to_be_bytes());
    body.extend(exts);
    let mut hs = vec![1];
    hs.extend_from_slice(&(body.len() as u32).to_be_bytes()[1..]);
    hs.extend(body);
    let mut out = Vec::new();
    for part in hs.chunks(chunk) {
        out.extend_from_slice(&[22, 3, 1]);
        out.extend_from_slice(&(part.len() as u16).to_be_bytes());
        out.extend_from_slice(part);
    }
    out
}

fn clienthello(c: &mut Criterion) {
    for (name, bytes) in [
        ("clienthello 512 B, 1 record", hello(300, 16384)),
        ("clienthello 3 KiB PQ-sized, 3 records", hello(2800, 1200)),
    ] {
        c.bench_function(name, |b| {
            b.iter(|| {
                let mut r = ClientHelloReader::new(64 * 1024);
                black_box(r.feed(black_box(&bytes)).unwrap().unwrap())
            })
        });
    }
}

criterion_group!(benches, pair_table, clienthello);
criterion_main!(benches);
