//! Bandwidth limits in the relay, on both drivers: a limited pair cannot beat its rate (an upper
//! bound, safe on a slow machine), still moves at a good part of it (a generous lower bound: the
//! 5 % check is the benchmark's), pairs of one operator share a bucket, and an unlimited pair
//! beside them is not slowed.

use crate::common;

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::num::NonZeroU64;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use common::*;
use tandem_engine::{
    BandwidthLimits, ByteRate, CoreId, Driver, EngineHandle, OperatorBandwidth, PairKind,
};

both_drivers!(
    a_limited_pair_cannot_beat_its_rate,
    a_limited_pair_moves_near_its_rate,
    an_operators_pairs_share_its_bucket_and_others_are_not_slowed
);

const MIB: u64 = 1 << 20;

fn rate(per_second: u64, burst: u64) -> ByteRate {
    ByteRate {
        per_second: NonZeroU64::new(per_second).unwrap(),
        burst: NonZeroU64::new(burst).unwrap(),
    }
}

/// A connected pair with `limits` on core 0: (sender side A, receiver side B).
fn pair(h: &EngineHandle, limits: BandwidthLimits) -> (TcpStream, TcpStream) {
    let t = h
        .create_pair_limited(PairKind::Direct, h.pair_ttl(), Some(CoreId(0)), limits)
        .unwrap();
    let addr = h.local_addrs().pairing;
    (dial(addr, &t.side_a), dial(addr, &t.side_b))
}

/// Writes zeros to `s` until `stop` (or the peer goes away).
fn flood(mut s: TcpStream, stop: Arc<AtomicBool>) -> JoinHandle<()> {
    s.set_write_timeout(Some(Duration::from_millis(50)))
        .unwrap();
    std::thread::spawn(move || {
        let buf = vec![0u8; 64 * 1024];
        while !stop.load(Ordering::Relaxed) {
            match s.write(&buf) {
                Ok(_) => {}
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
                Err(_) => return,
            }
        }
    })
}

/// Reads from `s` for `d`; returns the bytes read and the time it took.
fn drink(mut s: TcpStream, d: Duration) -> JoinHandle<(u64, Duration)> {
    s.set_read_timeout(Some(Duration::from_millis(50))).unwrap();
    std::thread::spawn(move || {
        let mut buf = vec![0u8; 256 * 1024];
        let start = Instant::now();
        let mut total = 0u64;
        while start.elapsed() < d {
            match s.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => total += n as u64,
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
                Err(e) => panic!("read: {e}"),
            }
        }
        (total, start.elapsed())
    })
}

fn a_limited_pair_cannot_beat_its_rate(driver: Driver) {
    let (h, _rx) = start(config(driver));
    let limits = BandwidthLimits {
        pair: Some(rate(MIB, 64 * 1024)),
        operator: None,
    };
    let (a, b) = pair(&h, limits);
    let stop = Arc::new(AtomicBool::new(false));
    let w = flood(a, stop.clone());
    let (got, took) = drink(b, Duration::from_secs(2)).join().unwrap();
    stop.store(true, Ordering::Relaxed);
    w.join().unwrap();
    // The bucket's burst plus its rate over the time the reader really read: a slow machine
    // only makes `took` longer, so this bound never fails for want of CPU.
    let most = 64 * 1024 + (took.as_secs_f64() * MIB as f64) as u64 + 64 * 1024;
    assert!(
        got <= most,
        "{got} bytes in {took:?} through a 1 MiB/s pair (at most {most})"
    );
    assert!(got > 0, "the limited pair relays");
    h.shutdown().unwrap();
}

fn a_limited_pair_moves_near_its_rate(driver: Driver) {
    let (h, _rx) = start(config(driver));
    let r = 8 * MIB;
    let limits = BandwidthLimits {
        pair: Some(rate(r, 256 * 1024)),
        operator: None,
    };
    let (a, b) = pair(&h, limits);
    let stop = Arc::new(AtomicBool::new(false));
    let w = flood(a, stop.clone());
    let (got, took) = drink(b, Duration::from_secs(2)).join().unwrap();
    stop.store(true, Ordering::Relaxed);
    w.join().unwrap();
    let achieved = got as f64 / took.as_secs_f64();
    // Generous: a loaded 2-core machine still moves a third of 8 MiB/s; unlimited loopback moves
    // hundreds of MiB/s, so the upper bound is what shows the limit acts.
    assert!(
        achieved >= r as f64 / 3.0 && achieved <= r as f64 * 1.2,
        "achieved {achieved:.0} B/s of {r} B/s"
    );
    h.shutdown().unwrap();
}

fn an_operators_pairs_share_its_bucket_and_others_are_not_slowed(driver: Driver) {
    let (h, _rx) = start(config(driver));
    let op = BandwidthLimits {
        pair: None,
        operator: Some(OperatorBandwidth {
            key: 7,
            rate: rate(2 * MIB, 64 * 1024),
        }),
    };
    let stop = Arc::new(AtomicBool::new(false));
    let mut writers = Vec::new();
    let mut readers = Vec::new();
    for limits in [op, op, BandwidthLimits::UNLIMITED] {
        let (a, b) = pair(&h, limits);
        writers.push(flood(a, stop.clone()));
        readers.push(drink(b, Duration::from_secs(2)));
    }
    let results: Vec<(u64, Duration)> = readers.into_iter().map(|r| r.join().unwrap()).collect();
    stop.store(true, Ordering::Relaxed);
    for w in writers {
        w.join().unwrap();
    }
    // Both pairs on core 0 draw from its share of the operator's 2 MiB/s (1 MiB/s on 2 cores).
    let took = results[0].1.max(results[1].1).as_secs_f64();
    let shared = results[0].0 + results[1].0;
    let most = 2 * 64 * 1024 + (took * 2.0 * MIB as f64) as u64;
    assert!(
        shared <= most,
        "the operator's pairs moved {shared} bytes in {took:.2} s (at most {most})"
    );
    // The unlimited pair beside them is not held to the operator's rate.
    let (free, free_took) = results[2];
    assert!(
        free as f64 / free_took.as_secs_f64() > 4.0 * MIB as f64,
        "the unlimited pair moved only {free} bytes in {free_took:?}"
    );
    h.shutdown().unwrap();
}
