//! Per-core counters: written by the core with relaxed atomics, read by anyone without locks.

use std::sync::atomic::{AtomicU64, Ordering};

use crate::config::DriverInUse;
use crate::pair_table::Refusal;

macro_rules! counters {
    ($($(#[$doc:meta])* $name:ident),* $(,)?) => {
        /// Live counters of one core.
        #[derive(Debug, Default)]
        pub struct CoreStats {
            $($(#[$doc])* pub $name: AtomicU64,)*
            /// 0 = starting, 1 = io_uring, 2 = epoll.
            pub driver: AtomicU64,
            /// Time from pair registration until both sides arrived.
            pub pair_setup: SetupHistogram,
        }

        /// A point-in-time copy of [`CoreStats`].
        #[derive(Clone, Debug, Default, PartialEq, Eq)]
        pub struct CoreStatsSnapshot {
            $($(#[$doc])* pub $name: u64,)*
            /// The driver the core runs on, once started.
            pub driver: Option<DriverInUse>,
            /// Pair setup times.
            pub pair_setup: SetupSnapshot,
        }

        impl CoreStats {
            /// Reads every counter (each is individually consistent).
            pub fn snapshot(&self) -> CoreStatsSnapshot {
                CoreStatsSnapshot {
                    $($name: self.$name.load(Ordering::Relaxed),)*
                    driver: match self.driver.load(Ordering::Relaxed) {
                        1 => Some(DriverInUse::IoUring),
                        2 => Some(DriverInUse::Legacy),
                        _ => None,
                    },
                    pair_setup: self.pair_setup.snapshot(),
                }
            }
        }
    };
}

counters! {
    /// Connections accepted on this core's listeners.
    accepted,
    /// Connections refused at accept, for any of the reasons below (closed at once).
    refused_at_accept,
    /// Of `refused_at_accept`: the core's open connections were at `max_conns_per_core`.
    refused_conn_limit,
    /// Of `refused_at_accept`: their source was over the bad-preamble limit.
    limited_refusals,
    /// Of `refused_at_accept`: their source was over an accept rate (`accept_rates`).
    rate_refusals,
    /// Sources the bad-token limiter tracks now (gauge; bounded by `bad_token_table`).
    limited_sources,
    /// Sources the core's accept-rate tables track now, both ports (gauge; bounded by
    /// `2 × accept_rate_table`).
    rate_sources,
    /// Routed ClientHellos refused because their source held its share of
    /// `sni_pairs_per_source` open SNI pairs (closed at once, no pair created).
    sni_source_refusals,
    /// Routed ClientHellos refused because their domain held its share of
    /// `sni_pairs_per_domain` open SNI pairs (closed at once, no pair created).
    sni_domain_refusals,
    /// Open SNI pairs the core's budget counts now (gauge).
    sni_pairs_held,
    /// Sockets received from other cores.
    handoffs_in,
    /// Sockets sent to other cores.
    handoffs_out,
    /// Handoffs dropped because the target mailbox was full.
    handoffs_dropped,
    /// Pairs completed.
    paired,
    /// Pairs currently relaying, parked ones included.
    live_pairs,
    /// Of `live_pairs`: pairs parked now, quiet, without a task (gauge; see `park_after`).
    parked_pairs,
    /// Times a quiet pair was parked.
    parks,
    /// Times a parked pair resumed relaying (a byte, a close or a reset arrived).
    unparks,
    /// Times the core called `EngineConfig::release_memory` after pairs parked.
    memory_releases,
    /// Issued pairs held in the table (waiting or not).
    issued_pairs,
    /// Connections waiting for their partner.
    waiting,
    /// Open connections on this core.
    open_conns,
    /// Bytes relayed from side A to side B.
    bytes_a_to_b,
    /// Bytes relayed from side B to side A.
    bytes_b_to_a,
    /// Pairs closed after both directions ended.
    closed_normal,
    /// Pairs closed by a reset or I/O error.
    closed_reset,
    /// Pairs closed by the idle timeout.
    closed_idle,
    /// Pairs closed by drain/shutdown.
    closed_drain,
    /// Live pairs and waiting sides this core handed to the next process (binary upgrade).
    handed_over,
    /// Live pairs and waiting sides this core adopted (from the previous process, or back
    /// from a failed upgrade).
    adopted,
    /// Connections that did not deliver a token or ClientHello in time.
    preamble_timeouts,
    /// Connections closed or reset by the peer before their token or ClientHello was complete
    /// (short tokens, truncated hellos, connect-and-close probes).
    preamble_aborted,
    /// Waiting sides and issued pairs whose TTL passed.
    expired,
    /// Bad tokens: unknown.
    bad_unknown,
    /// Bad tokens: expired.
    bad_expired,
    /// Bad tokens: reused.
    bad_reused,
    /// Bad tokens: wrong side.
    bad_wrong_side,
    /// Bad tokens: cancelled pair.
    bad_cancelled,
    /// Arrivals refused because the waiting set was full.
    waiting_full,
    /// ClientHellos refused (malformed, too large, no route).
    bad_hellos,
    /// Transfers that leased a pipe (splice path).
    pipe_leases,
    /// Transfers that fell back to the copy path.
    copy_fallbacks,
    /// Pipes currently leased.
    pipes_in_use,
    /// Pipes the kernel made below 64 KiB (the user's pipe budget, `fs.pipe-user-pages-soft`,
    /// was spent): closed; the core's pool stopped growing and those transfers copied.
    pipes_undersized,
    /// Pair events dropped because the event channel was full.
    events_dropped,
    /// Accept errors (EMFILE and others) survived.
    accept_errors,
    /// PROXY headers read from trusted sources (the connection then counts as its client).
    proxy_headers,
    /// Connections from trusted sources closed for a bad, oversized or missing PROXY header
    /// (not held against the trusted source).
    proxy_bad_headers,
    /// Connections from trusted sources that did not deliver their PROXY header in time.
    proxy_header_timeouts,
    /// Connections from untrusted sources that started with a PROXY header (closed, and held
    /// against the source as a bad preamble).
    proxy_untrusted,
}

/// Upper bounds of the pair-setup histogram's buckets, in microseconds (500 µs .. 30 s: local
/// pairs take well under a millisecond; the default pair TTL caps the slowest). One more bucket
/// counts everything above the last bound.
pub const PAIR_SETUP_BOUNDS_US: [u64; 15] = [
    500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000, 1_000_000,
    2_500_000, 5_000_000, 10_000_000, 30_000_000,
];

/// Buckets of the pair-setup histogram: one per bound plus the overflow bucket.
pub const PAIR_SETUP_BUCKETS: usize = PAIR_SETUP_BOUNDS_US.len() + 1;

/// A fixed-bucket histogram of pair setup times, written by its core with relaxed atomics
/// (16 counters and a sum: no allocation, bounded).
#[derive(Debug, Default)]
pub struct SetupHistogram {
    /// Per-bucket (not cumulative) counts; the last is the overflow bucket.
    buckets: [AtomicU64; PAIR_SETUP_BUCKETS],
    /// Sum of the observed times, microseconds.
    sum_us: AtomicU64,
}

/// A copy of a [`SetupHistogram`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SetupSnapshot {
    /// Per-bucket (not cumulative) counts, bounds [`PAIR_SETUP_BOUNDS_US`] then overflow.
    pub buckets: [u64; PAIR_SETUP_BUCKETS],
    /// Sum of the observed times, microseconds.
    pub sum_us: u64,
}

impl SetupSnapshot {
    /// Observations in total.
    pub fn count(&self) -> u64 {
        self.buckets.iter().sum()
    }
}

impl SetupHistogram {
    /// Records one setup time.
    pub fn observe(&self, took: std::time::Duration) {
        let us = u64::try_from(took.as_micros()).unwrap_or(u64::MAX);
        let i = PAIR_SETUP_BOUNDS_US.partition_point(|&bound| bound < us);
        self.buckets[i].fetch_add(1, Ordering::Relaxed);
        self.sum_us.fetch_add(us, Ordering::Relaxed);
    }

    /// Reads the buckets (each individually consistent).
    pub fn snapshot(&self) -> SetupSnapshot {
        SetupSnapshot {
            buckets: std::array::from_fn(|i| self.buckets[i].load(Ordering::Relaxed)),
            sum_us: self.sum_us.load(Ordering::Relaxed),
        }
    }
}

impl CoreStats {
    /// Adds 1 to a counter.
    pub fn inc(c: &AtomicU64) {
        c.fetch_add(1, Ordering::Relaxed);
    }

    /// Subtracts 1 from a gauge.
    pub fn dec(c: &AtomicU64) {
        c.fetch_sub(1, Ordering::Relaxed);
    }

    /// Counts a refusal by reason.
    pub fn refusal(&self, r: Refusal) {
        let c = match r {
            Refusal::Unknown => &self.bad_unknown,
            Refusal::Expired => &self.bad_expired,
            Refusal::Reused => &self.bad_reused,
            Refusal::WrongSide => &self.bad_wrong_side,
            Refusal::Cancelled => &self.bad_cancelled,
            Refusal::WaitingFull => &self.waiting_full,
        };
        Self::inc(c);
    }

    /// Records the driver in use.
    pub fn set_driver(&self, d: DriverInUse) {
        let v = match d {
            DriverInUse::IoUring => 1,
            DriverInUse::Legacy => 2,
        };
        self.driver.store(v, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn setup_times_land_in_their_bucket() {
        let h = SetupHistogram::default();
        h.observe(Duration::from_micros(100));
        h.observe(Duration::from_micros(500));
        h.observe(Duration::from_micros(501));
        h.observe(Duration::from_secs(3600));
        let s = h.snapshot();
        assert_eq!(s.buckets[0], 2, "<= 500 µs, bound inclusive");
        assert_eq!(s.buckets[1], 1);
        assert_eq!(s.buckets[PAIR_SETUP_BUCKETS - 1], 1, "overflow");
        assert_eq!(s.count(), 4);
        assert_eq!(s.sum_us, 100 + 500 + 501 + 3_600_000_000);
    }
}
