//! `--svg FILE`: bar charts per system of throughput (one pair and many), setup rate and p99
//! latency, from the report's medians.

use std::path::Path;

use plotters::prelude::*;

use crate::report::{Report, SummaryRow};

/// Panel size in pixels (four panels in a 2 × 2 grid).
const W: u32 = 1400;
const H: u32 = 900;

fn panel(
    area: &DrawingArea<SVGBackend<'_>, plotters::coord::Shift>,
    title: &str,
    rows: &[&SummaryRow],
) -> anyhow::Result<()> {
    let max = rows
        .iter()
        .map(|r| r.figure)
        .filter(|v| v.is_finite())
        .fold(0.0, f64::max)
        .max(1e-9);
    let n = rows.len().max(1);
    let names: Vec<String> = rows.iter().map(|r| r.system.clone()).collect();
    let mut chart = ChartBuilder::on(area)
        .caption(title, ("sans-serif", 18))
        .margin(10)
        .x_label_area_size(90)
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
        .draw_series(rows.iter().enumerate().map(|(i, r)| {
            let color = if r.system.starts_with("tandem") {
                BLUE.mix(0.8)
            } else if r.system == "direct" {
                BLACK.mix(0.5)
            } else {
                RED.mix(0.6)
            };
            let v = if r.figure.is_finite() { r.figure } else { 0.0 };
            Rectangle::new(
                [(i as f64 + 0.15, 0.0), (i as f64 + 0.85, v)],
                color.filled(),
            )
        }))
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok(())
}

/// Writes the plots of `report` to `path`.
pub fn write(report: &Report, path: &Path) -> anyhow::Result<()> {
    let root = SVGBackend::new(path, (W, H)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| anyhow::anyhow!("{e}"))?;
    let panels = root.split_evenly((2, 2));
    let scenarios = [
        ("throughput-1", "one pair, both directions (Gbit/s)"),
        ("throughput-64", "64 pairs, aggregate (Gbit/s)"),
        ("setup-rate", "setup rate (pairs or connections /s)"),
        (
            "latency",
            "ping-pong p99, coordinated-omission corrected (µs)",
        ),
    ];
    for (area, (scenario, title)) in panels.iter().zip(scenarios) {
        let rows: Vec<&SummaryRow> = report
            .summary
            .iter()
            .filter(|r| {
                let same = r.scenario == scenario
                    || (scenario == "setup-rate" && r.scenario == "setup-rate-control");
                same && r.rounds > 0
            })
            .collect();
        if !rows.is_empty() {
            panel(area, title, &rows)?;
        }
    }
    root.present().map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok(())
}
