//! What the pair table speaks in: pair ids, sides, kinds and ports, the refusal reasons, and the
//! outcomes of an arrival, a registration and an expiry. Plain values, no table state.

use std::fmt;
use std::time::Duration;

use crate::token::CoreId;

/// Identifies a pair engine-wide: the owning core and a per-engine sequence number.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct PairId {
    /// The core that owns both sides.
    pub core: CoreId,
    /// Unique per engine.
    pub seq: u64,
}

impl fmt::Display for PairId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.core, self.seq)
    }
}

/// One of the two ends of a pair.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Side {
    /// The requester (or, for SNI pairs, the TLS client).
    A,
    /// The target (dials the pairing port).
    B,
}

/// Where each side is expected to arrive.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PairKind {
    /// Both sides dial the pairing port.
    Direct,
    /// Side A is a TLS client on the TLS port joined by the resolver; side B dials the pairing port.
    Sni,
}

/// The data port a connection came in on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Port {
    /// The pairing ("internal") port.
    Pairing,
    /// The TLS passthrough port.
    Tls,
}

/// Why an arrival was refused; the worker counts each.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Refusal {
    /// Never issued here (or its tombstone is gone).
    Unknown,
    /// Its pair's TTL passed.
    Expired,
    /// It already admitted a connection.
    Reused,
    /// Presented on the port its side does not use.
    WrongSide,
    /// Its pair was cancelled.
    Cancelled,
    /// Too many sides already waiting on this core.
    WaitingFull,
}

impl Refusal {
    /// Stable label for metrics.
    pub fn as_str(&self) -> &'static str {
        match self {
            Refusal::Unknown => "unknown",
            Refusal::Expired => "expired",
            Refusal::Reused => "reused",
            Refusal::WrongSide => "wrong_side",
            Refusal::Cancelled => "cancelled",
            Refusal::WaitingFull => "waiting_full",
        }
    }
}

/// The result of a connection presenting a token. The table owns `C` only while it waits.
#[derive(Debug)]
pub enum Arrival<C> {
    /// First side: the table keeps the connection until its partner or the TTL.
    Waiting(PairId),
    /// Second side: both connections, side A first. The tokens are now spent. `setup` is the
    /// time from registration to this arrival (the pair's setup time).
    Paired {
        id: PairId,
        a: C,
        b: C,
        setup: Duration,
    },
    /// Refused: the caller closes the connection.
    Refused { reason: Refusal, conn: C },
}

/// Registration failed because the table holds `max_pairs` pairs.
#[derive(Debug, PartialEq, Eq)]
pub struct TableFull;

/// A pair whose TTL passed during [`PairTable::tick`], with its waiting side if any.
#[derive(Debug)]
pub struct Expired<C> {
    /// The pair.
    pub id: PairId,
    /// The connection that waited in vain (the caller closes it).
    pub waiting: Option<C>,
}
