//! The run: a direct mesh (direct and async-respond rows), a proxied mesh (warm and cold rows), or
//! a running gateway (`--target`), then the floors with the answer the real path gave.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::Context;
use serde_json::Value;
use tandem_settings::tls::TlsSettings;

use super::caller::{JsonRpcServer, fetch_result};
use super::load::{Dest, LoadSpec, run as run_load};
use super::report::{self, BrokerReport, PhaseRow, check_targets};
use super::respond_app::{ASYNC_METHOD, RespondApp};
use super::{BrokerSettings, Row, WARMUP_PER_CALLER};
use crate::procfs::{environment, process_tree_cpu, raise_nofile};
use crate::target::floors::Floors;
use crate::target::mesh::{Mesh, MeshPath, MeshSettings};

/// Tokio worker threads of the harness: the machine's two cores are shared with hd-1, hd-2 and
/// the proxy, so more threads would only add switches.
const RUNTIME_THREADS: usize = 2;
/// How long hd-1 may take to answer its first call after start (directory fetch, first dial).
const FIRST_ANSWER_WITHIN: Duration = Duration::from_secs(30);

/// What measuring needs from the run around it.
pub(super) struct Ctx<'a> {
    pub(super) s: &'a BrokerSettings,
    pub(super) rt: tokio::runtime::Runtime,
    pub(super) pids: Vec<(&'static str, u32)>,
    pub(super) rows: Vec<PhaseRow>,
    /// The interleaved rounds' phases (see `rounds.rs`).
    pub(super) rounds: Vec<PhaseRow>,
    pub(super) failures: Vec<String>,
}

pub(super) fn load_avg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

fn own_cpu() -> Duration {
    // SAFETY: getrusage fills the struct we pass; RUSAGE_SELF is always valid.
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut u) };
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, (t.tv_usec as u32) * 1000);
    tv(u.ru_utime) + tv(u.ru_stime)
}

impl Ctx<'_> {
    fn cpu(&self) -> BTreeMap<String, Duration> {
        let mut m: BTreeMap<String, Duration> = self
            .pids
            .iter()
            .map(|(n, p)| (n.to_string(), process_tree_cpu(*p)))
            .collect();
        m.insert("harness".into(), own_cpu());
        m
    }

    /// One load phase of the sweep, kept in the table's rows.
    fn measure(&mut self, row: Row, http: &str, dest: &Dest, callers: usize) {
        let phase = self.phase(row, http, dest, callers);
        self.rows.push(phase);
    }

    /// One load phase, with CPU per call of every process in `pids` and the harness.
    pub(super) fn phase(&mut self, row: Row, http: &str, dest: &Dest, callers: usize) -> PhaseRow {
        let spec = LoadSpec {
            callers,
            max_calls: self.s.max_calls,
            max_time: self.s.phase_time,
            call_timeout: self.s.call_timeout,
            warmup_per_caller: WARMUP_PER_CALLER,
        };
        let load = load_avg();
        let before = self.cpu();
        let figures = self.rt.block_on(run_load(dest, spec));
        let after = self.cpu();
        let calls = figures.calls_ok.max(1) as f64;
        let cpu_us_per_call = after
            .iter()
            .map(|(k, v)| {
                let d = v.saturating_sub(before.get(k).copied().unwrap_or_default());
                (k.clone(), d.as_secs_f64() * 1e6 / calls)
            })
            .collect();
        eprintln!(
            "broker: {} {http} {callers} callers: {:.0} calls/s p50 {:.0} µs p99 {:.0} µs errors {} (load {load})",
            row.as_str(),
            figures.calls_per_sec,
            figures.latency.p50_us,
            figures.latency.p99_us,
            figures.errors
        );
        PhaseRow {
            row,
            http: http.into(),
            figures,
            cpu_us_per_call,
            load_avg: load,
            note: None,
            round: None,
        }
    }

    fn sweep(&mut self, row: Row, server: &JsonRpcServer, method: &str) {
        for &http in &self.s.http.clone() {
            for &callers in &self.s.callers.clone() {
                let dest = Dest::JsonRpc {
                    server: server.clone(),
                    http,
                    method: method.into(),
                };
                self.measure(row, http.as_str(), &dest, callers);
            }
        }
    }
}

fn app_tls(
    certs: &std::path::Path,
    op: &str,
    server_name: &str,
) -> anyhow::Result<std::sync::Arc<rustls::ClientConfig>> {
    let tls = TlsSettings {
        ca_certificate_files: vec![certs.join("root.crt")],
        certificate_file: Some(certs.join(format!("{op}.crt"))),
        key_file: Some(certs.join(format!("{op}.key"))),
        server_name: Some(server_name.into()),
        verify_client: false,
        request_client_cert: false,
        insecure_skip_verify: false,
    };
    Ok(tandem_net::tls::client_config(&tls, &[])?)
}

pub(super) fn gateway_of(
    mesh: &Mesh,
    addr: std::net::SocketAddr,
    op: &str,
) -> anyhow::Result<JsonRpcServer> {
    Ok(JsonRpcServer {
        addr,
        server_name: rustls_pki_types::ServerName::try_from(op.to_owned())?,
        tls: app_tls(&mesh.certs(), op, op)?,
        path: "/jsonrpc".into(),
    })
}

/// The first correct answer of `method`, retried until hd-1 is ready (bounded).
pub(super) fn first_answer(
    rt: &tokio::runtime::Runtime,
    server: &JsonRpcServer,
    method: &str,
) -> anyhow::Result<Value> {
    let until = Instant::now() + FIRST_ANSWER_WITHIN;
    loop {
        match rt.block_on(fetch_result(server, method)) {
            Ok(v) => return Ok(v),
            Err(e) if Instant::now() >= until => {
                anyhow::bail!("no answer to {method} within {FIRST_ANSWER_WITHIN:?}: {e}")
            }
            Err(_) => std::thread::sleep(Duration::from_millis(100)),
        }
    }
}

pub(super) fn mesh_settings(s: &BrokerSettings, path: MeshPath) -> MeshSettings {
    MeshSettings {
        bin_dir: s.bin_dir.clone(),
        repo: s.repo.clone(),
        path,
        pair_idle_timeout: None,
        hd2_app: None,
    }
}

fn direct(ctx: &mut Ctx<'_>, captured: &mut Option<Value>) -> anyhow::Result<()> {
    let s = ctx.s;
    let want_async = s.rows.contains(&Row::AsyncRespond);
    let app = if want_async {
        Some(ctx.rt.block_on(RespondApp::bind())?)
    } else {
        None
    };
    let mut ms = mesh_settings(s, MeshPath::Direct);
    ms.hd2_app = app.as_ref().map(|a| a.addr());
    let mesh = Mesh::start(&ms).context("starting the direct mesh")?;
    ctx.pids = mesh.pids();
    let server = gateway_of(&mesh, mesh.gateway(), "hd-1")?;
    let result = first_answer(&ctx.rt, &server, &s.method)?;
    captured.get_or_insert(result);
    if s.rows.contains(&Row::Direct) {
        ctx.sweep(Row::Direct, &server, &s.method);
    }
    if let Some(app) = &app {
        app.set_respond_to(gateway_of(&mesh, mesh.hd2_gateway(), "hd-2")?);
        first_answer(&ctx.rt, &server, ASYNC_METHOD)?;
        ctx.sweep(Row::AsyncRespond, &server, ASYNC_METHOD);
    }
    ctx.pids.clear();
    Ok(())
}

/// `proxied-warm` on a proxy with its default pair idle timeout (5 min), so that a stall of an
/// overloaded machine never closes the pair under calls in flight.
fn proxied(ctx: &mut Ctx<'_>, captured: &mut Option<Value>) -> anyhow::Result<()> {
    let s = ctx.s;
    let mesh =
        Mesh::start(&mesh_settings(s, MeshPath::Proxied)).context("starting the proxied mesh")?;
    ctx.pids = mesh.pids();
    let server = gateway_of(&mesh, mesh.gateway(), "hd-1")?;
    let result = first_answer(&ctx.rt, &server, &s.method)?;
    captured.get_or_insert(result);
    ctx.sweep(Row::ProxiedWarm, &server, &s.method);
    ctx.pids.clear();
    Ok(())
}

/// `proxied-cold` on its own mesh, whose proxy closes a pair idle for
/// [`BrokerSettings::pair_idle_timeout`]: each cold call finds hd-1's cached channel gone.
fn proxied_cold(ctx: &mut Ctx<'_>, _captured: &mut Option<Value>) -> anyhow::Result<()> {
    let s = ctx.s;
    let mut settings = mesh_settings(s, MeshPath::Proxied);
    settings.pair_idle_timeout = Some(s.pair_idle_timeout.as_secs_f64());
    let mesh = Mesh::start(&settings).context("starting the proxied mesh for cold calls")?;
    let server = gateway_of(&mesh, mesh.gateway(), "hd-1")?;
    first_answer(&ctx.rt, &server, &s.method)?;
    super::cold::cold(ctx, &mesh, &server)
}

fn target(ctx: &mut Ctx<'_>, captured: &mut Option<Value>) -> anyhow::Result<()> {
    let Some(t) = ctx.s.target.clone() else {
        return Ok(());
    };
    let server = JsonRpcServer {
        addr: t.addr,
        server_name: rustls_pki_types::ServerName::try_from(t.server_name.clone())?,
        tls: tandem_net::tls::client_config(
            &TlsSettings {
                ca_certificate_files: vec![t.ca.clone()],
                certificate_file: Some(t.cert.clone()),
                key_file: Some(t.key.clone()),
                server_name: Some(t.server_name.clone()),
                verify_client: false,
                request_client_cert: false,
                insecure_skip_verify: false,
            },
            &[],
        )?,
        path: t.path.clone(),
    };
    captured.get_or_insert(first_answer(&ctx.rt, &server, &ctx.s.method)?);
    let method = ctx.s.method.clone();
    ctx.sweep(t.row, &server, &method);
    Ok(())
}

fn floors(ctx: &mut Ctx<'_>, result: Value) -> anyhow::Result<()> {
    let floors = ctx.rt.block_on(Floors::start(result))?;
    let method = ctx.s.method.clone();
    ctx.sweep(Row::FloorAxum, &floors.axum, &method);
    for &callers in &ctx.s.callers.clone() {
        let dest = Dest::Grpc {
            server: floors.grpc.clone(),
            method: method.clone(),
        };
        ctx.measure(Row::FloorTonic, "grpc", &dest, callers);
    }
    ctx.rt.block_on(async move { drop(floors) });
    Ok(())
}

/// One part of the run: a mesh's rows, or the target's.
type Step = fn(&mut Ctx<'_>, &mut Option<Value>) -> anyhow::Result<()>;

/// Runs the whole `broker` workload.
pub fn run(s: &BrokerSettings) -> anyhow::Result<BrokerReport> {
    raise_nofile();
    let started_unix = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(RUNTIME_THREADS)
        .thread_name("bench-broker")
        .enable_all()
        .build()?;
    let mut ctx = Ctx {
        s,
        rt,
        pids: Vec::new(),
        rows: Vec::new(),
        rounds: Vec::new(),
        failures: Vec::new(),
    };
    let mut captured = None;
    let mut steps: Vec<(&str, Step)> = Vec::new();
    if s.target.is_some() {
        steps.push(("target", target));
    } else {
        if s.rows
            .iter()
            .any(|r| matches!(r, Row::Direct | Row::AsyncRespond))
        {
            steps.push(("direct mesh", direct));
        }
        if s.rows.contains(&Row::ProxiedWarm) {
            steps.push(("proxied mesh", proxied));
        }
        if s.rows.contains(&Row::ProxiedCold) {
            steps.push(("proxied mesh for cold calls", proxied_cold));
        }
        if super::rounds::wanted(s) {
            steps.push(("interleaved rounds", super::rounds::rounds));
        }
    }
    for (name, step) in steps {
        if let Err(e) = step(&mut ctx, &mut captured) {
            eprintln!("broker: {name} failed: {e:#}");
            ctx.failures.push(format!("{name}: {e:#}"));
        }
    }
    let answer_bytes = captured
        .as_ref()
        .and_then(|v| serde_json::to_vec(v).ok())
        .map_or(0, |b| b.len());
    match captured {
        Some(result) => {
            if let Err(e) = floors(&mut ctx, result) {
                ctx.failures.push(format!("floors: {e:#}"));
            }
        }
        None => ctx
            .failures
            .push("floors: no answer from the real path to copy".into()),
    }
    let targets = check_targets(&ctx.rows, &ctx.rounds);
    Ok(BrokerReport {
        schema: report::SCHEMA.into(),
        started_unix,
        environment: environment(),
        settings: serde_json::to_value(s)?,
        rows: ctx.rows,
        rounds: ctx.rounds,
        answer_bytes,
        failures: ctx.failures,
        targets,
    })
}
