//! The report: every run's figures, the environment and settings, per-scenario medians with
//! ratios to direct TCP, and the targets checked. Serialises to `--json FILE`.

use serde::{Deserialize, Serialize};

pub use crate::goals::{TargetCheck, check_targets};
use crate::procfs::Environment;
use crate::stats::{Spread, median};
use crate::target::System;
use crate::workload::{IdleResult, LatencyResult, SetupResult, ThroughputResult};

/// Version of the JSON layout; bump when a field changes meaning or disappears.
pub const SCHEMA: &str = "tandem-bench/2";

/// One run's figures, tagged by workload.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "workload", rename_all = "kebab-case")]
pub enum Figures {
    /// `throughput`.
    Throughput(ThroughputResult),
    /// `setup-rate`.
    SetupRate(SetupResult),
    /// `latency`.
    Latency(LatencyResult),
    /// `idle`.
    Idle(IdleResult),
    /// A run that failed; the error says why.
    Failed {
        /// The error chain.
        error: String,
    },
}

/// One workload run against one system.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Run {
    /// Scenario name (`throughput-1`, `throughput-64`, `setup-rate`, `latency`, `idle`).
    pub scenario: String,
    /// The system.
    pub system: System,
    /// Round (0-based); systems run interleaved within each round.
    pub round: usize,
    /// The figures (flattened: `workload` tags them).
    #[serde(flatten)]
    pub figures: Figures,
}

/// A system that was not measured, and why.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Skipped {
    /// The system.
    pub system: System,
    /// Why.
    pub reason: String,
}

/// The median over rounds of one scenario on one system.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct SummaryRow {
    /// Scenario.
    pub scenario: String,
    /// System name.
    pub system: String,
    /// Rounds that produced figures.
    pub rounds: usize,
    /// The headline figure (Gbit/s, pairs/s, p99 µs, RSS MiB per 10k pairs), median.
    pub figure: f64,
    /// The headline figure over rounds (min, median, max).
    pub spread: Option<Spread>,
    /// Its unit.
    pub unit: String,
    /// Cores of relay CPU used, median.
    pub relay_cores: Option<f64>,
    /// Headline figure per core of relay CPU (throughput and setup rate), median of the rounds'.
    pub per_relay_core: Option<f64>,
    /// The per-core figure over rounds.
    pub per_core_spread: Option<Spread>,
    /// Headline figure over direct TCP's in the same run (latency: added µs instead).
    pub vs_direct: Option<f64>,
    /// Achieved / offered concurrency (or rate), median; < 0.95 means the load generator fell behind.
    pub achieved_vs_offered: Option<f64>,
    /// Extra figures for the table (p50, p99.9, fds, iou-wrk threads, path).
    pub detail: String,
}

/// The whole report.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// [`SCHEMA`].
    pub schema: String,
    /// Unix time the run started, seconds.
    pub started_unix: u64,
    /// Machine and build.
    pub environment: Environment,
    /// The settings of the run (the CLI's, serialised).
    pub settings: serde_json::Value,
    /// Every run.
    pub runs: Vec<Run>,
    /// Systems not measured.
    pub skipped: Vec<Skipped>,
    /// Medians per scenario and system.
    pub summary: Vec<SummaryRow>,
    /// The targets.
    pub targets: Vec<TargetCheck>,
}

/// The headline figure and per-run extras of `f`.
struct Headline {
    figure: f64,
    per_core: Option<f64>,
    unit: &'static str,
    relay_cores: Option<f64>,
    conc: Option<f64>,
    detail: String,
}

fn headline(f: &Figures) -> Option<Headline> {
    Some(match f {
        Figures::Throughput(t) => Headline {
            figure: t.gbit_per_s,
            per_core: None,
            unit: "Gbit/s",
            relay_cores: t.relay_cpu.map(|c| c.cores),
            conc: Some(t.concurrency.ratio),
            detail: format!(
                "{}/{} streams verified{}",
                t.verified_streams,
                t.verified_streams + t.corrupt_streams,
                t.path
                    .as_ref()
                    .map(|p| format!("; {p}"))
                    .unwrap_or_default()
            ),
        },
        Figures::SetupRate(s) => Headline {
            figure: s.per_sec,
            per_core: None,
            unit: "pairs/s",
            relay_cores: s.relay_cpu.map(|c| c.cores),
            conc: Some(s.concurrency.ratio),
            detail: format!("{} errors; op p99 {:.0} µs", s.errors, s.op_latency.p99_us),
        },
        Figures::Latency(l) => Headline {
            figure: l.corrected.p99_us,
            per_core: None,
            unit: "p99 µs",
            relay_cores: None,
            conc: Some(l.rate_achieved / l.rate_offered.max(1e-9)),
            detail: format!(
                "p50 {:.1} p99.9 {:.1} max {:.1} µs",
                l.corrected.p50_us, l.corrected.p999_us, l.corrected.max_us
            ),
        },
        Figures::Idle(i) => Headline {
            figure: i.rss_growth_per_10k_mib,
            per_core: None,
            unit: "MiB/10k pairs",
            relay_cores: None,
            conc: Some(i.pairs_held as f64 / i.pairs_offered.max(1) as f64),
            detail: match i.pairs_parked {
                Some(p) => format!(
                    "{} pairs ({p} parked); fds {}; iou-wrk {}",
                    i.pairs_held, i.after.fds, i.after.iou_wrk_threads
                ),
                None => format!(
                    "{} pairs; fds {}; iou-wrk {}",
                    i.pairs_held, i.after.fds, i.after.iou_wrk_threads
                ),
            },
        },
        Figures::Failed { .. } => return None,
    })
    .map(|mut h| {
        h.per_core = crate::goals::value(f, crate::goals::Metric::PerCore);
        h
    })
}

/// Medians per (scenario, system) in first-seen order, with ratios to direct TCP.
pub fn summarise(runs: &[Run]) -> Vec<SummaryRow> {
    let mut keys: Vec<(String, System)> = Vec::new();
    for r in runs {
        let k = (r.scenario.clone(), r.system);
        if !keys.contains(&k) {
            keys.push(k);
        }
    }
    let mut rows: Vec<SummaryRow> = keys
        .iter()
        .map(|(scenario, system)| {
            let hs: Vec<Headline> = runs
                .iter()
                .filter(|r| &r.scenario == scenario && r.system == *system)
                .filter_map(|r| headline(&r.figures))
                .collect();
            let med = |v: Vec<f64>| median(&v);
            let figure = med(hs.iter().map(|h| h.figure).collect()).unwrap_or(f64::NAN);
            let relay_cores = med(hs.iter().filter_map(|h| h.relay_cores).collect());
            let per_core: Vec<f64> = hs.iter().filter_map(|h| h.per_core).collect();
            let per_core_spread = Spread::of(&per_core);
            SummaryRow {
                scenario: scenario.clone(),
                system: system.as_str().to_owned(),
                rounds: hs.len(),
                figure,
                spread: Spread::of(&hs.iter().map(|h| h.figure).collect::<Vec<_>>()),
                unit: hs.first().map_or("", |h| h.unit).to_owned(),
                relay_cores,
                per_relay_core: per_core_spread.map(|s| s.median),
                per_core_spread,
                vs_direct: None,
                achieved_vs_offered: med(hs.iter().filter_map(|h| h.conc).collect()),
                detail: hs.last().map(|h| h.detail.clone()).unwrap_or_default(),
            }
        })
        .filter(|r: &SummaryRow| r.rounds > 0)
        .collect();
    let direct: Vec<(String, f64)> = rows
        .iter()
        .filter(|r| r.system == System::Direct.as_str())
        .map(|r| (r.scenario.clone(), r.figure))
        .collect();
    for r in rows.iter_mut().filter(|r| r.scenario != "idle") {
        if let Some((_, d)) = direct.iter().find(|(s, _)| *s == r.scenario) {
            r.vs_direct = Some(if r.scenario.starts_with("latency") {
                r.figure - d
            } else if *d > 0.0 {
                r.figure / d
            } else {
                f64::NAN
            });
        }
    }
    rows
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::ConcurrencyReport;

    fn tp(system: System, gbps: f64, cores: f64) -> Run {
        Run {
            scenario: "throughput-1".into(),
            system,
            round: 0,
            figures: Figures::Throughput(ThroughputResult {
                pairs: 1,
                gbit_per_s: gbps,
                relay_cpu: (cores > 0.0).then_some(crate::workload::RelayCpu {
                    cpu_seconds: cores,
                    cores,
                }),
                concurrency: ConcurrencyReport {
                    offered: 2.0,
                    achieved: 2.0,
                    ratio: 1.0,
                },
                ..ThroughputResult::default()
            }),
        }
    }

    #[test]
    fn summary_takes_medians_and_ratios_to_direct() {
        let runs = vec![
            tp(System::Direct, 20.0, 0.0),
            tp(System::Direct, 24.0, 0.0),
            tp(System::Direct, 22.0, 0.0),
            tp(System::TandemUringSplice, 11.0, 0.5),
            tp(System::HaproxySplice, 10.0, 0.5),
        ];
        let rows = summarise(&runs);
        assert_eq!(rows.len(), 3);
        assert_eq!(rows[0].figure, 22.0);
        assert_eq!(rows[0].rounds, 3);
        assert_eq!(rows[1].vs_direct, Some(0.5));
        assert_eq!(rows[1].per_relay_core, Some(22.0));
        let s = rows[0].spread.unwrap();
        assert_eq!((s.min, s.median, s.max, s.n), (20.0, 22.0, 24.0, 3));
        // One round: the ratios exist but cannot be told from noise.
        let t = check_targets(&runs, System::TandemUringSplice, 1);
        assert_eq!(t.len(), 2, "{t:?}");
        assert!(
            t.iter()
                .all(|c| c.verdict == crate::verdict::Verdict::Unmeasurable)
        );
    }

    #[test]
    fn targets_are_judged_per_round() {
        let mut runs = Vec::new();
        for (round, (t, h)) in [(11.0, 10.0), (12.0, 10.5), (9.0, 8.5)]
            .into_iter()
            .enumerate()
        {
            for (system, g) in [(System::TandemUringSplice, t), (System::HaproxySplice, h)] {
                let mut r = tp(system, g, 0.5);
                r.round = round;
                runs.push(r);
            }
        }
        let t = check_targets(&runs, System::TandemUringSplice, 1);
        let raw = t.iter().find(|c| c.name.ends_with("Gbit/s")).unwrap();
        // Per-round ratios 1.1, 1.143, 1.059: all above 1.0 by more than they disagree.
        assert!(raw.met(), "{raw:?}");
        assert_eq!(raw.spread.unwrap().n, 3);
        let per_core = t
            .iter()
            .find(|c| c.name.ends_with("per relay core"))
            .unwrap();
        assert_eq!(
            per_core.verdict,
            crate::verdict::Verdict::Missed,
            "{per_core:?}"
        );
    }

    #[test]
    fn json_schema_holds_every_section_and_tag() {
        let mut runs = vec![tp(System::Direct, 1.0, 0.0)];
        runs.push(Run {
            scenario: "latency".into(),
            system: System::Socat,
            round: 1,
            figures: Figures::Failed { error: "x".into() },
        });
        let report = Report {
            schema: SCHEMA.into(),
            started_unix: 1,
            environment: Environment::default(),
            settings: serde_json::json!({"rounds": 1}),
            summary: summarise(&runs),
            runs,
            skipped: vec![Skipped {
                system: System::Nginx,
                reason: "absent".into(),
            }],
            targets: vec![],
        };
        let v = serde_json::to_value(&report).unwrap();
        for key in [
            "schema",
            "started_unix",
            "environment",
            "settings",
            "runs",
            "skipped",
            "summary",
            "targets",
        ] {
            assert!(v.get(key).is_some(), "missing {key}");
        }
        for key in [
            "kernel",
            "cpu_model",
            "cores",
            "commit",
            "dirty",
            "nofile_limit",
            "baselines",
        ] {
            assert!(
                v["environment"].get(key).is_some(),
                "missing environment.{key}"
            );
        }
        assert_eq!(v["runs"][0]["workload"], "throughput");
        assert_eq!(v["runs"][0]["system"], "direct");
        assert!(v["runs"][0].get("gbit_per_s").is_some());
        assert_eq!(v["runs"][1]["workload"], "failed");
        let back: Report = serde_json::from_value(v).unwrap();
        assert_eq!(back, report);
    }
}
