//! Counters of the ControlService (exported through `Stats` and [`ServiceCounters`]).

use std::sync::atomic::{AtomicU64, Ordering};

use tracing::debug;

/// The service's own counters, updated with relaxed atomics.
#[derive(Debug, Default)]
pub(crate) struct Metrics {
    pub(crate) pairs_created: AtomicU64,
    pub(crate) create_failures: AtomicU64,
    pub(crate) denied_calls: AtomicU64,
    pub(crate) handshake_failures: AtomicU64,
}

/// A snapshot of the service's counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ServiceCounters {
    /// Pairs created through `CreatePair`.
    pub pairs_created: u64,
    /// `CreatePair` calls the engine refused (draining, busy).
    pub create_failures: u64,
    /// Calls refused because the caller is not an admin.
    pub denied_calls: u64,
    /// Connections whose TLS handshake failed or timed out (foreign CA, no certificate, ...).
    pub handshake_failures: u64,
}

impl Metrics {
    pub(crate) fn inc(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a failed handshake (a peer-caused event: logged at debug).
    pub(crate) fn handshake_failed(&self, reason: &str) {
        Self::inc(&self.handshake_failures);
        debug!(%reason, "control connection refused");
    }

    pub(crate) fn snapshot(&self) -> ServiceCounters {
        ServiceCounters {
            pairs_created: self.pairs_created.load(Ordering::Relaxed),
            create_failures: self.create_failures.load(Ordering::Relaxed),
            denied_calls: self.denied_calls.load(Ordering::Relaxed),
            handshake_failures: self.handshake_failures.load(Ordering::Relaxed),
        }
    }
}
