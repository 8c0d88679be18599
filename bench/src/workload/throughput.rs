//! `throughput`: N pairs move M bytes each way at once; every byte is folded into a per-stream
//! [`StreamSum`] on both ends and the sums must match.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream};
use std::sync::Barrier;
use std::time::{Duration, Instant};

use anyhow::Context;
use serde::{Deserialize, Serialize};

use super::{RelayCpu, gbit_per_s};
use crate::checksum::{StreamSum, pattern};
use crate::stats::{Concurrency, ConcurrencyReport};
use crate::target::Target;

/// Bytes per write/read call and length of the repeated pattern block (128 KiB: large enough
/// that syscalls are a small cost, small enough for 64 pairs × 4 buffers to stay at 32 MiB).
const CHUNK: usize = 128 * 1024;
/// Stack of each transfer thread (buffers live on the heap).
const STACK: usize = 256 * 1024;

/// Settings of one throughput run.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ThroughputSettings {
    /// Pairs moving data at once.
    pub pairs: usize,
    /// Bytes each pair moves in each direction.
    pub bytes_each_way: u64,
}

/// Figures of one throughput run.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ThroughputResult {
    /// Pairs.
    pub pairs: usize,
    /// Bytes per pair per direction.
    pub bytes_each_way: u64,
    /// Wall time from the common start to the last byte read.
    pub seconds: f64,
    /// Both directions of all pairs together, Gbit/s.
    pub gbit_per_s: f64,
    /// Relay CPU during the transfer (absent for direct TCP).
    pub relay_cpu: Option<RelayCpu>,
    /// Gbit/s per core of relay CPU (gbit_per_s / relay cores).
    pub gbit_per_relay_core: Option<f64>,
    /// Streams (pair × direction) whose checksum and length matched.
    pub verified_streams: usize,
    /// Streams that failed the check (must be 0).
    pub corrupt_streams: usize,
    /// Streams in flight, offered (pairs × 2) vs achieved on average.
    pub concurrency: ConcurrencyReport,
    /// Which relay path moved the bytes, when the target tells.
    pub path: Option<String>,
    /// The first failure of a stream (I/O error or checksum mismatch), if any.
    pub first_error: Option<String>,
}

/// The outcome of one stream (one direction of one pair).
struct Stream {
    error: Option<String>,
    /// When this stream began (after the start barrier) and how long it ran.
    started: Instant,
    busy: Duration,
}

fn send(mut s: TcpStream, seed: u64, n: u64) -> anyhow::Result<u64> {
    let block = pattern(seed, CHUNK);
    let mut sum = StreamSum::new();
    let mut left = n;
    while left > 0 {
        let k = (CHUNK as u64).min(left) as usize;
        s.write_all(&block[..k]).context("write")?;
        sum.update(&block[..k]);
        left -= k as u64;
    }
    s.shutdown(Shutdown::Write).ok();
    Ok(sum.finish())
}

fn receive(mut s: TcpStream, n: u64) -> anyhow::Result<(u64, u64)> {
    let mut buf = vec![0u8; CHUNK];
    let mut sum = StreamSum::new();
    while sum.len() < n {
        let want = (CHUNK as u64).min(n - sum.len()) as usize;
        let k = s.read(&mut buf[..want]).context("read")?;
        anyhow::ensure!(k > 0, "early EOF after {} of {n} bytes", sum.len());
        sum.update(&buf[..k]);
    }
    Ok((sum.finish(), sum.len()))
}

/// One direction: a writer thread on `tx` and a reader (this thread) on `rx`.
fn stream(tx: TcpStream, rx: TcpStream, seed: u64, n: u64, start: &Barrier) -> Stream {
    start.wait();
    let t0 = Instant::now();
    let writer = std::thread::Builder::new()
        .stack_size(STACK)
        .spawn(move || send(tx, seed, n));
    let got = receive(rx, n);
    let busy = t0.elapsed();
    let sent = match writer {
        Ok(w) => w
            .join()
            .unwrap_or_else(|_| Err(anyhow::anyhow!("writer panicked"))),
        Err(e) => Err(e.into()),
    };
    let error = match (sent, got) {
        (Ok(s), Ok((r, len))) if s == r && len == n => None,
        (Ok(_), Ok((_, len))) => Some(format!("seed {seed}: checksum mismatch after {len} bytes")),
        (Err(e), _) => Some(format!("seed {seed}: send: {e:#}")),
        (_, Err(e)) => Some(format!("seed {seed}: receive: {e:#}")),
    };
    Stream {
        error,
        started: t0,
        busy,
    }
}

/// From the first stream's start to the last stream's end. Not the coordinating thread's own
/// clock: with hundreds of threads on two cores it may run long after the barrier released the
/// streams (once measured 10x too short, crediting socat with 156 Gbit/s on loopback).
fn span(streams: &[Stream]) -> Option<Duration> {
    let first = streams.iter().map(|s| s.started).min()?;
    let last = streams.iter().map(|s| s.started + s.busy).max()?;
    Some(last.duration_since(first))
}

/// Runs the workload against `target`.
pub fn run(target: &dyn Target, s: &ThroughputSettings) -> anyhow::Result<ThroughputResult> {
    let mut pairs = Vec::with_capacity(s.pairs);
    for _ in 0..s.pairs {
        pairs.push(target.open_pair()?);
    }
    let start = Barrier::new(2 * s.pairs + 1);
    let cpu0 = target.relay_cpu();
    let mut began = Instant::now();
    let streams: Vec<Stream> = std::thread::scope(|scope| -> anyhow::Result<Vec<Stream>> {
        let mut handles = Vec::with_capacity(2 * s.pairs);
        for (i, (a, b)) in pairs.iter().enumerate() {
            let dirs = [
                (a.try_clone()?, b.try_clone()?),
                (b.try_clone()?, a.try_clone()?),
            ];
            for (d, (tx, rx)) in dirs.into_iter().enumerate() {
                let seed = (i as u64) << 1 | d as u64;
                let start = &start;
                let n = s.bytes_each_way;
                handles.push(
                    std::thread::Builder::new()
                        .stack_size(STACK)
                        .spawn_scoped(scope, move || stream(tx, rx, seed, n, start))?,
                );
            }
        }
        start.wait();
        began = Instant::now();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .map_err(|_| anyhow::anyhow!("transfer thread panicked"))
            })
            .collect()
    })?;
    let wall = span(&streams).unwrap_or_else(|| began.elapsed());
    let cpu = RelayCpu::between(cpu0, target.relay_cpu(), wall);
    let mut conc = Concurrency::default();
    streams.iter().for_each(|st| conc.add(st.busy));
    let verified = streams.iter().filter(|st| st.error.is_none()).count();
    let gbps = gbit_per_s(2 * s.pairs as u64 * s.bytes_each_way, wall);
    Ok(ThroughputResult {
        pairs: s.pairs,
        bytes_each_way: s.bytes_each_way,
        seconds: wall.as_secs_f64(),
        gbit_per_s: gbps,
        relay_cpu: cpu,
        gbit_per_relay_core: cpu.filter(|c| c.cores > 0.0).map(|c| gbps / c.cores),
        verified_streams: verified,
        corrupt_streams: streams.len() - verified,
        concurrency: conc.report(2 * s.pairs, wall),
        path: target.path_note(),
        first_error: streams.iter().find_map(|st| st.error.clone()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(base: Instant, start_ms: u64, busy_ms: u64) -> Stream {
        Stream {
            error: None,
            started: base + Duration::from_millis(start_ms),
            busy: Duration::from_millis(busy_ms),
        }
    }

    #[test]
    fn the_span_runs_from_the_first_start_to_the_last_end() {
        let base = Instant::now();
        // Started late and ended early, started first, ended last: 5 ms .. 40 ms.
        let streams = [at(base, 10, 5), at(base, 5, 20), at(base, 30, 10)];
        assert_eq!(span(&streams), Some(Duration::from_millis(35)));
        assert_eq!(span(&[]), None);
    }
}
