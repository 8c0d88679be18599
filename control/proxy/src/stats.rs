//! The public proxy's own counters (the engine keeps its per-core ones): read without locks.

use std::sync::atomic::{AtomicU64, Ordering};

use tandem_engine::CoreStatsSnapshot;

macro_rules! counters {
    ($(#[$sdoc:meta])* $live:ident, $snap:ident; $($(#[$doc:meta])* $name:ident),* $(,)?) => {
        $(#[$sdoc])*
        #[derive(Debug, Default)]
        pub struct $live {
            $($(#[$doc])* pub $name: AtomicU64,)*
        }

        /// A point-in-time copy of the live counters.
        #[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
        pub struct $snap {
            $($(#[$doc])* pub $name: u64,)*
        }

        impl $live {
            /// Reads every counter.
            pub fn snapshot(&self) -> $snap {
                $snap { $($name: self.$name.load(Ordering::Relaxed),)* }
            }
        }
    };
}

counters! {
    /// Live counters of the public proxy.
    ProxyCounters, ProxyCountersSnapshot;
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
    /// Announced domains refused (not allowed, taken, over quota, full).
    announcements_refused,
    /// Refused because another operator's live announcement holds the domain (a change or
    /// withdrawal of someone else's domain: a hijack attempt).
    announcements_taken,
    /// Refused because the operator holds its quota of domains.
    announcements_over_quota,
    /// Announcements withdrawn by their owner (a past `expires_at`).
    announcements_withdrawn,
    /// Renewals applied in memory with their write deferred (bounded write rate).
    announcements_deferred,
    /// Expired announcements pruned.
    announcements_pruned,
    /// Compactions of the announcement store.
    announcement_compactions,
    /// Binary upgrades that handed everything to the new process (SIGUSR2).
    upgrades_completed,
    /// Binary upgrades that failed: the new process was killed and this one took everything
    /// back (the log line says why).
    upgrades_rolled_back,
}

counters! {
    /// Live counters of the private proxy's announcements.
    PrivateCounters, PrivateCountersSnapshot;
    /// `announceConnection` calls accepted.
    announcements_accepted,
    /// `announceConnection` calls refused by the table (not allowed, taken, over quota, full).
    announcements_refused,
    /// Refused because another tenant's live announcement holds the domain (a hijack attempt).
    announcements_taken,
    /// Refused because the tenant holds its quota of domains.
    announcements_over_quota,
    /// Announcements withdrawn by their owner.
    announcements_withdrawn,
    /// Renewals applied in memory with their write deferred.
    announcements_deferred,
    /// Expired announcements pruned.
    announcements_pruned,
    /// Compactions of the announcement store.
    announcement_compactions,
}

impl PrivateCounters {
    /// Adds 1.
    pub fn inc(c: &AtomicU64) {
        c.fetch_add(1, Ordering::Relaxed);
    }
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
