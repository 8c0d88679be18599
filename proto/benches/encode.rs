//! What encoding a `Hyper.Call` request once ([`Encoded`]) costs the `grpc_client` over encoding it
//! straight into tonic's frame buffer, as it did before transparent retries: per request, the
//! direct encode against `Encoded::of` plus the copy into the frame buffer, for a `_ping`-sized
//! request and for one with 2 KiB of params.
//!
//! Run: `CARGO_TARGET_DIR=/work/tgt-NAME cargo bench -p tandem-proto --bench encode`.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use criterion::{Criterion, criterion_group, criterion_main};
use prost::bytes::BytesMut;
use serde_json::{Map, Value, json};
use tandem_proto::codec::{Encoded, FastEncode};
use tandem_proto::wire::Request;

fn request(params: Map<String, Value>) -> Request {
    Request {
        method: "hd-2._ping".into(),
        params: Some(params),
        id: "hd-2._ping(bench-000001)".into(),
        client_name: "hd-1".into(),
    }
}

fn bench(c: &mut Criterion) {
    let small = request(Map::new());
    let mut params = Map::new();
    for i in 0..32 {
        params.insert(format!("key-{i:02}"), json!({"v": "x".repeat(48), "n": i}));
    }
    let large = request(params);
    // tonic's frame buffer: reused across calls, as tonic's encoder reuses its buffer.
    let mut frame = BytesMut::with_capacity(8 * 1024);
    for (name, message) in [("ping", &small), ("params 2 KiB", &large)] {
        let mut group = c.benchmark_group(format!("request {name}"));
        group.bench_function("direct into the frame", |b| {
            b.iter(|| {
                frame.clear();
                message.encode_fast(&mut frame);
                std::hint::black_box(frame.len())
            });
        });
        group.bench_function("Encoded::of then copied", |b| {
            b.iter(|| {
                let encoded = Encoded::of(message);
                frame.clear();
                encoded.clone().encode_fast(&mut frame);
                std::hint::black_box(frame.len())
            });
        });
        group.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
