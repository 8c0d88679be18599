//! The `broker` report: one row per phase (path × HTTP version × callers) with the CPU each process
//! spent per call, the targets as ratios to the floors and to `direct`, the table, the
//! JSON (`--json`) and the SVG (`--svg`).

use std::collections::BTreeMap;
use std::fmt::Write;
use std::path::Path;

use plotters::prelude::*;
use serde::{Deserialize, Serialize};

use super::{LoadFigures, Row};
use crate::procfs::Environment;
use crate::report::TargetCheck;
use crate::verdict::Verdict;

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
    /// Every phase.
    pub rows: Vec<PhaseRow>,
    /// Size of the answer's `result` as JSON, bytes (what every call carries back; the floors
    /// answer with the same result).
    pub answer_bytes: usize,
    /// Steps that failed, with the reason.
    pub failures: Vec<String>,
    /// The targets.
    pub targets: Vec<TargetCheck>,
}

fn find<'a>(rows: &'a [PhaseRow], row: Row, http: &str, callers: usize) -> Option<&'a PhaseRow> {
    rows.iter()
        .find(|r| r.row == row && r.http == http && r.figures.callers == callers)
}

/// One run's check: a figure the run did not produce is unmeasurable, never a pass. (The broker
/// workload runs each row once; its spread is the latency distribution shown beside it.)
fn check(name: &str, value: f64, goal: &str, met: bool) -> TargetCheck {
    let (verdict, reason) = match (value.is_finite(), met) {
        (false, _) => (
            Verdict::Unmeasurable,
            Some("the run produced no figure".to_owned()),
        ),
        (true, true) => (Verdict::Met, None),
        (true, false) => (Verdict::Missed, None),
    };
    TargetCheck {
        name: name.into(),
        value,
        spread: None,
        goal: goal.into(),
        verdict,
        reason,
    }
}

/// The targets, from the HTTP/1.1 rows (the floors: the tonic call and the HTTP/1.1 axum
/// POST at one caller).
pub fn check_targets(rows: &[PhaseRow]) -> Vec<TargetCheck> {
    let mut out = Vec::new();
    let p50 = |r: Option<&PhaseRow>| r.map(|r| r.figures.latency.p50_us);
    let rate = |r: Option<&PhaseRow>| r.map(|r| r.figures.calls_per_sec);
    let direct1 = p50(find(rows, Row::Direct, "h1", 1));
    let floors = p50(find(rows, Row::FloorTonic, "grpc", 1))
        .zip(p50(find(rows, Row::FloorAxum, "h1", 1)))
        .map(|(a, b)| a + b);
    if let (Some(d), Some(f)) = (direct1, floors) {
        let v = d / f;
        out.push(check(
            "direct, 1 caller: p50 / (tonic p50 + axum p50)",
            v,
            "<= 2.0",
            v <= 2.0,
        ));
    }
    if let (Some(w), Some(d)) = (p50(find(rows, Row::ProxiedWarm, "h1", 1)), direct1) {
        let v = w / d;
        out.push(check(
            "proxied warm, 1 caller: p50 / direct p50",
            v,
            "<= 1.2",
            v <= 1.2,
        ));
    }
    let d64 = rate(find(rows, Row::Direct, "h1", 64));
    if let (Some(w), Some(d)) = (rate(find(rows, Row::ProxiedWarm, "h1", 64)), d64) {
        let v = w / d;
        out.push(check(
            "proxied warm, 64 callers: calls/s / direct calls/s",
            v,
            ">= 0.9",
            v >= 0.9,
        ));
    }
    if let Some(d) = d64 {
        out.push(check(
            "direct, 64 callers: calls/s",
            d,
            ">= 10000",
            d >= 10_000.0,
        ));
    }
    if let Some(c) = rows.iter().find(|r| r.row == Row::ProxiedCold) {
        let v = c.figures.latency.p99_us / 1000.0;
        out.push(check(
            "proxied cold: first call p99, ms",
            v,
            "<= 50",
            v <= 50.0 && c.figures.errors == 0,
        ));
    }
    let tandem: Vec<&PhaseRow> = rows
        .iter()
        .filter(|r| !matches!(r.row, Row::FloorAxum | Row::FloorTonic) && r.figures.callers <= 256)
        .collect();
    if !tandem.is_empty() {
        let errors: u64 = tandem.iter().map(|r| r.figures.errors).sum();
        out.push(check(
            "errors, every Tandem phase up to 256 callers",
            errors as f64,
            "= 0",
            errors == 0,
        ));
    }
    out
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
    if !r.targets.is_empty() {
        let _ = writeln!(out, "\nissue 13 targets (this run):");
        for t in &r.targets {
            let mark = format!("{:<12}", t.verdict.as_str());
            let _ = writeln!(
                out,
                "  {mark} {:<62} {:>10.2} (goal {})",
                t.name, t.value, t.goal
            );
        }
    }
    for f in &r.failures {
        let _ = writeln!(out, "FAILED {f}");
    }
    out
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

#[cfg(test)]
mod tests {
    use super::*;

    fn row(r: Row, http: &str, callers: usize, p50: f64, rate: f64, errors: u64) -> PhaseRow {
        let mut figures = LoadFigures {
            callers,
            calls_per_sec: rate,
            errors,
            ..LoadFigures::default()
        };
        figures.latency.p50_us = p50;
        figures.latency.p99_us = p50 * 2.0;
        PhaseRow {
            row: r,
            http: http.into(),
            figures,
            cpu_us_per_call: BTreeMap::new(),
            load_avg: String::new(),
            note: None,
        }
    }

    #[test]
    fn targets_are_ratios_to_the_floors_and_to_direct() {
        let rows = vec![
            row(Row::Direct, "h1", 1, 300.0, 3000.0, 0),
            row(Row::Direct, "h1", 64, 9000.0, 12_000.0, 0),
            row(Row::ProxiedWarm, "h1", 1, 390.0, 2500.0, 0),
            row(Row::ProxiedWarm, "h1", 64, 9000.0, 10_000.0, 0),
            row(Row::ProxiedCold, "h1", 1, 30_000.0, 0.0, 0),
            row(Row::FloorTonic, "grpc", 1, 100.0, 9000.0, 0),
            row(Row::FloorAxum, "h1", 1, 50.0, 9000.0, 7),
        ];
        let t = check_targets(&rows);
        let by = |name: &str| t.iter().find(|c| c.name.starts_with(name)).unwrap();
        assert_eq!(by("direct, 1 caller").value, 2.0);
        assert!(by("direct, 1 caller").met());
        assert!((by("proxied warm, 1 caller").value - 1.3).abs() < 1e-9);
        assert!(!by("proxied warm, 1 caller").met(), "1.3x is over 1.2x");
        assert!(!by("proxied warm, 64").met(), "10k/12k is under 0.9");
        assert!(by("direct, 64").met());
        assert!(!by("proxied cold").met(), "p99 60 ms is over 50 ms");
        // The floor's errors are not Tandem's.
        assert!(by("errors").met());
        let mut bad = rows.clone();
        bad.push(row(Row::Direct, "h2", 256, 1.0, 1.0, 3));
        let t = check_targets(&bad);
        assert!(
            !t.iter()
                .find(|c| c.name.starts_with("errors"))
                .unwrap()
                .met()
        );
    }
}
