//! `tandem-bench ratelimit`: a bandwidth-limited pair measured at several rates (achieved /
//! configured, target within 5 %), and in the same run the unlimited throughput of the same
//! flood with limits compiled in but off, and with a limit that never binds (the throttle's own
//! cost). Each row is its own in-process engine (one worker, no idle timeout) and one pair: a
//! writer thread floods side A with zeros, this thread reads side B.
//!
//! The achieved rate is measured arrival to arrival: from the first read completed after the
//! warm-up (the bucket's initial burst is gone by then) to the last read completed in the window,
//! bytes between over time between. A limited pair delivers in chunks of half its burst, so a
//! fixed window's edges would cut a chunk; two arrivals do not.

mod flood;

use std::fmt::Write as _;
use std::num::NonZeroU64;
use std::time::Duration;

use serde::Serialize;
use tandem_engine::{BandwidthLimits, ByteRate, Driver};
use tandem_proxy::settings::{DEFAULT_BURST_DIVISOR, MIN_DEFAULT_BURST};

use crate::cli::Cli;

/// The bound: a limited pair's rate within 5 % of its setting.
pub const TOLERANCE: f64 = 0.05;
/// Rates measured by default, Mbit/s (the range: 1 Mbit/s to 5 Gbit/s).
pub const DEFAULT_RATES_MBIT: [f64; 5] = [1.0, 10.0, 100.0, 1000.0, 5000.0];
/// A limit that never binds on loopback (10¹² B/s = 8 Tbit/s): the throttle runs, never parks.
const NEVER_BINDING: u64 = 1_000_000_000_000;

/// What to run.
#[derive(Clone, Debug, Serialize)]
pub struct RateLimitSettings {
    /// Limited rates, Mbit/s.
    pub rates_mbit: Vec<f64>,
    /// Discarded start of each row (the initial burst drains).
    pub warmup: Duration,
    /// Measured part of each row (a 1 Mbit/s row gets at least 8 of its half-burst chunks).
    pub window: Duration,
    /// Drivers (`uring`, `epoll`).
    pub drivers: Vec<&'static str>,
}

impl RateLimitSettings {
    /// From the shared flags: `--quick` measures 1, 100 and 1000 Mbit/s on io_uring only;
    /// `--rates-mbit` and `--drivers` pick the rows.
    pub fn from_cli(cli: &Cli) -> Self {
        let quick = cli.common.quick;
        let mut s = Self {
            rates_mbit: if quick {
                vec![1.0, 100.0, 1000.0]
            } else {
                DEFAULT_RATES_MBIT.to_vec()
            },
            warmup: Duration::from_millis(if quick { 300 } else { 500 }),
            window: Duration::from_secs(if quick { 2 } else { 4 }),
            drivers: if quick {
                vec!["uring"]
            } else {
                vec!["uring", "epoll"]
            },
        };
        if let Some(rates) = &cli.ratelimit.rates_mbit {
            s.rates_mbit.clone_from(rates);
        }
        if let Some(drivers) = &cli.ratelimit.drivers {
            s.drivers = drivers
                .iter()
                .map(|d| if d == "epoll" { "epoll" } else { "uring" })
                .collect();
        }
        s
    }
}

/// One row.
#[derive(Clone, Debug, Serialize)]
pub struct Row {
    /// `uring` or `epoll`.
    pub driver: &'static str,
    /// `limited`, `unlimited-off` or `unlimited-never-binding`.
    pub case: &'static str,
    /// Configured rate, bytes per second (limited rows).
    pub configured: Option<u64>,
    /// Bucket size, bytes (limited rows).
    pub burst: Option<u64>,
    /// Achieved rate, bytes per second.
    pub achieved: f64,
    /// achieved / configured (limited rows).
    pub ratio: Option<f64>,
    /// Within [`TOLERANCE`]; `None` when unlimited or when the unlimited flood of the same
    /// driver is slower than the setting (the link, not the limit, decides).
    pub within: Option<bool>,
    /// Why a row has no figure.
    pub error: Option<String>,
}

/// The whole run (schema `tandem-bench-ratelimit/1`).
#[derive(Clone, Debug, Serialize)]
pub struct RateLimitReport {
    /// Report format.
    pub schema: &'static str,
    /// What ran.
    pub settings: RateLimitSettings,
    /// Rows in run order.
    pub rows: Vec<Row>,
}

/// The bucket the proxy's settings give a rate by default: 20 ms of it, at least 64 KiB.
pub fn default_burst(per_second: u64) -> u64 {
    (per_second / DEFAULT_BURST_DIVISOR).max(MIN_DEFAULT_BURST)
}

fn limits(per_second: u64) -> BandwidthLimits {
    let nz = |v: u64| NonZeroU64::new(v).unwrap_or(NonZeroU64::MIN);
    BandwidthLimits {
        pair: Some(ByteRate {
            per_second: nz(per_second),
            burst: nz(default_burst(per_second)),
        }),
        operator: None,
    }
}

fn row(
    driver: &'static str,
    case: &'static str,
    configured: Option<u64>,
    r: anyhow::Result<f64>,
) -> Row {
    let (achieved, error) = match r {
        Ok(a) => (a, None),
        Err(e) => (0.0, Some(format!("{e:#}"))),
    };
    let ratio = configured
        .filter(|_| error.is_none())
        .map(|c| achieved / c as f64);
    Row {
        driver,
        case,
        configured,
        burst: configured.map(default_burst),
        achieved,
        ratio,
        within: ratio.map(|r| (r - 1.0).abs() <= TOLERANCE),
        error,
    }
}

/// Runs every row: per driver, the two unlimited cases first, then each rate.
pub fn run(s: &RateLimitSettings) -> RateLimitReport {
    let mut rows = Vec::new();
    for &driver_name in &s.drivers {
        let driver = if driver_name == "epoll" {
            Driver::Legacy
        } else {
            Driver::IoUring
        };
        let m = |l| flood::measure(driver, l, s.warmup, s.window);
        let off = m(BandwidthLimits::UNLIMITED);
        let ceiling = off.as_ref().ok().copied();
        rows.push(row(driver_name, "unlimited-off", None, off));
        let high = m(limits(NEVER_BINDING));
        rows.push(row(driver_name, "unlimited-never-binding", None, high));
        for &mbit in &s.rates_mbit {
            let per_second = (mbit * 1e6 / 8.0) as u64;
            let mut r = row(
                driver_name,
                "limited",
                Some(per_second),
                m(limits(per_second)),
            );
            // A setting above what the machine moves unlimited is not the limit's to hold.
            if ceiling.is_some_and(|c| c < per_second as f64 * (1.0 - TOLERANCE)) {
                r.within = None;
            }
            rows.push(r);
        }
    }
    RateLimitReport {
        schema: "tandem-bench-ratelimit/1",
        settings: s.clone(),
        rows,
    }
}

fn human(bytes_per_second: f64) -> String {
    let bits = bytes_per_second * 8.0;
    if bits >= 1e9 {
        format!("{:.3} Gbit/s", bits / 1e9)
    } else {
        format!("{:.3} Mbit/s", bits / 1e6)
    }
}

/// The table.
pub fn render(r: &RateLimitReport) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<6} {:<24} {:>16} {:>10} {:>16} {:>9}  verdict",
        "driver", "case", "configured", "burst", "achieved", "ratio"
    );
    for row in &r.rows {
        let configured = row.configured.map_or("-".into(), |c| human(c as f64));
        let burst = row
            .burst
            .map_or("-".into(), |b| format!("{} KiB", b / 1024));
        let ratio = row.ratio.map_or("-".into(), |x| format!("{x:.4}"));
        let verdict = match (&row.error, row.within, row.configured) {
            (Some(e), _, _) => format!("error: {e}"),
            (None, Some(true), _) => "within 5 %".into(),
            (None, Some(false), _) => "OUTSIDE 5 %".into(),
            (None, None, Some(_)) => "link-bound (unlimited is slower)".into(),
            (None, None, None) => String::new(),
        };
        let _ = writeln!(
            out,
            "{:<6} {:<24} {:>16} {:>10} {:>16} {:>9}  {verdict}",
            row.driver,
            row.case,
            configured,
            burst,
            human(row.achieved),
            ratio
        );
    }
    out
}
