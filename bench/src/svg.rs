//! `--svg FILE`: bar charts per system, each bar the median over rounds with the min..max
//! spread as an error bar. The per-core panels (the figure per core of relay CPU) come first:
//! they tell relays apart on a machine whose cores the client, server and relay share.
//! Labels sit one per bar (a segmented axis) in a font no taller than a bar is wide.

use std::path::Path;

use plotters::prelude::*;

use crate::report::{Report, SummaryRow};
use crate::stats::Spread;

/// Picture size in pixels (six panels in a 2 × 3 grid).
const W: u32 = 1500;
const H: u32 = 1000;

/// Which figure of a summary row a panel draws.
#[derive(Clone, Copy)]
enum Pick {
    Figure,
    PerCore,
}

fn spread_of(r: &SummaryRow, pick: Pick) -> Option<Spread> {
    match pick {
        Pick::Figure => r.spread,
        Pick::PerCore => r.per_core_spread,
    }
}

fn err(e: impl std::fmt::Display) -> anyhow::Error {
    anyhow::anyhow!("{e}")
}

fn panel(
    area: &DrawingArea<SVGBackend<'_>, plotters::coord::Shift>,
    title: &str,
    bars: &[(String, Spread)],
) -> anyhow::Result<()> {
    let top = bars
        .iter()
        .map(|(_, s)| s.max)
        .filter(|v| v.is_finite())
        .fold(0.0, f64::max)
        .max(1e-9);
    let n = bars.len();
    if n == 0 {
        // Nothing ran for this panel: say so instead of drawing an empty (0..-1) axis.
        area.titled(
            &format!("{title}: no figures in this run"),
            ("sans-serif", 16),
        )
        .map_err(err)?;
        return Ok(());
    }
    // What is drawn stays inside the axis: a figure that is not finite (a ratio over zero, a run
    // that produced nothing) is drawn as 0, never as a coordinate that overflows the backend.
    let ceiling = top * 1.12;
    let y = |v: f64| {
        if v.is_finite() {
            v.clamp(0.0, ceiling)
        } else {
            0.0
        }
    };
    let (w, _) = area.dim_in_pixel();
    // A rotated label is as wide as the font is tall: keep it under a bar's width.
    let bar_px = (w.saturating_sub(70) as f64 / n.max(1) as f64).max(1.0);
    let font = (bar_px * 0.6).clamp(6.0, 13.0);
    let mut chart = ChartBuilder::on(area)
        .caption(title, ("sans-serif", 16))
        .margin(8)
        .x_label_area_size(130)
        .y_label_area_size(60)
        .build_cartesian_2d((0..n as i32 - 1).into_segmented(), 0f64..ceiling)
        .map_err(err)?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(n)
        .x_label_formatter(&|v| match v {
            SegmentValue::CenterOf(i) => usize::try_from(*i)
                .ok()
                .and_then(|i| bars.get(i))
                .map(|(name, _)| name.clone())
                .unwrap_or_default(),
            _ => String::new(),
        })
        .x_label_style(
            ("sans-serif", font)
                .into_font()
                .transform(FontTransform::Rotate90),
        )
        .draw()
        .map_err(err)?;
    chart
        .draw_series(bars.iter().enumerate().map(|(i, (name, s))| {
            let color = if name.starts_with("tandem") {
                BLUE.mix(0.7)
            } else if name == "direct" {
                BLACK.mix(0.4)
            } else {
                RED.mix(0.5)
            };
            let i = i as i32;
            let mut r = Rectangle::new(
                [
                    (SegmentValue::Exact(i), 0.0),
                    (SegmentValue::Exact(i + 1), y(s.median)),
                ],
                color.filled(),
            );
            r.set_margin(0, 0, 4, 4);
            r
        }))
        .map_err(err)?;
    chart
        .draw_series(
            bars.iter()
                .enumerate()
                .filter(|(_, (_, s))| s.n > 1)
                .map(|(i, (_, s))| {
                    ErrorBar::new_vertical(
                        SegmentValue::CenterOf(i as i32),
                        y(s.min),
                        y(s.median),
                        y(s.max),
                        BLACK.stroke_width(2),
                        8,
                    )
                }),
        )
        .map_err(err)?;
    Ok(())
}

/// Writes the plots of `report` to `path`.
pub fn write(report: &Report, path: &Path) -> anyhow::Result<()> {
    let root = SVGBackend::new(path, (W, H)).into_drawing_area();
    root.fill(&WHITE).map_err(err)?;
    let panels = root.split_evenly((2, 3));
    let plots = [
        (
            "throughput-1",
            Pick::PerCore,
            "one pair, Gbit/s per relay core",
        ),
        (
            "throughput-64",
            Pick::PerCore,
            "64 pairs, Gbit/s per relay core",
        ),
        ("setup-rate", Pick::PerCore, "setup, pairs/s per relay core"),
        ("throughput-1", Pick::Figure, "one pair, Gbit/s (both ways)"),
        (
            "latency",
            Pick::Figure,
            "p99 µs, coordinated-omission corrected",
        ),
        ("idle", Pick::Figure, "idle RSS MiB per 10k pairs"),
    ];
    for (area, (scenario, pick, title)) in panels.iter().zip(plots) {
        let bars: Vec<(String, Spread)> = report
            .summary
            .iter()
            .filter(|r| {
                let same = r.scenario == scenario
                    || (scenario == "setup-rate" && r.scenario == "setup-rate-control");
                same && r.rounds > 0
            })
            .filter_map(|r| spread_of(r, pick).map(|s| (r.system.clone(), s)))
            .collect();
        if !bars.is_empty() {
            let title = format!("{title} (median, min..max over rounds)");
            panel(area, &title, &bars)?;
        }
    }
    root.present().map_err(err)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::{Report, SCHEMA};

    fn row(scenario: &str, system: &str, v: f64) -> SummaryRow {
        let s = Spread {
            min: v * 0.9,
            median: v,
            max: v * 1.1,
            n: 3,
        };
        SummaryRow {
            scenario: scenario.into(),
            system: system.into(),
            rounds: 3,
            figure: v,
            spread: Some(s),
            per_relay_core: Some(v),
            per_core_spread: Some(s),
            ..SummaryRow::default()
        }
    }

    /// x positions of the text elements that name `label`.
    fn label_xs(svg: &str, label: &str) -> Vec<f64> {
        svg.split("<text")
            .filter(|t| t.contains(&format!("\n{label}\n")))
            .filter_map(|t| t.split("x=\"").nth(1)?.split('"').next()?.parse().ok())
            .collect()
    }

    #[test]
    fn every_bar_has_one_label_error_bars_and_labels_do_not_overlap() {
        let systems = [
            "direct",
            "tandem-uring-splice",
            "tandem-uring-copy",
            "tandem-epoll-splice",
            "tandem-epoll-copy",
            "haproxy-splice",
            "haproxy-default",
            "nginx",
            "socat",
        ];
        let mut summary = Vec::new();
        for sc in [
            "throughput-1",
            "throughput-64",
            "setup-rate",
            "latency",
            "idle",
        ] {
            for (i, s) in systems.iter().enumerate() {
                summary.push(row(sc, s, 1.0 + i as f64));
            }
        }
        let report = Report {
            schema: SCHEMA.into(),
            started_unix: 0,
            environment: Default::default(),
            settings: serde_json::Value::Null,
            runs: vec![],
            skipped: vec![],
            summary,
            targets: vec![],
        };
        let dir = std::env::temp_dir().join(format!("tandem-svg-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("plot.svg");
        write(&report, &path).unwrap();
        let svg = std::fs::read_to_string(&path).unwrap();
        let _ = std::fs::remove_dir_all(&dir);
        let font: f64 = svg
            .split("font-size=\"")
            .nth(1)
            .and_then(|s| s.split('"').next())
            .and_then(|s| s.parse().ok())
            .unwrap();
        // Six panels, each naming every system once, at distinct x positions at least one
        // font height apart (rotated labels are one font height wide).
        let mut all: Vec<f64> = Vec::new();
        for s in systems {
            let xs = label_xs(&svg, s);
            assert_eq!(xs.len(), 6, "{s}: {xs:?}");
            all.extend(xs);
        }
        all.sort_by(f64::total_cmp);
        for w in all.windows(2) {
            assert!(
                w[1] - w[0] >= font || w[1] == w[0],
                "labels overlap: {w:?} font {font}"
            );
        }
        // Error bars: each is drawn as lines; there are at least as many lines as bars.
        assert!(
            svg.matches("<line").count() >= 6 * systems.len(),
            "no error bars"
        );
    }

    #[test]
    fn figures_that_are_not_finite_are_drawn_at_zero_without_overflow() {
        let dir = tempfile::tempdir().unwrap();
        let svg = dir.path().join("odd.svg");
        let area = SVGBackend::new(&svg, (400, 300)).into_drawing_area();
        let odd = Spread {
            min: 1.0,
            median: f64::INFINITY,
            max: f64::NAN,
            n: 3,
        };
        let fine = Spread {
            min: 1.0,
            median: 2.0,
            max: 3.0,
            n: 3,
        };
        let bars = vec![("tandem-x".to_owned(), odd), ("direct".to_owned(), fine)];
        panel(&area, "odd", &bars).unwrap();
        panel(&area, "empty", &[]).unwrap();
        area.present().unwrap();
    }
}
