//! The issues' speed and memory targets, checked on per-round values of one run (ratios and
//! differences are taken within each round, where the systems ran interleaved) and judged by
//! [`crate::verdict::judge`]: met, missed, or unmeasurable with the reason.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::report::{Figures, Run};
use crate::stats::Spread;
use crate::target::System;
use crate::verdict::{Baseline, Goal, MIN_ROUNDS, Verdict, judge};

/// One target, checked against this run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TargetCheck {
    /// What is compared.
    pub name: String,
    /// The median over rounds of the compared value (NaN when no round produced one).
    pub value: f64,
    /// The compared value over rounds.
    pub spread: Option<Spread>,
    /// The goal, as text (e.g. ">= 1.5").
    pub goal: String,
    /// Met, missed, or unmeasurable.
    pub verdict: Verdict,
    /// Why it is unmeasurable.
    pub reason: Option<String>,
}

impl TargetCheck {
    /// Whether it was met (and measurably so).
    pub fn met(&self) -> bool {
        self.verdict == Verdict::Met
    }
}

/// Which figure of a run a goal reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Metric {
    /// The headline figure: Gbit/s, pairs/s, p99 µs, MiB per 10k idle pairs.
    Headline,
    /// The headline per core of relay CPU (throughput, setup rate).
    PerCore,
    /// Latency p50, µs (coordinated-omission corrected).
    P50,
    /// io-wq threads of the relay holding the idle pairs.
    IouWrk,
}

/// `metric` of one run's figures, if it has one.
pub fn value(f: &Figures, metric: Metric) -> Option<f64> {
    let per_core = |v: f64, cores: Option<f64>| cores.filter(|c| *c > 0.0).map(|c| v / c);
    let v = match (f, metric) {
        (Figures::Throughput(t), Metric::Headline) => Some(t.gbit_per_s),
        (Figures::Throughput(t), Metric::PerCore) => {
            per_core(t.gbit_per_s, t.relay_cpu.map(|c| c.cores))
        }
        (Figures::SetupRate(s), Metric::Headline) => Some(s.per_sec),
        (Figures::SetupRate(s), Metric::PerCore) => {
            per_core(s.per_sec, s.relay_cpu.map(|c| c.cores))
        }
        (Figures::Latency(l), Metric::Headline) => Some(l.corrected.p99_us),
        (Figures::Latency(l), Metric::P50) => Some(l.corrected.p50_us),
        (Figures::Idle(i), Metric::Headline) => Some(i.rss_growth_per_10k_mib),
        (Figures::Idle(i), Metric::IouWrk) => Some(i.after.iou_wrk_threads as f64),
        _ => None,
    };
    v.filter(|x| x.is_finite())
}

/// `metric` per round of `scenario` on `system`.
pub fn per_round(
    runs: &[Run],
    scenario: &str,
    system: System,
    metric: Metric,
) -> BTreeMap<usize, f64> {
    runs.iter()
        .filter(|r| r.scenario == scenario && r.system == system)
        .filter_map(|r| value(&r.figures, metric).map(|v| (r.round, v)))
        .collect()
}

/// `f(a, b)` for every round both have.
fn zip(
    a: &BTreeMap<usize, f64>,
    b: &BTreeMap<usize, f64>,
    f: impl Fn(f64, f64) -> f64,
) -> Vec<f64> {
    a.iter()
        .filter_map(|(round, x)| b.get(round).map(|y| f(*x, *y)))
        .filter(|v| v.is_finite())
        .collect()
}

/// The best (largest) of several systems' values, per round.
fn best_of(
    runs: &[Run],
    scenario: &str,
    systems: &[System],
    metric: Metric,
) -> BTreeMap<usize, f64> {
    let mut best: BTreeMap<usize, f64> = BTreeMap::new();
    for s in systems {
        for (round, v) in per_round(runs, scenario, *s, metric) {
            let e = best.entry(round).or_insert(v);
            *e = e.max(v);
        }
    }
    best
}

struct Checks<'a> {
    runs: &'a [Run],
    out: Vec<TargetCheck>,
}

impl Checks<'_> {
    /// Judges `rounds` against `goal` unless no round has the figure on both sides.
    fn push(&mut self, name: String, rounds: Vec<f64>, goal: Goal, baseline: Option<&Baseline>) {
        self.push_n(name, rounds, goal, baseline, MIN_ROUNDS);
    }

    fn push_n(
        &mut self,
        name: String,
        rounds: Vec<f64>,
        goal: Goal,
        baseline: Option<&Baseline>,
        min_rounds: usize,
    ) {
        if rounds.is_empty() {
            return;
        }
        let j = judge(&rounds, goal, baseline, min_rounds);
        self.out.push(TargetCheck {
            name,
            value: j.spread.map_or(f64::NAN, |s| s.median),
            spread: j.spread,
            goal: goal.text(),
            verdict: j.verdict,
            reason: j.reason,
        });
    }

    /// `a / b` per round against `goal`.
    fn ratio(&mut self, name: String, scenario: &str, a: System, b: System, m: Metric, goal: Goal) {
        let (x, y) = (
            per_round(self.runs, scenario, a, m),
            per_round(self.runs, scenario, b, m),
        );
        self.push(name, zip(&x, &y, |x, y| x / y), goal, None);
    }
}

/// The targets of issues 7 and 14 for Tandem variant `tandem`, where both sides were measured.
pub fn check_targets(runs: &[Run], tandem: System, workers: usize) -> Vec<TargetCheck> {
    let mut c = Checks {
        runs,
        out: Vec::new(),
    };
    let t = tandem.as_str();
    let ge = Goal::AtLeast;
    for scenario in ["throughput-1", "throughput-64"] {
        let h = System::HaproxySplice;
        let name = format!("{scenario}: {t} / haproxy-splice Gbit/s");
        c.ratio(name, scenario, tandem, h, Metric::Headline, ge(1.0));
        let name = format!("{scenario}: {t} / haproxy-splice Gbit/s per relay core");
        c.ratio(name, scenario, tandem, h, Metric::PerCore, ge(1.5));
    }
    let baselines = [System::HaproxySplice, System::HaproxyDefault, System::Nginx];
    for (scenario, how, want) in [
        ("setup-rate", "tokens ahead", 1.5),
        (
            "setup-rate-control",
            "one ControlService call per pair",
            0.5,
        ),
    ] {
        let a = per_round(runs, scenario, tandem, Metric::Headline);
        let best = best_of(runs, scenario, &baselines, Metric::Headline);
        let name = format!("{scenario}: {t} / best of haproxy, nginx ({how})");
        c.push(name, zip(&a, &best, |x, y| x / y), ge(want), None);
    }
    let name = format!("setup-rate: {t} / direct (tokens ahead)");
    c.ratio(
        name,
        "setup-rate",
        tandem,
        System::Direct,
        Metric::Headline,
        ge(0.5),
    );
    latency(&mut c, runs, tandem);
    idle(&mut c, runs, tandem, workers);
    uring_vs_epoll(&mut c);
    c.out
}

fn latency(c: &mut Checks<'_>, runs: &[Run], tandem: System) {
    let t = tandem.as_str();
    let relay = per_round(runs, "latency", tandem, Metric::Headline);
    let direct = per_round(runs, "latency", System::Direct, Metric::Headline);
    let d: Vec<f64> = direct.values().copied().collect();
    let r: Vec<f64> = relay.values().copied().collect();
    if let Some(spread) = Spread::of(&d) {
        let baseline = Baseline {
            what: "direct's p99, µs".into(),
            spread,
            system_median: Spread::of(&r).map(|s| s.median),
            larger_is_worse: true,
        };
        let added = zip(&relay, &direct, |x, y| x - y);
        let name = format!("latency: {t} p99 added over direct, µs");
        c.push(name, added, Goal::AtMost(50.0), Some(&baseline));
    }
    let name = format!("latency: {t} / nginx p50");
    c.ratio(
        name,
        "latency",
        tandem,
        System::Nginx,
        Metric::P50,
        Goal::AtMost(1.0),
    );
}

fn idle(c: &mut Checks<'_>, runs: &[Run], tandem: System, workers: usize) {
    let t = tandem.as_str();
    let mib = per_round(runs, "idle", tandem, Metric::Headline);
    let name = format!("idle: {t} RSS growth per 10,000 pairs, MiB");
    c.push(name, mib.into_values().collect(), Goal::AtMost(8.0), None);
    // A count, not a timing: one round tells it.
    let iou = per_round(runs, "idle", tandem, Metric::IouWrk);
    let goal = 2.0 * workers as f64;
    let name = format!("idle: {t} iou-wrk threads ({workers} engine cores)");
    c.push_n(
        name,
        iou.into_values().collect(),
        Goal::AtMost(goal),
        None,
        1,
    );
}

/// Issue 14: the io_uring driver at least as good as its epoll fallback on every row.
fn uring_vs_epoll(c: &mut Checks<'_>) {
    let (u, e) = (System::TandemUringSplice, System::TandemEpollSplice);
    let rows = [
        ("throughput-1", Metric::Headline, "Gbit/s", true),
        ("throughput-64", Metric::Headline, "Gbit/s", true),
        ("setup-rate", Metric::Headline, "pairs/s", true),
        ("latency", Metric::P50, "p50", false),
        ("latency", Metric::Headline, "p99", false),
        ("idle", Metric::Headline, "RSS per pair", false),
    ];
    for (scenario, m, what, higher_better) in rows {
        let goal = if higher_better {
            Goal::AtLeast(1.0)
        } else {
            Goal::AtMost(1.0)
        };
        let name = format!("{scenario}: uring / epoll splice {what}");
        c.ratio(name, scenario, u, e, m, goal);
    }
}
