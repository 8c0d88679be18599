//! The speed and memory targets, checked against one run's per-scenario medians.

use serde::{Deserialize, Serialize};

use crate::report::{Figures, Run, SummaryRow};
use crate::target::System;

/// One of the targets, checked against this run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TargetCheck {
    /// What is compared.
    pub name: String,
    /// The measured value.
    pub value: f64,
    /// The goal, as text (e.g. ">= 1.5").
    pub goal: String,
    /// Whether it was met.
    pub met: bool,
}

fn row<'a>(rows: &'a [SummaryRow], scenario: &str, system: System) -> Option<&'a SummaryRow> {
    rows.iter()
        .find(|r| r.scenario == scenario && r.system == system.as_str() && r.rounds > 0)
}

fn check(name: String, value: f64, goal: &str, met: bool) -> TargetCheck {
    TargetCheck {
        name,
        value,
        goal: goal.to_owned(),
        met: met && value.is_finite(),
    }
}

/// The targets for Tandem variant `tandem`, where both sides were measured.
pub fn check_targets(
    runs: &[Run],
    rows: &[SummaryRow],
    tandem: System,
    workers: usize,
) -> Vec<TargetCheck> {
    let mut out = Vec::new();
    let t = tandem.as_str();
    for scenario in ["throughput-1", "throughput-64"] {
        if let (Some(a), Some(h)) = (
            row(rows, scenario, tandem),
            row(rows, scenario, System::HaproxySplice),
        ) {
            let r = a.figure / h.figure;
            out.push(check(
                format!("{scenario}: {t} / haproxy-splice Gbit/s"),
                r,
                ">= 1.0",
                r >= 1.0,
            ));
            if let (Some(x), Some(y)) = (a.per_relay_core, h.per_relay_core) {
                let r = x / y;
                out.push(check(
                    format!("{scenario}: {t} / haproxy-splice Gbit/s per relay core"),
                    r,
                    ">= 1.5",
                    r >= 1.5,
                ));
            }
        }
    }
    // Issue 7: tokens ahead >= 1.5x the best baseline; one ControlService call per pair >= 0.5x.
    for (scenario, how, want) in [
        ("setup-rate", "tokens ahead", 1.5),
        (
            "setup-rate-control",
            "one ControlService call per pair",
            0.5,
        ),
    ] {
        let Some(a) = row(rows, scenario, tandem) else {
            continue;
        };
        let best = [System::HaproxySplice, System::HaproxyDefault, System::Nginx]
            .into_iter()
            .filter_map(|s| row(rows, scenario, s))
            .map(|r| r.figure)
            .fold(f64::NAN, f64::max);
        if best.is_finite() {
            let r = a.figure / best;
            out.push(check(
                format!("{scenario}: {t} / best of haproxy, nginx ({how})"),
                r,
                if want > 1.0 { ">= 1.5" } else { ">= 0.5" },
                r >= want,
            ));
        }
    }
    if let Some(a) = row(rows, "latency", tandem)
        && let Some(added) = a.vs_direct
    {
        out.push(check(
            format!("latency: {t} p99 added over direct, µs"),
            added,
            "<= 50",
            added <= 50.0,
        ));
    }
    if let Some(a) = row(rows, "idle", tandem) {
        out.push(check(
            format!("idle: {t} RSS growth per 10,000 pairs, MiB"),
            a.figure,
            "<= 64",
            a.figure <= 64.0,
        ));
    }
    let iou = runs
        .iter()
        .filter(|r| r.system == tandem)
        .filter_map(|r| match &r.figures {
            Figures::Idle(i) => Some(i.after.iou_wrk_threads as f64),
            _ => None,
        })
        .fold(f64::NAN, f64::max);
    if iou.is_finite() {
        let goal = 2.0 * workers as f64;
        out.push(check(
            format!("idle: {t} iou-wrk threads ({workers} engine cores)"),
            iou,
            &format!("<= {goal}"),
            iou <= goal,
        ));
    }
    out
}
