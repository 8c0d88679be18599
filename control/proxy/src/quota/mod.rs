//! Per-operator quotas (`quotas:` settings): live pairs, pairs created per minute, waiting pairs
//! and bytes per day, checked when an operator asks for a pair (`requestConnection`, the
//! ControlService's `CreatePair`) and released by the engine's pair events; plus the bandwidth
//! limits handed to the engine with each pair.
//!
//! - [`QuotaCounter`]: the counting seam. [`MemoryCounter`] counts in this process; [`RedisCounter`] counts
//!   across a fleet on Redis (selected when the announcements' datastore is Redis): admission is async (a round trip), the pair
//!   notifications are fire-and-forget (a remote counter queues them, bounded, to its own task).
//! - [`Quotas`]: what the proxy holds: the settings, the counter, which operator owns each pair
//!   (so that an engine event can release it), and the refusals by quota for `/metrics`.
//! - [`QuotaCarry`]: what a binary upgrade hands the next process (owners of the pairs handed
//!   over, each operator's minute and day counts), versioned in the hand-over's proxy section.
//! - [`QuotaCollector`]: `/metrics`, one series per operator named in `quotas.operators` and one
//!   `other` for the rest (see its docs for why not top-N).

mod carry;
mod counter;
mod memory;
mod metrics;
mod owners;
mod redis;
mod redis_scripts;
mod service;

pub use carry::{
    CARRY_MAGIC, CARRY_VERSION, CarriedCount, CarriedOwner, CarryError, MAX_CARRIED_NAMES,
    QuotaCarry,
};
pub use counter::{QuotaCounter, QuotaError, QuotaKind, Usage};
pub use memory::{MAX_COUNTED_OPERATORS, MemoryCounter};
pub use metrics::{OTHER_OPERATOR, QuotaCollector};
pub use owners::MAX_OWNED_PAIRS;
pub use redis::{DEFAULT_LEASE, KEY_SUFFIX, RedisCounter, counter_for};
pub use service::{Admitted, OperatorQuota, Quotas};
