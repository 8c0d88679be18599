//! Statistics: latency percentiles (hdrhistogram), medians over rounds, and achieved vs
//! offered concurrency.

use std::time::Duration;

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

/// Largest latency a histogram records, in nanoseconds (60 s: anything slower is a stall that
/// the run's own deadline reports; values above are clamped, not dropped).
const MAX_LATENCY_NS: u64 = 60_000_000_000;

/// A latency recorder with 3 significant digits from 1 ns to [`MAX_LATENCY_NS`].
pub struct Latencies {
    hist: Histogram<u64>,
}

impl Default for Latencies {
    fn default() -> Self {
        Self::new()
    }
}

impl Latencies {
    /// An empty recorder.
    pub fn new() -> Self {
        Latencies {
            hist: Histogram::new_with_bounds(1, MAX_LATENCY_NS, 3)
                .expect("constant bounds 1..60e9 with 3 digits are valid"),
        }
    }

    /// Records one sample (clamped to the histogram's range).
    pub fn record(&mut self, d: Duration) {
        let ns = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        self.hist.saturating_record(ns.clamp(1, MAX_LATENCY_NS));
    }

    /// Samples recorded.
    pub fn len(&self) -> u64 {
        self.hist.len()
    }

    /// True when nothing was recorded.
    pub fn is_empty(&self) -> bool {
        self.hist.is_empty()
    }

    /// Adds another recorder's samples.
    pub fn merge(&mut self, other: &Latencies) {
        // Same bounds on both sides, so `add` cannot fail.
        let _ = self.hist.add(&other.hist);
    }

    /// The percentiles this harness reports, in microseconds.
    pub fn summary(&self) -> LatencySummary {
        let us = |ns: u64| ns as f64 / 1000.0;
        LatencySummary {
            count: self.hist.len(),
            p50_us: us(self.hist.value_at_quantile(0.50)),
            p99_us: us(self.hist.value_at_quantile(0.99)),
            p999_us: us(self.hist.value_at_quantile(0.999)),
            max_us: us(self.hist.max()),
        }
    }
}

/// Percentiles of one latency run, in microseconds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct LatencySummary {
    /// Samples.
    pub count: u64,
    /// Median.
    pub p50_us: f64,
    /// 99th percentile.
    pub p99_us: f64,
    /// 99.9th percentile.
    pub p999_us: f64,
    /// Largest sample.
    pub max_us: f64,
}

/// The median of `values` (mean of the middle two for an even count); `None` when empty.
pub fn median(values: &[f64]) -> Option<f64> {
    let mut v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    Some(if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    })
}

/// A figure over rounds: its smallest, median and largest value (finite values only).
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Spread {
    /// Smallest value over rounds.
    pub min: f64,
    /// Median over rounds.
    pub median: f64,
    /// Largest value over rounds.
    pub max: f64,
    /// Rounds with a finite value.
    pub n: usize,
}

impl Spread {
    /// The spread of the finite values of `values`; `None` when there is none.
    pub fn of(values: &[f64]) -> Option<Spread> {
        let finite: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
        let median = median(&finite)?;
        Some(Spread {
            min: finite.iter().copied().fold(f64::INFINITY, f64::min),
            median,
            max: finite.iter().copied().fold(f64::NEG_INFINITY, f64::max),
            n: finite.len(),
        })
    }

    /// max − min.
    pub fn width(&self) -> f64 {
        self.max - self.min
    }

    /// max − min over the median (0 for a zero median).
    pub fn relative_width(&self) -> f64 {
        if self.median == 0.0 {
            0.0
        } else {
            self.width() / self.median.abs()
        }
    }
}

/// Achieved vs offered concurrency by Little's law: the time operations were in flight,
/// summed over workers, divided by the wall time of the run. A load generator that falls
/// behind (workers blocked outside an operation, late starts) shows as achieved < offered.
#[derive(Clone, Copy, Debug, Default)]
pub struct Concurrency {
    busy: Duration,
    ops: u64,
}

impl Concurrency {
    /// Accounts one operation that was in flight for `d`.
    pub fn add(&mut self, d: Duration) {
        self.busy += d;
        self.ops += 1;
    }

    /// Adds another worker's account.
    pub fn merge(&mut self, other: &Concurrency) {
        self.busy += other.busy;
        self.ops += other.ops;
    }

    /// Operations accounted.
    pub fn ops(&self) -> u64 {
        self.ops
    }

    /// Mean operations in flight over `wall`.
    pub fn achieved(&self, wall: Duration) -> f64 {
        if wall.is_zero() {
            return 0.0;
        }
        self.busy.as_secs_f64() / wall.as_secs_f64()
    }

    /// The report line for `offered` workers over `wall`.
    pub fn report(&self, offered: usize, wall: Duration) -> ConcurrencyReport {
        let achieved = self.achieved(wall);
        ConcurrencyReport {
            offered: offered as f64,
            achieved,
            ratio: if offered == 0 {
                0.0
            } else {
                achieved / offered as f64
            },
        }
    }
}

/// Achieved vs offered concurrency of one run.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ConcurrencyReport {
    /// Workers (or pairs, or messages per second for the latency run) asked for.
    pub offered: f64,
    /// What the harness actually kept in flight.
    pub achieved: f64,
    /// achieved / offered.
    pub ratio: f64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_of_a_known_distribution() {
        let mut l = Latencies::new();
        for us in 1..=1000u64 {
            l.record(Duration::from_micros(us));
        }
        let s = l.summary();
        assert_eq!(s.count, 1000);
        // hdrhistogram keeps 3 significant digits: within 0.1 %.
        let near = |a: f64, b: f64| (a - b).abs() <= b * 0.001 + 0.001;
        assert!(near(s.p50_us, 500.0), "{s:?}");
        assert!(near(s.p99_us, 990.0), "{s:?}");
        assert!(near(s.p999_us, 999.0), "{s:?}");
        assert!(near(s.max_us, 1000.0), "{s:?}");
    }

    #[test]
    fn out_of_range_samples_are_clamped_not_lost() {
        let mut l = Latencies::new();
        l.record(Duration::ZERO);
        l.record(Duration::from_secs(3600));
        assert_eq!(l.len(), 2);
        assert!(l.summary().max_us >= 59_000_000.0);
    }

    #[test]
    fn merge_adds_samples() {
        let (mut a, mut b) = (Latencies::new(), Latencies::new());
        a.record(Duration::from_micros(10));
        b.record(Duration::from_micros(20));
        a.merge(&b);
        assert_eq!(a.len(), 2);
    }

    #[test]
    fn median_odd_even_and_empty() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), Some(2.5));
        assert_eq!(median(&[]), None);
        assert_eq!(median(&[f64::NAN, 5.0]), Some(5.0));
    }

    #[test]
    fn spread_is_min_median_max_of_finite_values() {
        let s = Spread::of(&[3.0, f64::NAN, 1.0, 2.0]).unwrap();
        assert_eq!((s.min, s.median, s.max, s.n), (1.0, 2.0, 3.0, 3));
        assert_eq!(s.width(), 2.0);
        assert_eq!(s.relative_width(), 1.0);
        assert_eq!(Spread::of(&[f64::NAN]), None);
    }

    #[test]
    fn concurrency_is_busy_time_over_wall_time() {
        let mut c = Concurrency::default();
        // 4 workers each busy 1 s of a 2 s run: 2 in flight on average out of 4 offered.
        for _ in 0..4 {
            c.add(Duration::from_secs(1));
        }
        let r = c.report(4, Duration::from_secs(2));
        assert_eq!(c.ops(), 4);
        assert!((r.achieved - 2.0).abs() < 1e-9);
        assert!((r.ratio - 0.5).abs() < 1e-9);
        assert_eq!(Concurrency::default().achieved(Duration::ZERO), 0.0);
    }
}
