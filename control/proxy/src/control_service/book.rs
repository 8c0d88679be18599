//! The pairs the control plane knows about, for `ListPairs`: pairs issued through the
//! ControlService (until they pair, close or expire) and every pair the engine reported as paired
//! (until it closes). Sans-IO: time is passed in. The per-core counts of `ListPairs` come from the
//! engine's counters instead and are exact; this book is only as complete as the event stream
//! (the engine drops events when its channel is full, and counts them).

use std::collections::HashMap;
use std::time::{Duration, SystemTime};

use tandem_engine::PairId;

/// Pairs tracked at once (entries of ~64 B: 100 000 ≈ 6 MiB). Past it, new pairs are counted in
/// [`PairBook::untracked`] instead of listed; the engine's own table bound is of the same order.
pub const MAX_TRACKED_PAIRS: usize = 100_000;

/// An issued pair is dropped from the book this long after its expiry even if the engine's
/// `Closed(Expired)` event was lost (the engine's sweep runs every 100 ms by default).
const EXPIRY_SLACK: Duration = Duration::from_secs(1);

/// Where a tracked pair is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tracked {
    /// Issued; not both sides have arrived yet.
    Issued {
        /// When it was issued.
        since: SystemTime,
        /// When its unused tokens expire.
        expires_at: SystemTime,
    },
    /// Both sides arrived; relaying.
    Live {
        /// When it paired.
        since: SystemTime,
    },
}

/// The tracked pairs (bounded by `cap`).
#[derive(Debug)]
pub struct PairBook {
    pairs: HashMap<PairId, Tracked>,
    cap: usize,
    untracked: u64,
}

impl Default for PairBook {
    fn default() -> Self {
        Self::new(MAX_TRACKED_PAIRS)
    }
}

impl PairBook {
    /// An empty book holding at most `cap` pairs.
    pub fn new(cap: usize) -> Self {
        Self {
            pairs: HashMap::new(),
            cap,
            untracked: 0,
        }
    }

    /// Pairs tracked now.
    pub fn len(&self) -> usize {
        self.pairs.len()
    }

    /// Whether no pair is tracked.
    pub fn is_empty(&self) -> bool {
        self.pairs.is_empty()
    }

    /// Pairs not tracked because the book was full.
    pub fn untracked(&self) -> u64 {
        self.untracked
    }

    fn put(&mut self, id: PairId, state: Tracked) {
        if self.pairs.len() >= self.cap && !self.pairs.contains_key(&id) {
            self.untracked += 1;
            return;
        }
        self.pairs.insert(id, state);
    }

    /// A pair was issued at `now`, expiring at `expires_at`.
    pub fn issued(&mut self, id: PairId, now: SystemTime, expires_at: SystemTime) {
        // A Paired event cannot precede the issue (the tokens are not out yet), but keep Live.
        if !matches!(self.pairs.get(&id), Some(Tracked::Live { .. })) {
            self.put(
                id,
                Tracked::Issued {
                    since: now,
                    expires_at,
                },
            );
        }
    }

    /// The engine paired `id` at `now`.
    pub fn paired(&mut self, id: PairId, now: SystemTime) {
        self.put(id, Tracked::Live { since: now });
    }

    /// The engine closed `id` (any reason).
    pub fn closed(&mut self, id: PairId) {
        self.pairs.remove(&id);
    }

    /// Drops issued pairs expired well before `now` (their close event may have been lost).
    pub fn prune(&mut self, now: SystemTime) {
        self.pairs.retain(|_, t| match t {
            Tracked::Issued { expires_at, .. } => *expires_at + EXPIRY_SLACK > now,
            Tracked::Live { .. } => true,
        });
    }

    /// At most `limit` pairs ordered by (core, seq), and whether more were tracked.
    pub fn list(&self, limit: usize) -> (Vec<(PairId, Tracked)>, bool) {
        let mut all: Vec<(PairId, Tracked)> = self.pairs.iter().map(|(k, v)| (*k, *v)).collect();
        all.sort_unstable_by_key(|(id, _)| (id.core.0, id.seq));
        let truncated = all.len() > limit;
        all.truncate(limit);
        (all, truncated)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tandem_engine::CoreId;

    fn id(core: usize, seq: u64) -> PairId {
        PairId {
            core: CoreId(core),
            seq,
        }
    }

    #[test]
    fn lifecycle_issued_live_closed() {
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1000);
        let mut book = PairBook::new(10);
        book.issued(id(0, 1), t0, t0 + Duration::from_secs(30));
        assert!(matches!(book.list(10).0[0].1, Tracked::Issued { .. }));
        book.paired(id(0, 1), t0 + Duration::from_secs(1));
        assert!(matches!(book.list(10).0[0].1, Tracked::Live { .. }));
        book.issued(id(0, 1), t0, t0);
        assert!(
            matches!(book.list(10).0[0].1, Tracked::Live { .. }),
            "a late issue does not demote a live pair"
        );
        book.closed(id(0, 1));
        assert!(book.is_empty());
    }

    #[test]
    fn bounded_sorted_truncated_and_pruned() {
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1000);
        let mut book = PairBook::new(3);
        book.issued(id(1, 5), t0, t0 + Duration::from_secs(5));
        book.paired(id(0, 9), t0);
        book.issued(id(0, 2), t0, t0 + Duration::from_secs(60));
        book.paired(id(2, 1), t0);
        assert_eq!(book.len(), 3);
        assert_eq!(book.untracked(), 1);
        let (pairs, truncated) = book.list(2);
        assert!(truncated);
        assert_eq!(
            pairs.iter().map(|p| p.0).collect::<Vec<_>>(),
            [id(0, 2), id(0, 9)]
        );
        book.prune(t0 + Duration::from_secs(10));
        let (pairs, truncated) = book.list(10);
        assert!(!truncated);
        assert_eq!(
            pairs.iter().map(|p| p.0).collect::<Vec<_>>(),
            [id(0, 2), id(0, 9)],
            "the expired issued pair is gone, the live one stays"
        );
    }
}
