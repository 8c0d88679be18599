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
        }

        /// A point-in-time copy of [`CoreStats`].
        #[derive(Clone, Debug, Default, PartialEq, Eq)]
        pub struct CoreStatsSnapshot {
            $($(#[$doc])* pub $name: u64,)*
            /// The driver the core runs on, once started.
            pub driver: Option<DriverInUse>,
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
                }
            }
        }
    };
}

counters! {
    /// Connections accepted on this core's listeners.
    accepted,
    /// Connections refused at accept (connection limit or limited source IP).
    refused_at_accept,
    /// Of `refused_at_accept`: refused because their source IP was over the bad-token limit.
    limited_refusals,
    /// Source IPs the bad-token limiter tracks now (gauge; bounded by `bad_token_table`).
    limited_sources,
    /// Sockets received from other cores.
    handoffs_in,
    /// Sockets sent to other cores.
    handoffs_out,
    /// Handoffs dropped because the target mailbox was full.
    handoffs_dropped,
    /// Pairs completed.
    paired,
    /// Pairs currently relaying.
    live_pairs,
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
    /// Pair events dropped because the event channel was full.
    events_dropped,
    /// Accept errors (EMFILE and others) survived.
    accept_errors,
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
