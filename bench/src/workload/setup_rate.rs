//! `setup-rate`: pairs (or, for relays, proxied connections) per second, each = connect both
//! legs + tokens + one 64-byte echo + close, from `threads` workers at once, spread over
//! source addresses 127.0.0.x. Tandem's tokens are created before the timed part.

use std::sync::Barrier;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::RelayCpu;
use crate::net::source_addr;
use crate::stats::{Concurrency, ConcurrencyReport, Latencies, LatencySummary};
use crate::target::Target;

/// A worker gives up after this many failures in a row (a dead relay ends the run quickly
/// instead of spinning through every remaining operation).
const MAX_CONSECUTIVE_ERRORS: usize = 50;

/// How a setup-rate operation gets its pair's tokens.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum PairCreation {
    /// Tokens created before the timed part (in process: the engine handle; through a proxy:
    /// ControlService calls made ahead). Scenario `setup-rate`.
    #[default]
    Ahead,
    /// Each timed operation makes one ControlService `CreatePair` call first (needs
    /// `--target ADDR`). Scenario `setup-rate-control`.
    ControlPerPair,
}

impl PairCreation {
    /// Scenario name in the report for this mode.
    pub fn scenario(&self) -> &'static str {
        match self {
            PairCreation::Ahead => "setup-rate",
            PairCreation::ControlPerPair => "setup-rate-control",
        }
    }
}

/// Settings of one setup-rate run.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SetupSettings {
    /// Where each operation's tokens come from.
    pub pair_creation: PairCreation,
    /// Workers with one operation in flight each (offered concurrency).
    pub threads: usize,
    /// Operations to run (tokens created ahead for Tandem).
    pub ops: usize,
    /// Wall-time cap of the timed part.
    pub max_seconds: f64,
    /// Source addresses 127.0.0.1 ..= 127.0.0.N to spread connections over (0 = kernel's pick).
    pub source_addrs: usize,
}

/// Figures of one setup-rate run.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct SetupResult {
    /// Where each operation's tokens came from (`ahead` or `control-per-pair`).
    pub pair_creation: PairCreation,
    /// Workers.
    pub threads: usize,
    /// Source addresses used.
    pub source_addrs: usize,
    /// Operations asked for.
    pub ops_offered: usize,
    /// Operations that completed with a correct echo.
    pub ops_ok: u64,
    /// Operations that failed.
    pub errors: u64,
    /// The first error, if any.
    pub first_error: Option<String>,
    /// Wall time of the timed part.
    pub seconds: f64,
    /// Completed operations per second.
    pub per_sec: f64,
    /// Relay CPU during the run (absent for direct TCP).
    pub relay_cpu: Option<RelayCpu>,
    /// Operations in flight: offered (threads) vs achieved.
    pub concurrency: ConcurrencyReport,
    /// Duration of one operation.
    pub op_latency: LatencySummary,
}

struct Worker {
    ok: u64,
    errors: u64,
    first_error: Option<String>,
    lat: Latencies,
    conc: Concurrency,
}

fn worker(
    target: &dyn Target,
    s: &SetupSettings,
    next: &AtomicUsize,
    start: &Barrier,
    until: Instant,
) -> Worker {
    let mut w = Worker {
        ok: 0,
        errors: 0,
        first_error: None,
        lat: Latencies::new(),
        conc: Concurrency::default(),
    };
    start.wait();
    let mut consecutive = 0;
    loop {
        let i = next.fetch_add(1, Ordering::Relaxed);
        if i >= s.ops || Instant::now() >= until || consecutive >= MAX_CONSECUTIVE_ERRORS {
            break;
        }
        let t0 = Instant::now();
        let r = target.setup_op(source_addr(i, s.source_addrs));
        let d = t0.elapsed();
        w.conc.add(d);
        match r {
            Ok(()) => {
                w.ok += 1;
                w.lat.record(d);
                consecutive = 0;
            }
            Err(e) => {
                w.errors += 1;
                consecutive += 1;
                w.first_error.get_or_insert_with(|| format!("{e:#}"));
            }
        }
    }
    w
}

/// Runs the workload against `target`.
pub fn run(target: &dyn Target, s: &SetupSettings) -> anyhow::Result<SetupResult> {
    target.prepare_setup(s.ops, s.threads, s.pair_creation)?;
    let next = AtomicUsize::new(0);
    let start = Barrier::new(s.threads + 1);
    let cpu0 = target.relay_cpu();
    let mut began = Instant::now();
    let workers = std::thread::scope(|scope| -> anyhow::Result<Vec<Worker>> {
        let mut handles = Vec::with_capacity(s.threads);
        let until =
            Instant::now() + Duration::from_secs_f64(s.max_seconds) + Duration::from_secs(1);
        for _ in 0..s.threads {
            let (next, start) = (&next, &start);
            handles.push(
                std::thread::Builder::new()
                    .stack_size(256 * 1024)
                    .spawn_scoped(scope, move || worker(target, s, next, start, until))?,
            );
        }
        start.wait();
        began = Instant::now();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .map_err(|_| anyhow::anyhow!("setup worker panicked"))
            })
            .collect()
    })?;
    let wall = began.elapsed();
    let cpu = RelayCpu::between(cpu0, target.relay_cpu(), wall);
    target.finish_setup();
    let mut lat = Latencies::new();
    let mut conc = Concurrency::default();
    let (mut ok, mut errors, mut first_error) = (0, 0, None);
    for w in &workers {
        lat.merge(&w.lat);
        conc.merge(&w.conc);
        ok += w.ok;
        errors += w.errors;
        if first_error.is_none() {
            first_error.clone_from(&w.first_error);
        }
    }
    Ok(SetupResult {
        pair_creation: s.pair_creation,
        threads: s.threads,
        source_addrs: s.source_addrs,
        ops_offered: s.ops,
        ops_ok: ok,
        errors,
        first_error,
        seconds: wall.as_secs_f64(),
        per_sec: ok as f64 / wall.as_secs_f64().max(1e-9),
        relay_cpu: cpu,
        concurrency: conc.report(s.threads, wall),
        op_latency: lat.summary(),
    })
}
