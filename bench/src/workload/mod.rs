//! The four workloads. Each takes a running [`Target`] and settings, and returns a figure set
//! that serialises into the report.

pub mod broker;
pub mod idle;
pub mod latency;
pub mod ratelimit;
pub mod setup_rate;
pub mod throughput;

use std::time::Duration;

use serde::{Deserialize, Serialize};

pub use idle::{IdleResult, IdleSettings};
pub use latency::{LatencyResult, LatencySettings};
pub use setup_rate::{PairCreation, SetupResult, SetupSettings};
pub use throughput::{ThroughputResult, ThroughputSettings};

/// Relay CPU spent during a run, and what it means per unit of work.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct RelayCpu {
    /// CPU seconds (user + system) the relay used during the run.
    pub cpu_seconds: f64,
    /// Cores' worth of CPU the relay used on average (cpu_seconds / wall seconds).
    pub cores: f64,
}

impl RelayCpu {
    /// From CPU readings before and after a run of `wall`.
    pub fn between(
        before: Option<Duration>,
        after: Option<Duration>,
        wall: Duration,
    ) -> Option<Self> {
        let cpu = after?.saturating_sub(before?).as_secs_f64();
        let wall = wall.as_secs_f64();
        Some(RelayCpu {
            cpu_seconds: cpu,
            cores: if wall > 0.0 { cpu / wall } else { 0.0 },
        })
    }
}

/// Gbit/s for `bytes` in `wall`.
pub fn gbit_per_s(bytes: u64, wall: Duration) -> f64 {
    let s = wall.as_secs_f64();
    if s > 0.0 {
        bytes as f64 * 8.0 / s / 1e9
    } else {
        0.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_and_rates() {
        let c = RelayCpu::between(
            Some(Duration::from_secs(1)),
            Some(Duration::from_secs(2)),
            Duration::from_secs(4),
        )
        .unwrap();
        assert_eq!(c.cpu_seconds, 1.0);
        assert_eq!(c.cores, 0.25);
        assert!(RelayCpu::between(None, None, Duration::from_secs(1)).is_none());
        assert_eq!(gbit_per_s(1_000_000_000, Duration::from_secs(8)), 1.0);
        assert_eq!(gbit_per_s(1, Duration::ZERO), 0.0);
    }
}
