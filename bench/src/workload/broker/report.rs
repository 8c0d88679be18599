//! The `broker` report: one row per phase (path × HTTP version × callers) with the CPU each process
//! spent per call, the targets as ratios to the floors and to `direct`, the table, the
//! JSON (`--json`) and the SVG (`--svg`).

use std::collections::BTreeMap;
use std::fmt::Write;
use std::path::Path;

use plotters::prelude::*;
use serde::{Deserialize, Serialize};

use super::rounds::RATE_CALLERS;
pub use super::targets::check_targets;
use super::{LoadFigures, Row};
use crate::procfs::Environment;
use crate::report::TargetCheck;

/// Version of this JSON layout.
pub const SCHEMA: &str = "tandem-bench-broker/1";

/// One phase.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PhaseRow {
    /// The path.
    pub row: Row,
    /// `h1`, `h2` or `grpc`.
    pub http: String,
    /// What was measured.
    #[serde(flatten)]
    pub figures: LoadFigures,
    /// CPU per correct answer, µs, by process (`hd-1`, `hd-2`, `public-proxy-1`, ..., `harness`).
    pub cpu_us_per_call: BTreeMap<String, f64>,
    /// `/proc/loadavg` (1, 5, 15 min) when the phase started: other engineers' builds share the cores.
    pub load_avg: String,
    /// What else the phase observed.
    pub note: Option<String>,
    /// The interleaved round it belongs to (none: the sweep).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub round: Option<usize>,
}

/// The whole report.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BrokerReport {
    /// [`SCHEMA`].
    pub schema: String,
    /// Unix time the run started, seconds.
    pub started_unix: u64,
    /// Machine and build.
    pub environment: Environment,
    /// The run's settings.
    pub settings: serde_json::Value,
    /// Every phase of the sweep.
    pub rows: Vec<PhaseRow>,
    /// The interleaved rounds' phases, which judge the ratio targets (see `rounds.rs`).
    #[serde(default)]
    pub rounds: Vec<PhaseRow>,
    /// Size of the answer's `result` as JSON, bytes (what every call carries back; the floors
    /// answer with the same result).
    pub answer_bytes: usize,
    /// Steps that failed, with the reason.
    pub failures: Vec<String>,
    /// The targets.
    pub targets: Vec<TargetCheck>,
}
/// The table.
pub fn render(r: &BrokerReport) -> String {
    let mut out = String::new();
    let e = &r.environment;
    let _ = writeln!(
        out,
        "tandem-bench {} | kernel {} | {} | {} cores | commit {}{}",
        r.schema,
        e.kernel,
        e.cpu_model,
        e.cores,
        e.commit,
        if e.dirty { " (dirty)" } else { "" }
    );
    let _ = writeln!(
        out,
        "answer: {} bytes of JSON result per call",
        r.answer_bytes
    );
    let _ = writeln!(
        out,
        "{:<14} {:<5} {:>7} {:>10} {:>9} {:>9} {:>9} {:>7}  {:<44} load",
        "row",
        "http",
        "callers",
        "calls/s",
        "p50 µs",
        "p99 µs",
        "p99.9 µs",
        "errors",
        "CPU µs/call"
    );
    for row in &r.rows {
        let f = &row.figures;
        let cpu: Vec<String> = row
            .cpu_us_per_call
            .iter()
            .filter(|(_, v)| **v >= 0.5)
            .map(|(k, v)| format!("{k} {v:.0}"))
            .collect();
        let _ = writeln!(
            out,
            "{:<14} {:<5} {:>7} {:>10.0} {:>9.0} {:>9.0} {:>9.0} {:>7}  {:<44} {}",
            row.row.as_str(),
            row.http,
            f.callers,
            f.calls_per_sec,
            f.latency.p50_us,
            f.latency.p99_us,
            f.latency.p999_us,
            f.errors,
            cpu.join(", "),
            row.load_avg
        );
        for (reason, n) in &f.error_reasons {
            let _ = writeln!(out, "    {n} × {reason}");
        }
        if let Some(note) = &row.note {
            let _ = writeln!(out, "    {note}");
        }
    }
    render_rounds(&mut out, &r.rounds);
    if !r.targets.is_empty() {
        let _ = writeln!(
            out,
            "\nissue 13 targets (ratios within each interleaved round; median, min..max over rounds):"
        );
        for t in &r.targets {
            let mark = format!("{:<12}", t.verdict.as_str());
            let spread = t
                .spread
                .filter(|s| s.n > 1)
                .map(|s| format!("{:.2}..{:.2}", s.min, s.max))
                .unwrap_or_default();
            let _ = writeln!(
                out,
                "  {mark} {:<52} {:>10.2} {:>16} (goal {})",
                t.name, t.value, spread, t.goal
            );
            if let Some(reason) = &t.reason {
                let _ = writeln!(out, "               {reason}");
            }
        }
    }
    for f in &r.failures {
        let _ = writeln!(out, "FAILED {f}");
    }
    out
}

/// The rounds, one line per round: each phase's p50 (one caller) or calls/s (64 callers).
fn render_rounds(out: &mut String, rounds: &[PhaseRow]) {
    let n = rounds
        .iter()
        .filter_map(|r| r.round)
        .max()
        .map_or(0, |m| m + 1);
    if n == 0 {
        return;
    }
    let _ = writeln!(
        out,
        "\ninterleaved rounds (HTTP/1.1; order rotated each round): p50 µs at 1 caller, calls/s at {RATE_CALLERS}"
    );
    for round in 0..n {
        let cells: Vec<String> = rounds
            .iter()
            .filter(|r| r.round == Some(round))
            .map(|r| {
                let f = &r.figures;
                if f.callers == 1 {
                    format!("{} p50 {:.0}", r.row.as_str(), f.latency.p50_us)
                } else {
                    format!("{} {:.0}/s", r.row.as_str(), f.calls_per_sec)
                }
            })
            .collect();
        let load = rounds
            .iter()
            .find(|r| r.round == Some(round))
            .map_or("", |r| r.load_avg.as_str());
        let _ = writeln!(
            out,
            "  round {}: {} (load {load})",
            round + 1,
            cells.join(", ")
        );
    }
}

/// Two panels: p50 latency at one caller and calls/s at the largest caller count, per row.
pub fn write_svg(r: &BrokerReport, path: &Path) -> anyhow::Result<()> {
    let root = SVGBackend::new(path, (1400, 600)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| anyhow::anyhow!("{e}"))?;
    let panels = root.split_evenly((1, 2));
    let most = r.rows.iter().map(|x| x.figures.callers).max().unwrap_or(1);
    let one: Vec<(String, f64)> = r
        .rows
        .iter()
        .filter(|x| x.figures.callers == 1)
        .map(|x| {
            (
                format!("{} {}", x.row.as_str(), x.http),
                x.figures.latency.p50_us,
            )
        })
        .collect();
    let many: Vec<(String, f64)> = r
        .rows
        .iter()
        .filter(|x| x.figures.callers == most && x.row != Row::ProxiedCold)
        .map(|x| {
            (
                format!("{} {}", x.row.as_str(), x.http),
                x.figures.calls_per_sec,
            )
        })
        .collect();
    bars(&panels[0], "p50 latency, 1 caller (µs)", &one)?;
    bars(&panels[1], &format!("calls/s, {most} callers"), &many)?;
    root.present().map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok(())
}

fn bars(
    area: &DrawingArea<SVGBackend<'_>, plotters::coord::Shift>,
    title: &str,
    data: &[(String, f64)],
) -> anyhow::Result<()> {
    let max = data
        .iter()
        .map(|d| d.1)
        .filter(|v| v.is_finite())
        .fold(0.0, f64::max)
        .max(1e-9);
    let n = data.len().max(1);
    let names: Vec<String> = data.iter().map(|d| d.0.clone()).collect();
    let mut chart = ChartBuilder::on(area)
        .caption(title, ("sans-serif", 18))
        .margin(10)
        .x_label_area_size(120)
        .y_label_area_size(60)
        .build_cartesian_2d(0f64..n as f64, 0f64..max * 1.15)
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(n * 2 + 1)
        .x_label_formatter(&|x| {
            let i = x.floor() as usize;
            if (x - i as f64 - 0.5).abs() < 0.26 {
                names.get(i).cloned().unwrap_or_default()
            } else {
                String::new()
            }
        })
        .x_label_style(
            ("sans-serif", 11)
                .into_font()
                .transform(FontTransform::Rotate90),
        )
        .draw()
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    chart
        .draw_series(data.iter().enumerate().map(|(i, (name, v))| {
            let color = if name.starts_with("floor") {
                BLACK.mix(0.5)
            } else {
                BLUE.mix(0.8)
            };
            let v = if v.is_finite() { *v } else { 0.0 };
            Rectangle::new(
                [(i as f64 + 0.15, 0.0), (i as f64 + 0.85, v)],
                color.filled(),
            )
        }))
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok(())
}
