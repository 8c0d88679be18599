//! What the directory server counts: chain size, entries, submissions by outcome, append latency.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// Outcome label of a submission (`ok` or the refusal's kind).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabel {
    /// `ok`, `stale`, `rejected`, `datastore`, ...
    pub outcome: &'static str,
}

/// The directory server's metrics.
#[derive(Clone, Debug)]
pub struct SdMetrics {
    /// Records in the best chain.
    pub chain_records: Gauge,
    /// Entries (operators) in the directory.
    pub entries: Gauge,
    /// Submissions by outcome.
    pub submissions: Family<OutcomeLabel, Counter>,
    /// Time to make a batch durable (file fsync or Redis acknowledgement), seconds.
    pub append_seconds: Histogram,
    /// Times the shared datastore was read whole again: it was rewritten under this sd (a
    /// failover lost its tail), or a periodic full read found it different.
    pub store_reloads: Counter,
    /// Periodic reads of a shared datastore that failed (Redis down or failing over).
    pub refresh_failures: Counter,
}

impl SdMetrics {
    /// Creates and registers the metrics.
    pub fn register(registry: &mut Registry) -> Self {
        let m = Self {
            chain_records: Gauge::default(),
            entries: Gauge::default(),
            submissions: Family::default(),
            // 50 µs .. ~13 s
            append_seconds: Histogram::new(exponential_buckets(0.00005, 4.0, 10)),
            store_reloads: Counter::default(),
            refresh_failures: Counter::default(),
        };
        registry.register(
            "sd_chain_records",
            "Records in the best chain",
            m.chain_records.clone(),
        );
        registry.register(
            "sd_entries",
            "Operators in the directory",
            m.entries.clone(),
        );
        registry.register(
            "sd_submissions",
            "submitRecords calls by outcome",
            m.submissions.clone(),
        );
        registry.register(
            "sd_datastore_append_seconds",
            "Time until a submitted batch is durable",
            m.append_seconds.clone(),
        );
        registry.register(
            "sd_datastore_reloads",
            "Times the shared datastore was read whole again (rewritten, or a full read differed)",
            m.store_reloads.clone(),
        );
        registry.register(
            "sd_datastore_refresh_failures",
            "Periodic reads of a shared datastore that failed",
            m.refresh_failures.clone(),
        );
        m
    }
}
