//! The table printed at the end of a run.

use std::fmt::Write;

use crate::report::Report;

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
        "{:<18} {:<20} {:>6} {:>12} {:<14} {:>7} {:>10} {:>9} {:>8}  detail",
        "scenario",
        "system",
        "rounds",
        "figure",
        "unit",
        "relay",
        "per-core",
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
            "{:<18} {:<20} {:>6} {:>12} {:<14} {:>7} {:>10} {:>9} {:>8}  {}",
            row.scenario,
            row.system,
            row.rounds,
            opt(Some(row.figure), 2),
            row.unit,
            opt(row.relay_cores, 2),
            opt(row.per_relay_core, 1),
            opt(row.vs_direct, 2),
            opt(row.achieved_vs_offered, 2),
            row.detail
        );
    }
    if !r.targets.is_empty() {
        let _ = writeln!(out, "\nissue 7 targets (medians of this run):");
        for t in &r.targets {
            let mark = if t.met { "MET   " } else { "MISSED" };
            let _ = writeln!(
                out,
                "  {mark} {:<70} {:>10.2} (goal {})",
                t.name, t.value, t.goal
            );
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
        "vs-direct: relayed/direct (latency: p99 µs added). relay/per-core: cores of relay CPU and the figure per core. \
         ach/off: achieved/offered concurrency (latency: rate; idle: pairs held/asked)."
    );
    out
}
