//! The table printed at the end of a run.

use std::fmt::Write;

use crate::report::Report;

/// "min..max" of a spread over rounds, or "-" with fewer than two rounds.
fn range(s: Option<crate::stats::Spread>, digits: usize) -> String {
    s.filter(|s| s.n > 1 && s.min.is_finite() && s.max.is_finite())
        .map_or_else(
            || "-".to_owned(),
            |s| format!("{:.digits$}..{:.digits$}", s.min, s.max),
        )
}

fn opt(v: Option<f64>, digits: usize) -> String {
    v.filter(|x| x.is_finite())
        .map_or_else(|| "-".to_owned(), |x| format!("{x:.digits$}"))
}

/// Renders the summary, the targets and the skipped systems as plain text.
pub fn render(r: &Report) -> String {
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
        "{:<18} {:<20} {:>6} {:>10} {:>19} {:<14} {:>7} {:>9} {:>15} {:>9} {:>8}  detail",
        "scenario",
        "system",
        "rounds",
        "figure",
        "min..max",
        "unit",
        "relay",
        "per-core",
        "min..max",
        "vs-direct",
        "ach/off"
    );
    let mut last = String::new();
    for row in &r.summary {
        if row.scenario != last && !last.is_empty() {
            out.push('\n');
        }
        last.clone_from(&row.scenario);
        let _ = writeln!(
            out,
            "{:<18} {:<20} {:>6} {:>10} {:>19} {:<14} {:>7} {:>9} {:>15} {:>9} {:>8}  {}",
            row.scenario,
            row.system,
            row.rounds,
            opt(Some(row.figure), 2),
            range(row.spread, 2),
            row.unit,
            opt(row.relay_cores, 2),
            opt(row.per_relay_core, 1),
            range(row.per_core_spread, 1),
            opt(row.vs_direct, 2),
            opt(row.achieved_vs_offered, 2),
            row.detail
        );
    }
    if !r.targets.is_empty() {
        let _ = writeln!(
            out,
            "\ntargets of issues 7 and 14 (median of per-round values, min..max over rounds):"
        );
        for t in &r.targets {
            let _ = writeln!(
                out,
                "  {:<12} {:<62} {:>9.2} {:>19} (goal {})",
                t.verdict.as_str(),
                t.name,
                t.value,
                range(t.spread, 2),
                t.goal
            );
            if let Some(why) = &t.reason {
                let _ = writeln!(out, "               {why}");
            }
        }
    }
    for s in &r.skipped {
        let _ = writeln!(out, "skipped {}: {}", s.system.as_str(), s.reason);
    }
    for run in &r.runs {
        if let crate::report::Figures::Failed { error } = &run.figures {
            let _ = writeln!(
                out,
                "FAILED {} {} round {}: {error}",
                run.scenario,
                run.system.as_str(),
                run.round
            );
        }
    }
    let _ = writeln!(
        out,
        "figure: median over rounds, min..max beside it. vs-direct: relayed/direct (latency: p99 µs added). \
         relay/per-core: cores of relay CPU and the figure per core (median and range over rounds). \
         ach/off: achieved/offered concurrency (latency: rate; idle: pairs held/asked). \
         UNMEASURABLE: the rounds or the baseline vary more than the effect."
    );
    out
}
