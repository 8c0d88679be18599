//! An in-process Tandem idle run in a child process of its own (`tandem-bench idle-child`). The
//! in-process engine's RSS is this harness's RSS: after earlier runs (throughput's pipes and
//! buffers, an earlier idle round's freed tasks) the allocator keeps pages that an idle run then
//! reuses or returns, and its growth stops measuring the pairs (one process's rounds read from
//! -10 to +24 MiB per 10k pairs on a quiet machine). A fresh process per run starts every run
//! from the same state, as the baselines' relays (their own processes) always do.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use super::Plan;
use crate::report::Figures;
use crate::target::System;
use crate::workload::IdleSettings;

/// Bound on one child run: its workload is bounded (pairs opened under the fd limit, the park
/// wait `park_after` + 30 s, the checks), so a child past this is stuck and is killed.
const CHILD_WITHIN: Duration = Duration::from_secs(600);
/// How often the parent looks at the child.
const POLL: Duration = Duration::from_millis(50);

/// Runs the idle scenario `s` of `system` in a fresh `tandem-bench idle-child` process.
pub(super) fn run(
    exe: &Path,
    s: &IdleSettings,
    system: System,
    plan: &Plan,
) -> anyhow::Result<Figures> {
    let dir = tempfile::tempdir()?;
    let out = dir.path().join("idle.json");
    let mut cmd = Command::new(exe);
    cmd.args(["idle-child", "--no-progress", "--systems", system.as_str()])
        .args(["--idle-pairs", &s.pairs.to_string()])
        .args(["--workers", &plan.placement.workers.to_string()])
        .arg("--json")
        .arg(&out)
        .stdin(Stdio::null())
        .stdout(Stdio::null());
    if let Some(cpus) = &plan.placement.cpus {
        let list: Vec<String> = cpus.iter().map(usize::to_string).collect();
        cmd.args(["--cores", &list.join(",")]);
    }
    if let Some(p) = plan.placement.pipe_size {
        cmd.args(["--pipe-size", &p.to_string()]);
    }
    let mut child = cmd.spawn().context("starting the idle child")?;
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        if started.elapsed() > CHILD_WITHIN {
            let _ = child.kill();
            let _ = child.wait();
            bail!("the idle child did not finish within {CHILD_WITHIN:?}");
        }
        std::thread::sleep(POLL);
    };
    if !status.success() {
        bail!("the idle child failed ({status}); its stderr is above");
    }
    read(&out)
}

fn read(path: &Path) -> anyhow::Result<Figures> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let figures: Figures = serde_json::from_slice(&bytes).context("the idle child's figures")?;
    match figures {
        Figures::Idle(_) | Figures::Failed { .. } => Ok(figures),
        _ => bail!("the idle child reported another workload"),
    }
}
