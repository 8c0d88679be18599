//! `broker`: what an operator's application sees. N concurrent callers send JSON-RPC calls to
//! hd-1's gateway for hd-2 (`hd-2._ping` by default), over HTTP/1.1 keep-alive and HTTP/2, on the
//! rows `direct` (hd-1 → hd-2 over gRPC), `proxied-warm` (the cached channel through a pair of the
//! public proxy), `proxied-cold` (the first call after the proxy closed that pair) and
//! `async-respond` (hd-2's application answers later with `respond`); and, in the same run, the
//! floors: a bare tonic unary call and a bare axum JSON POST of the same payload.

pub mod caller;
mod cold;
pub mod load;
pub mod phases;
pub mod report;
pub mod respond_app;
mod rounds;
mod targets;

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

pub use caller::Http;
pub use load::{LoadFigures, LoadSpec};
pub use report::{BrokerReport, PhaseRow};

/// A row of the table: which path a call takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Row {
    /// hd-1 → hd-2 over gRPC, hd-2 dialed directly.
    Direct,
    /// Through the public proxy, on the cached channel.
    ProxiedWarm,
    /// Through the public proxy, the first call after the pair was closed.
    ProxiedCold,
    /// Direct, and hd-2's application answers with `respond`.
    AsyncRespond,
    /// Bare tonic unary call (floor).
    FloorTonic,
    /// Bare axum JSON POST (floor).
    FloorAxum,
}

impl Row {
    /// Name in the report.
    pub fn as_str(self) -> &'static str {
        match self {
            Row::Direct => "direct",
            Row::ProxiedWarm => "proxied-warm",
            Row::ProxiedCold => "proxied-cold",
            Row::AsyncRespond => "async-respond",
            Row::FloorTonic => "floor-tonic",
            Row::FloorAxum => "floor-axum",
        }
    }
}

/// A running hd-1 to drive instead of starting a mesh (`--target https://HOST:PORT/PATH`).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct GatewayTarget {
    /// Gateway address.
    pub addr: std::net::SocketAddr,
    /// Request path.
    pub path: String,
    /// Name on the gateway's certificate.
    pub server_name: String,
    /// The application's certificate (an operator hd-1's gateway serves).
    pub cert: PathBuf,
    /// Its key.
    pub key: PathBuf,
    /// Trust anchor of the gateway's certificate.
    pub ca: PathBuf,
    /// Which row the target's path is (`direct` or `proxied-warm`).
    pub row: Row,
}

/// Settings of a `broker` run.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct BrokerSettings {
    /// Caller counts, one phase each.
    pub callers: Vec<usize>,
    /// HTTP versions, one phase each.
    pub http: Vec<Http>,
    /// Rows (the floors always run).
    pub rows: Vec<Row>,
    /// Recorded calls per phase, at most.
    pub max_calls: u64,
    /// Recorded wall time per phase, at most.
    pub phase_time: Duration,
    /// Bound on one call.
    pub call_timeout: Duration,
    /// Cold calls measured (each waits for the proxy to close the idle pair first).
    pub cold_calls: usize,
    /// The proxy's pair idle timeout in the proxied mesh (how a channel goes cold).
    pub pair_idle_timeout: Duration,
    /// The method called on hd-1's gateway.
    pub method: String,
    /// Where `sd`, `hyper` and `proxy` are.
    pub bin_dir: PathBuf,
    /// The repository (roles and directory content).
    pub repo: PathBuf,
    /// A running gateway instead of a mesh.
    pub target: Option<GatewayTarget>,
    /// Interleaved rounds that judge the ratio targets (0: judge the sweep's single phases).
    #[serde(default)]
    pub rounds: usize,
}

/// Unrecorded calls per caller before each phase's recorded part.
pub const WARMUP_PER_CALLER: u64 = 3;

impl BrokerSettings {
    /// From the command line (`--target https://HOST:PORT/PATH` drives a running gateway).
    pub fn from_cli(cli: &crate::cli::Cli) -> anyhow::Result<Self> {
        use anyhow::Context;
        let b = &cli.broker;
        let c = &cli.common;
        let q = c.quick;
        let http = match &b.http {
            None => vec![Http::H1, Http::H2],
            Some(v) => v
                .iter()
                .map(|h| match h.as_str() {
                    "h1" | "1" | "http1" => Ok(Http::H1),
                    "h2" | "2" | "http2" => Ok(Http::H2),
                    other => anyhow::bail!("--http {other}: h1 or h2"),
                })
                .collect::<anyhow::Result<_>>()?,
        };
        let rows = b.rows.clone().unwrap_or_else(|| {
            vec![
                Row::Direct,
                Row::ProxiedWarm,
                Row::ProxiedCold,
                Row::AsyncRespond,
            ]
        });
        let callers = b
            .callers
            .clone()
            .unwrap_or_else(|| if q { vec![1, 64] } else { vec![1, 64, 256] });
        anyhow::ensure!(
            callers.iter().all(|&n| (1..=4096).contains(&n)),
            "--callers: 1..=4096 each"
        );
        let phase = b.phase_seconds.unwrap_or(if q { 2.0 } else { 6.0 });
        anyhow::ensure!(phase > 0.0 && phase <= 600.0, "--phase-seconds: (0, 600]");
        let target = if c.target == "inproc" {
            None
        } else {
            let url: http::Uri = c
                .target
                .parse()
                .with_context(|| format!("--target {}", c.target))?;
            let host = url
                .host()
                .context("--target needs https://HOST:PORT/PATH")?;
            let port = url.port_u16().unwrap_or(443);
            let addr = std::net::ToSocketAddrs::to_socket_addrs(&(host, port))?
                .next()
                .with_context(|| format!("{host} resolves to nothing"))?;
            let need = |v: &Option<PathBuf>, flag: &str| {
                v.clone()
                    .with_context(|| format!("broker --target needs {flag}"))
            };
            Some(GatewayTarget {
                addr,
                path: url.path().to_owned(),
                server_name: c.server_name.clone().unwrap_or_else(|| host.to_owned()),
                cert: need(
                    &c.admin_cert,
                    "--admin-cert (the application's certificate)",
                )?,
                key: need(&c.admin_key, "--admin-key")?,
                ca: need(&c.ca, "--ca")?,
                row: b.target_row,
            })
        };
        let rounds = c.rounds.unwrap_or(if q { 2 } else { DEFAULT_ROUNDS });
        anyhow::ensure!(rounds <= MAX_ROUNDS, "--rounds: at most {MAX_ROUNDS}");
        Ok(BrokerSettings {
            callers,
            http,
            rows,
            max_calls: b.calls.unwrap_or(if q { 3_000 } else { 20_000 }),
            phase_time: Duration::from_secs_f64(phase),
            call_timeout: Duration::from_secs_f64(c.control_timeout),
            cold_calls: b.cold_calls.unwrap_or(if q { 10 } else { 30 }),
            pair_idle_timeout: PAIR_IDLE_TIMEOUT,
            method: b.method.clone(),
            bin_dir: b
                .bin_dir
                .clone()
                .unwrap_or_else(crate::target::mesh::default_bin_dir),
            repo: b
                .repo
                .clone()
                .unwrap_or_else(crate::target::mesh::default_repo),
            target,
            rounds,
        })
    }
}

/// Interleaved rounds of the ratio targets by default: the verdict needs at least two to tell an
/// effect from the run-to-run noise, three give a median.
pub const DEFAULT_ROUNDS: usize = 3;
/// Most rounds one run makes (each round is six phases).
pub const MAX_ROUNDS: usize = 20;

/// The proxied mesh's pair idle timeout: short enough that a cold call waits well under a second,
/// long enough that a phase's own gaps (opening 256 connections) rarely close the pair.
pub const PAIR_IDLE_TIMEOUT: Duration = Duration::from_millis(300);
