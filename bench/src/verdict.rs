//! Whether a goal was met, missed, or could not be told from the noise of this run.
//!
//! Pure: per-round values in, a [`Verdict`] with its reason out. A goal is judged on the median
//! of its per-round values (a ratio or a difference computed within each round, where the
//! systems ran interleaved); it is `Unmeasurable` when
//! - fewer than [`MIN_ROUNDS`] rounds produced the value (no spread to compare the effect with),
//! - the rounds disagree by more than the effect (max − min of the per-round values exceeds the
//!   distance of their median from the goal), or
//! - a baseline the value is measured against moved more over the rounds than the effect (used
//!   for differences of tails, such as p99 added over direct, which do not move together within
//!   a round the way throughputs of interleaved runs do), or the baseline is worse than the
//!   measured system itself (direct's p99 above the relay's: the figure measures the machine).

use serde::{Deserialize, Serialize};

use crate::stats::Spread;

/// Rounds a measured goal needs before it is judged: with one round nothing tells the effect
/// from the run-to-run noise (figures on this machine move 15 % between runs).
pub const MIN_ROUNDS: usize = 2;

/// The outcome of one goal.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Verdict {
    /// The median meets the goal, and the effect is larger than the noise.
    Met,
    /// The median misses the goal, and the effect is larger than the noise.
    Missed,
    /// The noise of this run is as large as the effect; the reason says which noise.
    Unmeasurable,
}

impl Verdict {
    /// The table's label.
    pub fn as_str(&self) -> &'static str {
        match self {
            Verdict::Met => "MET",
            Verdict::Missed => "MISSED",
            Verdict::Unmeasurable => "UNMEASURABLE",
        }
    }
}

/// Which side of the threshold meets the goal.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Goal {
    /// value >= threshold.
    AtLeast(f64),
    /// value <= threshold.
    AtMost(f64),
}

impl Goal {
    /// The threshold.
    pub fn threshold(&self) -> f64 {
        match *self {
            Goal::AtLeast(t) | Goal::AtMost(t) => t,
        }
    }

    /// Whether `v` meets the goal.
    pub fn holds(&self, v: f64) -> bool {
        match *self {
            Goal::AtLeast(t) => v >= t,
            Goal::AtMost(t) => v <= t,
        }
    }

    /// The goal as text (">= 1.5").
    pub fn text(&self) -> String {
        match *self {
            Goal::AtLeast(t) => format!(">= {t}"),
            Goal::AtMost(t) => format!("<= {t}"),
        }
    }
}

/// A baseline's own figure over the rounds, in the unit of the judged value.
#[derive(Clone, Debug, PartialEq)]
pub struct Baseline {
    /// What it is ("direct's p99, µs").
    pub what: String,
    /// Its spread over rounds.
    pub spread: Spread,
    /// The measured system's figure in the same unit (median), when it can be compared: a
    /// baseline worse than the system it is the baseline of makes the goal unmeasurable.
    pub system_median: Option<f64>,
    /// Whether larger is worse for this figure (latency), so "baseline worse" is "baseline larger".
    pub larger_is_worse: bool,
}

/// A judged goal: the verdict and, unless met or missed cleanly, why.
#[derive(Clone, Debug, PartialEq)]
pub struct Judged {
    /// The outcome.
    pub verdict: Verdict,
    /// The per-round values' spread (None when no round produced one).
    pub spread: Option<Spread>,
    /// Why it is unmeasurable.
    pub reason: Option<String>,
}

/// Judges `rounds` (the per-round values of the goal's figure) against `goal`.
/// `min_rounds` is [`MIN_ROUNDS`] for measured figures and 1 for counts that do not vary with
/// load (io-wq threads).
pub fn judge(rounds: &[f64], goal: Goal, baseline: Option<&Baseline>, min_rounds: usize) -> Judged {
    let spread = Spread::of(rounds);
    let unmeasurable = |reason: String| Judged {
        verdict: Verdict::Unmeasurable,
        spread,
        reason: Some(reason),
    };
    let Some(s) = spread.filter(|s| s.n >= min_rounds) else {
        let n = spread.map_or(0, |s| s.n);
        return unmeasurable(format!(
            "{n} round(s) with a figure: no spread to tell the effect from noise (run --rounds 3)"
        ));
    };
    let effect = (s.median - goal.threshold()).abs();
    if s.width() > effect {
        return unmeasurable(format!(
            "rounds disagree by {:.3} ({:.3}..{:.3}), more than the effect {:.3} (median {:.3} vs goal {})",
            s.width(),
            s.min,
            s.max,
            effect,
            s.median,
            goal.text()
        ));
    }
    if let Some(b) = baseline {
        if let Some(sys) = b.system_median {
            let worse = if b.larger_is_worse {
                b.spread.median >= sys
            } else {
                b.spread.median <= sys
            };
            if worse {
                return unmeasurable(format!(
                    "{} {:.1} is worse than the measured system's {:.1}: the baseline is noisier than the effect",
                    b.what, b.spread.median, sys
                ));
            }
        }
        if b.spread.width() > effect {
            return unmeasurable(format!(
                "{} moved by {:.1} over rounds ({:.1}..{:.1}), more than the effect {:.1}",
                b.what,
                b.spread.width(),
                b.spread.min,
                b.spread.max,
                effect
            ));
        }
    }
    Judged {
        verdict: if goal.holds(s.median) {
            Verdict::Met
        } else {
            Verdict::Missed
        },
        spread,
        reason: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn direct(p99s: &[f64], relay: f64) -> Baseline {
        Baseline {
            what: "direct's p99, µs".into(),
            spread: Spread::of(p99s).unwrap(),
            system_median: Some(relay),
            larger_is_worse: true,
        }
    }

    #[test]
    fn clear_effects_are_met_or_missed() {
        let j = judge(&[1.8, 1.9, 2.0], Goal::AtLeast(1.5), None, MIN_ROUNDS);
        assert_eq!(j.verdict, Verdict::Met, "{j:?}");
        assert_eq!(j.reason, None);
        let j = judge(&[0.7, 0.8, 0.75], Goal::AtLeast(1.0), None, MIN_ROUNDS);
        assert_eq!(j.verdict, Verdict::Missed, "{j:?}");
        let j = judge(&[5.0, 6.0], Goal::AtMost(8.0), None, MIN_ROUNDS);
        assert_eq!(j.verdict, Verdict::Met, "{j:?}");
    }

    #[test]
    fn rounds_that_disagree_by_more_than_the_effect_are_unmeasurable() {
        // Median 1.05 meets >= 1.0 by 0.05, but the rounds span 0.3.
        let j = judge(&[0.9, 1.05, 1.2], Goal::AtLeast(1.0), None, MIN_ROUNDS);
        assert_eq!(j.verdict, Verdict::Unmeasurable, "{j:?}");
        assert!(j.reason.unwrap().contains("rounds disagree"));
        // The same spread around a median far from the goal is a clear miss.
        let j = judge(&[0.4, 0.55, 0.7], Goal::AtLeast(1.0), None, MIN_ROUNDS);
        assert_eq!(j.verdict, Verdict::Missed, "{j:?}");
    }

    #[test]
    fn one_round_is_unmeasurable_unless_the_figure_is_a_count() {
        let j = judge(&[2.0], Goal::AtLeast(1.5), None, MIN_ROUNDS);
        assert_eq!(j.verdict, Verdict::Unmeasurable, "{j:?}");
        assert!(j.reason.unwrap().contains("1 round"));
        let j = judge(&[], Goal::AtLeast(1.5), None, MIN_ROUNDS);
        assert_eq!(j.verdict, Verdict::Unmeasurable);
        assert_eq!(j.spread, None);
        let j = judge(&[0.0], Goal::AtMost(2.0), None, 1);
        assert_eq!(j.verdict, Verdict::Met, "{j:?}");
    }

    #[test]
    fn a_baseline_worse_than_the_relay_is_never_a_pass() {
        // Issue 14's run: direct p99 587 µs, relay 413 µs, "added" -173 µs <= 50 looked MET.
        let b = direct(&[560.0, 587.0, 600.0], 413.0);
        let j = judge(
            &[-170.0, -173.0, -180.0],
            Goal::AtMost(50.0),
            Some(&b),
            MIN_ROUNDS,
        );
        assert_eq!(j.verdict, Verdict::Unmeasurable, "{j:?}");
        assert!(j.reason.unwrap().contains("worse than the measured"));
    }

    #[test]
    fn a_baseline_noisier_than_the_effect_is_unmeasurable() {
        // Added 30 µs is 20 µs under the goal, but direct's own p99 moved 100 µs over rounds.
        let b = direct(&[30.0, 60.0, 130.0], 110.0);
        let j = judge(
            &[28.0, 30.0, 32.0],
            Goal::AtMost(50.0),
            Some(&b),
            MIN_ROUNDS,
        );
        assert_eq!(j.verdict, Verdict::Unmeasurable, "{j:?}");
        assert!(j.reason.unwrap().contains("moved by 100.0"));
        // A steady baseline lets the same figure pass.
        let b = direct(&[30.0, 31.0, 33.0], 61.0);
        let j = judge(
            &[28.0, 30.0, 32.0],
            Goal::AtMost(50.0),
            Some(&b),
            MIN_ROUNDS,
        );
        assert_eq!(j.verdict, Verdict::Met, "{j:?}");
    }

    #[test]
    fn non_finite_rounds_are_ignored() {
        let j = judge(&[f64::NAN, 2.0, 2.1], Goal::AtLeast(1.5), None, MIN_ROUNDS);
        assert_eq!(j.verdict, Verdict::Met);
        assert_eq!(j.spread.unwrap().n, 2);
    }
}
