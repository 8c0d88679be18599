//! The issue 13 targets of a `broker` run: ratios within each interleaved round judged by the
//! harness's verdict, or, without rounds, from the sweep's single phases; the cold calls and the
//! errors from the sweep.

use super::report::PhaseRow;
use super::rounds::RATE_CALLERS;
use super::{LoadFigures, Row};
use crate::report::TargetCheck;
use crate::verdict::{Goal, MIN_ROUNDS, Verdict, judge};

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

/// The figure of `row` in round `n` (HTTP/1.1, or the tonic floor's gRPC).
fn in_round(rounds: &[PhaseRow], n: usize, row: Row, callers: usize) -> Option<&LoadFigures> {
    rounds
        .iter()
        .find(|r| r.round == Some(n) && r.row == row && r.figures.callers == callers)
        .map(|r| &r.figures)
}

/// A goal judged over the rounds' per-round values.
fn judged(name: &str, values: Vec<f64>, goal: Goal) -> TargetCheck {
    let j = judge(&values, goal, None, MIN_ROUNDS);
    TargetCheck {
        name: name.into(),
        value: j.spread.map_or(f64::NAN, |s| s.median),
        spread: j.spread,
        goal: goal.text(),
        verdict: j.verdict,
        reason: j.reason,
    }
}

/// The ratio targets over the interleaved rounds: each ratio within its round.
fn round_targets(rounds: &[PhaseRow]) -> Vec<TargetCheck> {
    let n = rounds
        .iter()
        .filter_map(|r| r.round)
        .max()
        .map_or(0, |m| m + 1);
    let per_round = |f: &dyn Fn(usize) -> Option<f64>| -> Vec<f64> {
        (0..n).filter_map(f).filter(|v| v.is_finite()).collect()
    };
    let p50 = |r: usize, row: Row| in_round(rounds, r, row, 1).map(|f| f.latency.p50_us);
    let rate = |r: usize, row: Row| in_round(rounds, r, row, RATE_CALLERS).map(|f| f.calls_per_sec);
    vec![
        judged(
            "direct, 1 caller: p50 / (tonic p50 + axum p50)",
            per_round(&|r| {
                let floors = p50(r, Row::FloorTonic)? + p50(r, Row::FloorAxum)?;
                Some(p50(r, Row::Direct)? / floors)
            }),
            Goal::AtMost(2.0),
        ),
        judged(
            "proxied warm, 1 caller: p50 / direct p50",
            per_round(&|r| Some(p50(r, Row::ProxiedWarm)? / p50(r, Row::Direct)?)),
            Goal::AtMost(1.2),
        ),
        judged(
            "proxied warm, 64 callers: calls/s / direct calls/s",
            per_round(&|r| Some(rate(r, Row::ProxiedWarm)? / rate(r, Row::Direct)?)),
            Goal::AtLeast(0.9),
        ),
        judged(
            "direct, 64 callers: calls/s",
            per_round(&|r| rate(r, Row::Direct)),
            Goal::AtLeast(10_000.0),
        ),
    ]
}

/// The targets: the ratios over the interleaved rounds when the run made them, else
/// from the sweep's HTTP/1.1 rows (the floors: the tonic call and the HTTP/1.1 axum POST at one
/// caller); the cold calls and the errors from the sweep (and the rounds).
pub fn check_targets(rows: &[PhaseRow], rounds: &[PhaseRow]) -> Vec<TargetCheck> {
    if rounds.is_empty() {
        return sweep_targets(rows);
    }
    let mut out = round_targets(rounds);
    out.extend(
        sweep_targets(rows)
            .into_iter()
            .filter(|t| t.name.starts_with("proxied cold")),
    );
    out.push(errors_check(rows.iter().chain(rounds)));
    out
}

/// Errors over every Tandem phase up to 256 callers.
fn errors_check<'a>(rows: impl Iterator<Item = &'a PhaseRow>) -> TargetCheck {
    let errors: u64 = rows
        .filter(|r| !matches!(r.row, Row::FloorAxum | Row::FloorTonic) && r.figures.callers <= 256)
        .map(|r| r.figures.errors)
        .sum();
    check(
        "errors, every Tandem phase up to 256 callers",
        errors as f64,
        "= 0",
        errors == 0,
    )
}

/// The targets from the sweep's single phases (a run without rounds: `--rounds 0`).
fn sweep_targets(rows: &[PhaseRow]) -> Vec<TargetCheck> {
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
    if rows
        .iter()
        .any(|r| !matches!(r.row, Row::FloorAxum | Row::FloorTonic))
    {
        out.push(errors_check(rows.iter()));
    }
    out
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

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
            round: None,
        }
    }

    /// One interleaved round: direct and proxied at 1 and 64 callers, the two floors.
    fn round(
        n: usize,
        direct_p50: f64,
        warm_p50: f64,
        direct_rate: f64,
        warm_rate: f64,
    ) -> Vec<PhaseRow> {
        let mut rows = vec![
            row(Row::Direct, "h1", 1, direct_p50, 3000.0, 0),
            row(Row::ProxiedWarm, "h1", 1, warm_p50, 2500.0, 0),
            row(Row::FloorTonic, "grpc", 1, 200.0, 9000.0, 0),
            row(Row::FloorAxum, "h1", 1, 100.0, 9000.0, 0),
            row(Row::Direct, "h1", 64, 6000.0, direct_rate, 0),
            row(Row::ProxiedWarm, "h1", 64, 7000.0, warm_rate, 0),
        ];
        for r in &mut rows {
            r.round = Some(n);
        }
        rows
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
        let t = check_targets(&rows, &[]);
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
        let t = check_targets(&bad, &[]);
        assert!(
            !t.iter()
                .find(|c| c.name.starts_with("errors"))
                .unwrap()
                .met()
        );
    }

    #[test]
    fn rounds_judge_each_ratio_within_its_round_and_call_noise_unmeasurable() {
        let sweep = vec![row(Row::ProxiedCold, "h1", 1, 6000.0, 0.0, 0)];
        // Rounds that agree: proxied 1.10..1.15x direct (met), 64 callers 0.80..0.85 (missed).
        let mut rounds = round(0, 300.0, 330.0, 11_000.0, 8_000.0);
        rounds.extend(round(1, 280.0, 322.0, 11_200.0, 9_350.0));
        rounds.extend(round(2, 290.0, 325.0, 11_100.0, 8_600.0));
        let t = check_targets(&sweep, &rounds);
        let by = |name: &str| t.iter().find(|c| c.name.starts_with(name)).unwrap().clone();
        let warm = by("proxied warm, 1 caller");
        assert_eq!(warm.verdict, Verdict::Met, "{warm:?}");
        assert_eq!(warm.spread.unwrap().n, 3);
        assert!((warm.spread.unwrap().max - 1.15).abs() < 1e-9, "{warm:?}");
        assert_eq!(by("proxied warm, 64").verdict, Verdict::Missed);
        assert_eq!(by("direct, 64").verdict, Verdict::Met);
        assert_eq!(by("direct, 1 caller").verdict, Verdict::Met);
        assert_eq!(by("proxied cold").verdict, Verdict::Met, "from the sweep");
        assert_eq!(by("errors").verdict, Verdict::Met);
        // Rounds that disagree by more than the effect: 1.0x in one round, 1.5x in another.
        let mut noisy = round(0, 300.0, 300.0, 10_000.0, 9_500.0);
        noisy.extend(round(1, 300.0, 450.0, 10_000.0, 9_400.0));
        let t = check_targets(&sweep, &noisy);
        let warm = t
            .iter()
            .find(|c| c.name.starts_with("proxied warm, 1"))
            .unwrap();
        assert_eq!(warm.verdict, Verdict::Unmeasurable, "{warm:?}");
        assert!(warm.reason.as_deref().unwrap().contains("rounds disagree"));
        // One round is never enough to call a goal met.
        let t = check_targets(&sweep, &round(0, 300.0, 310.0, 12_000.0, 11_900.0));
        assert!(
            t.iter()
                .filter(|c| !c.name.starts_with("proxied cold") && !c.name.starts_with("errors"))
                .all(|c| c.verdict == Verdict::Unmeasurable),
            "{t:?}"
        );
        // An error in a round counts.
        let mut failing = rounds.clone();
        failing[0].figures.errors = 2;
        let t = check_targets(&sweep, &failing);
        assert_eq!(
            t.iter()
                .find(|c| c.name.starts_with("errors"))
                .unwrap()
                .verdict,
            Verdict::Missed
        );
    }
}
