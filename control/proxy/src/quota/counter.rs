//! The counting seam of the quotas: [`QuotaCounter`], what it counts ([`Usage`]) and how it
//! refuses ([`QuotaError`]).

use std::future::Future;
use std::pin::Pin;
use std::time::SystemTime;

use crate::settings::QuotaLimits;

/// The quotas of an operator.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum QuotaKind {
    /// Pairs not yet ended (issued, waiting or relaying).
    LivePairs,
    /// Pairs created in the current UTC minute.
    PairsPerMinute,
    /// Pairs issued but not yet paired.
    WaitingPairs,
    /// Bytes relayed by ended pairs in the current UTC day.
    BytesPerDay,
}

impl QuotaKind {
    /// Every quota, in a stable order.
    pub const ALL: [QuotaKind; 4] = [
        QuotaKind::LivePairs,
        QuotaKind::PairsPerMinute,
        QuotaKind::WaitingPairs,
        QuotaKind::BytesPerDay,
    ];

    /// The settings key and metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            QuotaKind::LivePairs => "live_pairs",
            QuotaKind::PairsPerMinute => "pairs_per_minute",
            QuotaKind::WaitingPairs => "waiting_pairs",
            QuotaKind::BytesPerDay => "bytes_per_day",
        }
    }

    /// This quota's limit in `limits` (`None`: unlimited).
    pub fn limit(self, limits: &QuotaLimits) -> Option<u64> {
        let v = match self {
            QuotaKind::LivePairs => limits.live_pairs,
            QuotaKind::PairsPerMinute => limits.pairs_per_minute,
            QuotaKind::WaitingPairs => limits.waiting_pairs,
            QuotaKind::BytesPerDay => limits.bytes_per_day,
        };
        v.map(std::num::NonZeroU64::get)
    }

    /// This quota's use in `usage`.
    pub fn used(self, usage: &Usage) -> u64 {
        match self {
            QuotaKind::LivePairs => usage.live_pairs,
            QuotaKind::PairsPerMinute => usage.pairs_this_minute,
            QuotaKind::WaitingPairs => usage.waiting_pairs,
            QuotaKind::BytesPerDay => usage.bytes_today,
        }
    }
}

/// What an operator uses now.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Usage {
    /// Pairs not yet ended.
    pub live_pairs: u64,
    /// Pairs issued, not yet paired.
    pub waiting_pairs: u64,
    /// Pairs created in the current UTC minute.
    pub pairs_this_minute: u64,
    /// Bytes relayed by the operator's pairs that ended in the current UTC day.
    pub bytes_today: u64,
}

/// Why a pair was not admitted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QuotaError {
    /// The operator reached a quota.
    #[error("quota {} of operator {operator:?} reached (limit {limit})", .quota.as_str())]
    Exceeded {
        /// The operator.
        operator: String,
        /// Which quota.
        quota: QuotaKind,
        /// Its limit.
        limit: u64,
    },
    /// The counter cannot count one more operator or pair (its own bound).
    #[error("quota bookkeeping is full ({0})")]
    Full(&'static str),
    /// A remote counter could not be asked (a fleet counter's store is down).
    #[error("quota counter unavailable: {0}")]
    Unavailable(String),
}

impl QuotaError {
    /// Stable label for metrics and logs.
    pub fn kind(&self) -> &'static str {
        match self {
            QuotaError::Exceeded { quota, .. } => quota.as_str(),
            QuotaError::Full(_) => "full",
            QuotaError::Unavailable(_) => "unavailable",
        }
    }
}

/// A future a counter answers with.
pub type CounterFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Counts operators' pairs against their quotas. Every pair admitted is later either
/// [`QuotaCounter::abandoned`] (never issued) or [`QuotaCounter::ended`], after at most one
/// [`QuotaCounter::paired`].
pub trait QuotaCounter: Send + Sync + 'static {
    /// Admits one new pair of `operator` if every quota in `limits` has room at `now`, counting
    /// it as created, live and waiting; else names the first quota reached.
    fn admit<'a>(
        &'a self,
        operator: &'a str,
        limits: &'a QuotaLimits,
        now: SystemTime,
    ) -> CounterFuture<'a, Result<(), QuotaError>>;

    /// An admitted pair could not be issued: it stops counting as live and waiting (it still
    /// counts as created this minute).
    fn abandoned(&self, operator: &str);

    /// A pair of `operator` paired: it stops counting as waiting.
    fn paired(&self, operator: &str);

    /// A pair of `operator` ended at `now` having relayed `bytes` (both directions);
    /// `waiting`: it ended before it paired.
    fn ended(&self, operator: &str, waiting: bool, bytes: u64, now: SystemTime);

    /// What `operator` uses at `now`.
    fn usage(&self, operator: &str, now: SystemTime) -> Usage;

    /// Every operator counted, with its use at `now` (bounded by the counter's own bound).
    fn all(&self, now: SystemTime) -> Vec<(String, Usage)>;

    /// A binary upgrade's new process takes over `operator`'s use as the previous process
    /// counted it at `taken_at` (its minute and day windows; later windows start at zero).
    /// A counter whose counts outlive the process (a fleet store) has nothing to take over and
    /// keeps this default.
    fn restore(&self, operator: &str, usage: Usage, taken_at: SystemTime) {
        let _ = (operator, usage, taken_at);
    }
}
