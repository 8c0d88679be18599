//! The public proxy's own counters (the engine keeps its per-core ones): read without locks.

use std::sync::atomic::{AtomicU64, Ordering};

use tandem_engine::CoreStatsSnapshot;

macro_rules! counters {
    ($($(#[$doc:meta])* $name:ident),* $(,)?) => {
        /// Live counters of one proxy.
        #[derive(Debug, Default)]
        pub struct ProxyCounters {
            $($(#[$doc])* pub $name: AtomicU64,)*
        }

        /// A point-in-time copy of [`ProxyCounters`].
        #[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
        pub struct ProxyCountersSnapshot {
            $($(#[$doc])* pub $name: u64,)*
        }

        impl ProxyCounters {
            /// Reads every counter.
            pub fn snapshot(&self) -> ProxyCountersSnapshot {
                ProxyCountersSnapshot { $($name: self.$name.load(Ordering::Relaxed),)* }
            }
        }
    };
}

counters! {
    /// `requestConnection` calls received.
    pairs_requested,
    /// Pairs handed out (both tokens delivered).
    pairs_issued,
    /// Pairs cancelled because `_connectionRequest` or `incomingConnection` failed.
    pairs_cancelled,
    /// `requestConnection` refused (unknown target, not allowed, bad params, engine refusal).
    requests_refused,
    /// ClientHellos routed to an announcement (pair created, private side notified).
    sni_resolved,
    /// ClientHellos refused (no SNI, no live announcement, engine or queue full).
    sni_refused,
    /// `incomingConnection` calls that failed (their pair was cancelled).
    sni_notify_failed,
    /// Announced domains accepted.
    announcements_accepted,
    /// Announced domains refused (not allowed, taken, full).
    announcements_refused,
    /// Expired announcements pruned.
    announcements_pruned,
}

impl ProxyCounters {
    /// Adds 1.
    pub fn inc(c: &AtomicU64) {
        c.fetch_add(1, Ordering::Relaxed);
    }
}

/// What `PublicProxy::stats` returns: the proxy's counters and the engine's per-core ones.
#[derive(Debug, Clone)]
pub struct PublicProxyStats {
    /// Control-plane counters.
    pub proxy: ProxyCountersSnapshot,
    /// Data-plane counters, one per core.
    pub engine: Vec<CoreStatsSnapshot>,
}

impl PublicProxyStats {
    /// Sum of one engine counter over the cores.
    pub fn engine_total(&self, field: impl Fn(&CoreStatsSnapshot) -> u64) -> u64 {
        self.engine.iter().map(field).sum()
    }
}
