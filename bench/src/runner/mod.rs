//! Resolves the flags into a plan of scenarios and runs it: for each round, each scenario, each
//! system (order rotated per round so no system always runs first or hot), a fresh target is
//! started, the workload runs, and the target is stopped.

use std::time::{SystemTime, UNIX_EPOCH};

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde::Serialize;

use crate::cli::{Cli, Command, Common};
use crate::procfs::{environment, raise_nofile};
use crate::report::{Figures, Report, Run, SCHEMA, Skipped, check_targets, summarise};
use crate::target::{Placement, Remote, RemoteSettings, System, Target, baseline_version, start};
use crate::workload::{
    IdleSettings, LatencySettings, PairCreation, SetupSettings, ThroughputSettings, idle, latency,
    setup_rate, throughput,
};

mod idle_child;

const MIB: u64 = 1024 * 1024;

/// One workload with its settings.
#[derive(Clone, Debug, Serialize)]
#[serde(tag = "workload", rename_all = "kebab-case")]
pub enum Scenario {
    /// `throughput`.
    Throughput(ThroughputSettings),
    /// `setup-rate`.
    SetupRate(SetupSettings),
    /// `latency`.
    Latency(LatencySettings),
    /// `idle`.
    Idle(IdleSettings),
}

impl Scenario {
    /// Name in the report (`throughput-<pairs>`, `setup-rate`, `latency`, `idle`).
    pub fn name(&self) -> String {
        match self {
            Scenario::Throughput(t) => format!("throughput-{}", t.pairs),
            Scenario::SetupRate(s) => s.pair_creation.scenario().into(),
            Scenario::Latency(_) => "latency".into(),
            Scenario::Idle(_) => "idle".into(),
        }
    }

    /// Runs this scenario against `target`.
    pub fn run(&self, target: &dyn Target) -> anyhow::Result<Figures> {
        Ok(match self {
            Scenario::Throughput(s) => Figures::Throughput(throughput::run(target, s)?),
            Scenario::SetupRate(s) => Figures::SetupRate(setup_rate::run(target, s)?),
            Scenario::Latency(s) => Figures::Latency(latency::run(target, s)?),
            Scenario::Idle(s) => Figures::Idle(idle::run(target, s)?),
        })
    }
}

/// A resolved run.
#[derive(Clone, Debug, Serialize)]
pub struct Plan {
    /// The command.
    pub command: Command,
    /// `inproc`, or the ControlService address of a running proxy.
    pub target: String,
    /// How to reach and authenticate to the running proxy (`--target ADDR`).
    pub remote: Option<RemoteSettings>,
    /// Systems, in base order.
    pub systems: Vec<System>,
    /// Relay placement.
    pub placement: Placement,
    /// Rounds.
    pub rounds: usize,
    /// Quick sizes.
    pub quick: bool,
    /// Scenarios, in order.
    pub scenarios: Vec<Scenario>,
    /// The `tandem-bench` binary that runs each in-process Tandem idle run in a fresh process
    /// (`idle-child`; set by `main` to itself). `None`: those runs share this process.
    #[serde(skip)]
    pub idle_child_exe: Option<PathBuf>,
}

/// Resolves `cli` into a plan.
pub fn plan(cli: &Cli) -> anyhow::Result<Plan> {
    let c = &cli.common;
    let remote = remote_settings(c)?;
    let q = c.quick;
    let z = &cli.sizes;
    let pick = |v: Option<u64>, quick: u64, full: u64| v.unwrap_or(if q { quick } else { full });
    let tp = |pairs: usize, bytes: u64| {
        Scenario::Throughput(ThroughputSettings {
            pairs,
            bytes_each_way: bytes,
        })
    };
    let one = tp(z.pairs.unwrap_or(1), pick(z.bytes, 256 * MIB, 1024 * MIB));
    let many = tp(
        z.multi_pairs.unwrap_or(64),
        pick(z.multi_bytes, 2 * MIB, 16 * MIB),
    );
    let setup = Scenario::SetupRate(SetupSettings {
        pair_creation: c.pair_creation.unwrap_or(if remote.is_some() {
            PairCreation::ControlPerPair
        } else {
            PairCreation::Ahead
        }),
        threads: z.threads.unwrap_or(64),
        ops: pick(z.ops.map(|v| v as u64), 5_000, 30_000) as usize,
        max_seconds: z.setup_seconds.unwrap_or(if q { 3.0 } else { 10.0 }),
        source_addrs: z.source_addrs.unwrap_or(16),
    });
    let lat = Scenario::Latency(LatencySettings {
        rate: z.rate.unwrap_or(1000),
        messages: pick(z.messages.map(|v| v as u64), 1_000, 5_000) as usize,
        size: z.size.unwrap_or(64),
    });
    let idle = Scenario::Idle(IdleSettings {
        pairs: pick(z.idle_pairs.map(|v| v as u64), 1_000, 10_000) as usize,
    });
    let scenarios = match cli.command {
        Command::Throughput => vec![one],
        Command::SetupRate => vec![setup],
        Command::Latency => vec![lat],
        Command::Idle | Command::IdleChild => vec![idle],
        Command::Compare => vec![one, many, setup, lat, idle],
        Command::Broker => {
            bail!("broker has its own plan (workload::broker::BrokerSettings::from_cli)")
        }
        Command::Ratelimit => {
            bail!("ratelimit has its own plan (workload::ratelimit::RateLimitSettings::from_cli)")
        }
    };
    let systems = c.systems.clone().unwrap_or_else(|| match cli.command {
        _ if remote.is_some() => vec![System::Direct, System::TandemProxy],
        Command::Compare => System::ALL.to_vec(),
        _ => vec![System::Direct, System::TandemUringSplice],
    });
    if systems.contains(&System::TandemProxy) && remote.is_none() {
        bail!("system tandem-proxy needs --target ADDR (a running proxy's ControlService)");
    }
    Ok(Plan {
        command: cli.command,
        target: c.target.clone(),
        remote,
        systems,
        placement: Placement {
            workers: c.workers.max(1),
            cpus: c.cores.clone(),
            pipe_size: c.pipe_size,
        },
        rounds: c
            .rounds
            .unwrap_or(if cli.command == Command::Compare && !q {
                3
            } else {
                1
            }),
        quick: q,
        scenarios,
        idle_child_exe: None,
    })
}

/// `None` for `--target inproc`; else the address plus the admin credentials (flags or env).
fn remote_settings(c: &Common) -> anyhow::Result<Option<RemoteSettings>> {
    if c.target == "inproc" {
        return Ok(None);
    }
    let need = |v: &Option<PathBuf>, flag: &str, env: &str| {
        v.clone()
            .with_context(|| format!("--target {} needs {flag} (or {env})", c.target))
    };
    anyhow::ensure!(
        c.control_timeout > 0.0 && c.control_timeout.is_finite(),
        "--control-timeout must be a positive number of seconds"
    );
    Ok(Some(RemoteSettings {
        addr: c.target.clone(),
        cert: need(&c.admin_cert, "--admin-cert", "TANDEM_BENCH_ADMIN_CERT")?,
        key: need(&c.admin_key, "--admin-key", "TANDEM_BENCH_ADMIN_KEY")?,
        ca: need(&c.ca, "--ca", "TANDEM_BENCH_CA")?,
        server_name: c.server_name.clone().with_context(|| {
            format!(
                "--target {} needs --server-name (or TANDEM_BENCH_SERVER_NAME)",
                c.target
            )
        })?,
        timeout: Duration::from_secs_f64(c.control_timeout),
    }))
}

fn progress(total: usize, hidden: bool) -> ProgressBar {
    let bar = ProgressBar::new(total as u64);
    if hidden {
        bar.set_draw_target(ProgressDrawTarget::hidden());
    }
    if let Ok(style) =
        ProgressStyle::with_template("{elapsed_precise} [{bar:30}] {pos}/{len} {msg}")
    {
        bar.set_style(style.progress_chars("=> "));
    }
    bar
}

/// Runs `plan` and returns the report (failed runs are recorded, not fatal).
pub fn execute(plan: &Plan, hide_progress: bool) -> anyhow::Result<Report> {
    raise_nofile();
    let started_unix = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let mut env = environment();
    let mut skipped = Vec::new();
    let mut systems = Vec::new();
    for &s in &plan.systems {
        if s.is_tandem() || s == System::Direct || s == System::TandemProxy {
            systems.push(s);
            continue;
        }
        match baseline_version(s) {
            Some(v) => {
                if !env.baselines.contains(&v) {
                    env.baselines.push(v);
                }
                systems.push(s);
            }
            None => skipped.push(Skipped {
                system: s,
                reason: "not installed (make bench installs haproxy, nginx with the stream module and socat)".into(),
            }),
        }
    }
    let bar = progress(
        plan.rounds * plan.scenarios.len() * systems.len(),
        hide_progress,
    );
    let mut runs = Vec::new();
    for round in 0..plan.rounds {
        for scenario in &plan.scenarios {
            let mut order = systems.clone();
            if !order.is_empty() {
                let k = round % order.len();
                order.rotate_left(k);
            }
            for system in order {
                bar.set_message(format!(
                    "round {round} {} {}",
                    scenario.name(),
                    system.as_str()
                ));
                let figures = run_one(scenario, system, plan).unwrap_or_else(|e| Figures::Failed {
                    error: format!("{e:#}"),
                });
                runs.push(Run {
                    scenario: scenario.name(),
                    system,
                    round,
                    figures,
                });
                bar.inc(1);
            }
        }
    }
    bar.finish_and_clear();
    let summary = summarise(&runs);
    let tandem = [
        System::TandemProxy,
        System::TandemUringSplice,
        System::TandemEpollSplice,
        System::TandemUringCopy,
        System::TandemEpollCopy,
    ]
    .into_iter()
    .find(|s| systems.contains(s));
    let targets = tandem
        .map(|t| check_targets(&runs, t, plan.placement.workers))
        .unwrap_or_default();
    Ok(Report {
        schema: SCHEMA.into(),
        started_unix,
        environment: env,
        settings: serde_json::to_value(plan)?,
        runs,
        skipped,
        summary,
        targets,
    })
}

fn run_one(scenario: &Scenario, system: System, plan: &Plan) -> anyhow::Result<Figures> {
    if let (Scenario::Idle(s), Some(exe)) = (scenario, &plan.idle_child_exe)
        && system.is_tandem()
        && plan.command != Command::IdleChild
    {
        return idle_child::run(exe, s, system, plan);
    }
    in_this_process(scenario, system, plan)
}

/// `idle-child`: the one idle run of the one system asked, in this (fresh) process; its figures
/// as JSON to `out`.
pub fn idle_child(plan: &Plan, out: &std::path::Path) -> anyhow::Result<()> {
    raise_nofile();
    let ([system], [scenario]) = (&plan.systems[..], &plan.scenarios[..]) else {
        bail!("idle-child runs one system's idle scenario");
    };
    let figures = in_this_process(scenario, *system, plan)?;
    std::fs::write(out, serde_json::to_vec(&figures)?)
        .with_context(|| format!("writing {}", out.display()))
}

fn in_this_process(scenario: &Scenario, system: System, plan: &Plan) -> anyhow::Result<Figures> {
    let target: Box<dyn Target> = match (system, &plan.remote) {
        (System::TandemProxy, Some(remote)) => Box::new(Remote::connect(remote)?),
        _ => match start(system, &plan.placement)? {
            Ok(t) => t,
            Err(why) => bail!("{why}"),
        },
    };
    let figures = scenario.run(target.as_ref());
    drop(target);
    figures
}
