//! Command-line flags. `main` parses these and calls [`crate::runner::run`].

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use serde::Serialize;

use crate::target::System;
use crate::workload::PairCreation;

/// Load-test harness for Tandem: throughput, setup rate, latency and idle pairs, against direct
/// TCP and the HAProxy / nginx / socat baselines in the same run.
#[derive(Debug, Parser)]
#[command(name = "tandem-bench", version)]
pub struct Cli {
    /// What to run.
    #[command(subcommand)]
    pub command: Command,
    /// Shared settings.
    #[command(flatten)]
    pub common: Common,
    /// Workload sizes.
    #[command(flatten)]
    pub sizes: Sizes,
    /// `broker` settings.
    #[command(flatten)]
    pub broker: BrokerFlags,
    /// `ratelimit` settings.
    #[command(flatten)]
    pub ratelimit: RateLimitFlags,
}

/// Flags of the `ratelimit` command (each overrides what `--quick` or the default picks).
#[derive(Clone, Debug, Args, Serialize)]
pub struct RateLimitFlags {
    /// Limited rates to measure, Mbit/s (comma-separated; default 1,10,100,1000,5000).
    #[arg(long, global = true, value_delimiter = ',')]
    pub rates_mbit: Option<Vec<f64>>,
    /// Drivers to measure (comma-separated `uring`, `epoll`; default both).
    #[arg(long, global = true, value_delimiter = ',', value_parser = ["uring", "epoll"])]
    pub drivers: Option<Vec<String>>,
}

/// Flags of the `broker` workload.
#[derive(Clone, Debug, Args, Serialize)]
pub struct BrokerFlags {
    /// Concurrent callers, one phase per count (default 1,64,256; quick 1,64).
    #[arg(long, global = true, value_delimiter = ',')]
    pub callers: Option<Vec<usize>>,
    /// HTTP versions (h1, h2; default both).
    #[arg(long, global = true, value_delimiter = ',')]
    pub http: Option<Vec<String>>,
    /// Rows (direct, proxied-warm, proxied-cold, async-respond; default all). The floors always run.
    #[arg(long, global = true, value_delimiter = ',', value_enum)]
    pub rows: Option<Vec<crate::workload::broker::Row>>,
    /// Recorded calls per phase, at most (default 20,000; quick 3,000).
    #[arg(long, global = true)]
    pub calls: Option<u64>,
    /// Recorded seconds per phase, at most (default 6; quick 2).
    #[arg(long, global = true)]
    pub phase_seconds: Option<f64>,
    /// Cold calls (each waits for the proxy to close the idle pair; default 30, quick 10).
    #[arg(long, global = true)]
    pub cold_calls: Option<usize>,
    /// Method called on hd-1's gateway.
    #[arg(long, global = true, default_value = "hd-2._ping")]
    pub method: String,
    /// Where `sd`, `hyper` and `proxy` are (default: beside this binary).
    #[arg(long, global = true)]
    pub bin_dir: Option<PathBuf>,
    /// Repository root (roles and directory content; default: the one this was built from).
    #[arg(long, global = true)]
    pub repo: Option<PathBuf>,
    /// With `broker --target URL`: which row the running gateway's path is.
    #[arg(long, global = true, value_enum, default_value = "direct")]
    pub target_row: crate::workload::broker::Row,
}

/// The workloads.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Subcommand, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Command {
    /// N pairs move M bytes each way at once, every byte checked.
    Throughput,
    /// Pairs per second: connect both legs + tokens + 64-byte echo + close.
    SetupRate,
    /// Ping-pong at a fixed offered rate; p50/p99/p99.9/max, coordinated omission corrected.
    Latency,
    /// Hold N idle pairs; RSS, fds and io-wq threads of the relay.
    Idle,
    /// Every workload against every system, interleaved, with ratios and the targets.
    Compare,
    /// A bandwidth-limited pair at 1 Mbit/s .. 5 Gbit/s (achieved / configured, target 5 %),
    /// with the unlimited flood (limits off, and a limit that never binds) in the same run.
    Ratelimit,
    /// JSON-RPC calls through hd-1's gateway to hd-2 (direct, proxied warm and cold, async
    /// respond) with real `sd`, `hyper` and `proxy` processes, against tonic and axum floors.
    Broker,
    /// One `idle` run of one in-process Tandem system in this fresh process, its figures as
    /// JSON to `--json`: `idle` and `compare` run each in-process idle run so, so that no earlier
    /// run's allocator state is counted as the pairs' memory.
    #[command(hide = true)]
    IdleChild,
}

/// Settings every command shares.
#[derive(Clone, Debug, Args, Serialize)]
pub struct Common {
    /// `inproc` starts the engine in this process; `HOST:PORT` is the ControlService of a
    /// running `proxy`, whose pairs are then created through it (system `tandem-proxy`).
    #[arg(
        long,
        global = true,
        default_value = "inproc",
        env = "TANDEM_BENCH_TARGET"
    )]
    pub target: String,
    /// With `--target ADDR`: an admin's TLS certificate chain (PEM).
    #[arg(long, global = true, env = "TANDEM_BENCH_ADMIN_CERT")]
    pub admin_cert: Option<PathBuf>,
    /// With `--target ADDR`: that admin's private key (PEM).
    #[arg(long, global = true, env = "TANDEM_BENCH_ADMIN_KEY")]
    pub admin_key: Option<PathBuf>,
    /// With `--target ADDR`: the CA certificate the proxy's certificate chains to (PEM).
    #[arg(long, global = true, env = "TANDEM_BENCH_CA")]
    pub ca: Option<PathBuf>,
    /// With `--target ADDR`: the name the proxy's certificate is verified against.
    #[arg(long, global = true, env = "TANDEM_BENCH_SERVER_NAME")]
    pub server_name: Option<String>,
    /// With `--target ADDR`: bound on connecting and on each ControlService call, seconds.
    #[arg(long, global = true, default_value_t = 10.0)]
    pub control_timeout: f64,
    /// Setup-rate pair creation: `ahead` (tokens made before the timed part; scenario
    /// `setup-rate`) or `control-per-pair` (one ControlService call inside each timed
    /// operation; scenario `setup-rate-control`, needs `--target ADDR`). Default: `ahead`
    /// in process, `control-per-pair` with `--target ADDR`.
    #[arg(long, global = true, value_enum)]
    pub pair_creation: Option<PairCreation>,
    /// Systems to run (comma-separated). Default: every system for `compare`, else
    /// `direct,tandem-uring-splice`.
    #[arg(long, global = true, value_delimiter = ',')]
    pub systems: Option<Vec<System>>,
    /// Relay workers: Tandem engine cores, HAProxy nbthread, nginx worker_processes.
    #[arg(long, global = true, default_value_t = 1)]
    pub workers: usize,
    /// Pipe size in bytes for the Tandem splice variants (the engine's `pipe_size`; default
    /// the engine's own). The kernel rounds it up to a power-of-two number of pages.
    #[arg(long, global = true)]
    pub pipe_size: Option<usize>,
    /// CPUs to pin the relay to (comma-separated); unpinned by default.
    #[arg(long, global = true, value_delimiter = ',')]
    pub cores: Option<Vec<usize>>,
    /// Rounds; each round runs every system once per scenario, in a rotated order.
    #[arg(long, global = true)]
    pub rounds: Option<usize>,
    /// Small sizes that finish `compare` within 60 s on two cores.
    #[arg(long, global = true)]
    pub quick: bool,
    /// Write the whole report as JSON here.
    #[arg(long, global = true)]
    pub json: Option<PathBuf>,
    /// Write plots (SVG) here.
    #[arg(long, global = true)]
    pub svg: Option<PathBuf>,
    /// No progress bar.
    #[arg(long, global = true)]
    pub no_progress: bool,
}

/// Workload sizes; unset ones take the default (or the `--quick` value).
#[derive(Clone, Debug, Default, Args, Serialize)]
pub struct Sizes {
    /// Pairs for `throughput` (compare runs 1 and `--multi-pairs`).
    #[arg(long, global = true)]
    pub pairs: Option<usize>,
    /// Bytes each way for a one-pair throughput run.
    #[arg(long, global = true)]
    pub bytes: Option<u64>,
    /// Pairs of compare's many-pair throughput run.
    #[arg(long, global = true)]
    pub multi_pairs: Option<usize>,
    /// Bytes each way per pair of the many-pair run.
    #[arg(long, global = true)]
    pub multi_bytes: Option<u64>,
    /// Setup-rate workers (operations in flight).
    #[arg(long, global = true)]
    pub threads: Option<usize>,
    /// Setup-rate operations.
    #[arg(long, global = true)]
    pub ops: Option<usize>,
    /// Setup-rate wall-time cap, seconds.
    #[arg(long, global = true)]
    pub setup_seconds: Option<f64>,
    /// Source addresses 127.0.0.1..=127.0.0.N for setup-rate connections.
    #[arg(long, global = true)]
    pub source_addrs: Option<usize>,
    /// Latency: offered messages per second.
    #[arg(long, global = true)]
    pub rate: Option<u32>,
    /// Latency: messages recorded.
    #[arg(long, global = true)]
    pub messages: Option<usize>,
    /// Latency: message size, bytes.
    #[arg(long, global = true)]
    pub size: Option<usize>,
    /// Idle pairs asked for.
    #[arg(long, global = true)]
    pub idle_pairs: Option<usize>,
}
