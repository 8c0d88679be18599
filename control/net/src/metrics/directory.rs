//! What an operator's `api` directory client counts: refreshes by outcome and their latency, and
//! the size of the verified directory it serves from.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// Outcome of one refresh: `ok` or `failed` (two values).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RefreshOutcome {
    /// `ok` or `failed`.
    pub outcome: &'static str,
}

/// Why served records were refused: a [`tandem_directory::RemoteError`] kind (`not_a_root`, `outdated`,
/// `duplicate`, `unlinked`, `rejected`, `full`, `shadowed_tip`, `integrate`; a fixed set).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RefusalReason {
    /// The error kind.
    pub reason: &'static str,
}

/// The directory client's metrics (cheap to clone: every field shares its value).
#[derive(Clone, Debug)]
pub struct DirectoryMetrics {
    /// Refreshes by outcome.
    pub refreshes: Family<RefreshOutcome, Counter>,
    /// Refreshes whose served records were refused (the sd served a chain that breaks the rules; also counted
    /// as `failed` refreshes), by reason.
    pub refusals: Family<RefusalReason, Counter>,
    /// Time of one refresh (the `getRecords` call and verifying what it returned), seconds.
    pub refresh_seconds: Histogram,
    /// Records in the verified local chain.
    pub records: Gauge,
    /// Operators (entries) in the directory.
    pub entries: Gauge,
    /// Seconds since the UNIX epoch of the last successful refresh (0 before the first).
    pub last_success: Gauge,
}

impl Default for DirectoryMetrics {
    fn default() -> Self {
        Self {
            refreshes: Family::default(),
            refusals: Family::default(),
            // 1 ms .. ~4.4 min
            refresh_seconds: Histogram::new(exponential_buckets(0.001, 4.0, 10)),
            records: Gauge::default(),
            entries: Gauge::default(),
            last_success: Gauge::default(),
        }
    }
}

impl DirectoryMetrics {
    /// Counts one refresh that took `seconds`.
    pub fn refreshed(&self, ok: bool, seconds: f64) {
        let outcome = if ok { "ok" } else { "failed" };
        self.refreshes
            .get_or_create(&RefreshOutcome { outcome })
            .inc();
        self.refresh_seconds.observe(seconds);
        if ok {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
            self.last_success.set(now);
        }
    }

    /// Counts one refresh whose served records were refused for `reason`.
    pub fn refused(&self, reason: &'static str) {
        self.refusals.get_or_create(&RefusalReason { reason }).inc();
    }

    /// The refusals counted for `reason` so far.
    pub fn refusals_for(&self, reason: &'static str) -> u64 {
        self.refusals.get_or_create(&RefusalReason { reason }).get()
    }

    /// Registers the metrics as `directory_*` in `registry`.
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "directory_refreshes",
            "Directory refreshes by outcome",
            self.refreshes.clone(),
        );
        registry.register(
            "directory_refusals",
            "Refreshes whose served records were refused (a chain that breaks the rules), by reason",
            self.refusals.clone(),
        );
        registry.register(
            "directory_refresh_seconds",
            "Time of one directory refresh",
            self.refresh_seconds.clone(),
        );
        registry.register(
            "directory_records",
            "Records in the verified local chain",
            self.records.clone(),
        );
        registry.register(
            "directory_entries",
            "Operators in the directory",
            self.entries.clone(),
        );
        registry.register(
            "directory_last_success_timestamp_seconds",
            "When the directory was last refreshed successfully (UNIX seconds)",
            self.last_success.clone(),
        );
    }
}
