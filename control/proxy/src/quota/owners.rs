//! Which operator owns each counted pair, so that the engine's pair events (which carry only the
//! pair id) release the right operator's quota. Sans-IO: time is passed in.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tandem_engine::PairId;

/// Pairs whose owner is remembered at once (~80 B each: ~8 MiB), the order of the engine's own
/// table bound (`max_pairs_per_core` × cores). Past it, a new pair is refused rather than counted
/// without a way to release it.
pub const MAX_OWNED_PAIRS: usize = 100_000;

/// Closes of pairs not (yet) known, remembered in case the pair's owner is recorded just after
/// (a registration the engine refused at once emits its close before `create_pair` returns to
/// the caller). 1024 entries of ~24 B; older ones fall off.
const RECENT_UNKNOWN_CLOSES: usize = 1024;

/// When the owners are full, a waiting pair whose tokens expired this long ago is released to
/// make room even though its close event never came (the engine drops events when its channel is
/// full, and counts them).
const EXPIRY_SLACK: Duration = Duration::from_secs(5);

/// Where an owned pair is.
#[derive(Debug, Clone)]
pub(super) struct Owned {
    pub operator: Arc<str>,
    pub waiting: bool,
    pub expires_at: SystemTime,
}

/// What an event did to an owned pair.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Change {
    /// The pair paired: `operator` has one waiting pair less.
    Paired(Arc<str>),
    /// The pair ended; `waiting`: before it paired.
    Ended {
        operator: Arc<str>,
        waiting: bool,
        bytes: u64,
    },
}

/// The owners of counted pairs (bounded by `cap`).
#[derive(Debug)]
pub(super) struct Owners {
    pairs: HashMap<PairId, Owned>,
    unknown_closes: VecDeque<(PairId, u64)>,
    cap: usize,
}

impl Owners {
    pub(super) fn new(cap: usize) -> Self {
        Self {
            pairs: HashMap::new(),
            unknown_closes: VecDeque::new(),
            cap,
        }
    }

    /// Whether one more pair can be owned (after dropping pairs expired before `now`, whose
    /// releases are returned).
    pub(super) fn room(&mut self, now: SystemTime) -> (bool, Vec<Change>) {
        let mut released = Vec::new();
        if self.pairs.len() >= self.cap {
            self.pairs.retain(|_, o| {
                let stale = o.waiting && o.expires_at + EXPIRY_SLACK <= now;
                if stale {
                    released.push(Change::Ended {
                        operator: o.operator.clone(),
                        waiting: true,
                        bytes: 0,
                    });
                }
                !stale
            });
        }
        (self.pairs.len() < self.cap, released)
    }

    /// `id` was issued to `operator`, expiring at `expires_at`; if its close already came, that
    /// close is returned to be applied at once.
    pub(super) fn issued(
        &mut self,
        id: PairId,
        operator: Arc<str>,
        expires_at: SystemTime,
    ) -> Option<Change> {
        if let Some(i) = self.unknown_closes.iter().position(|(p, _)| *p == id) {
            let (_, bytes) = self.unknown_closes.remove(i)?;
            return Some(Change::Ended {
                operator,
                waiting: true,
                bytes,
            });
        }
        self.pairs.insert(
            id,
            Owned {
                operator,
                waiting: true,
                expires_at,
            },
        );
        None
    }

    /// The engine paired `id`.
    pub(super) fn paired(&mut self, id: PairId) -> Option<Change> {
        let o = self.pairs.get_mut(&id)?;
        if !o.waiting {
            return None;
        }
        o.waiting = false;
        Some(Change::Paired(o.operator.clone()))
    }

    /// The engine closed `id` after `bytes`.
    pub(super) fn closed(&mut self, id: PairId, bytes: u64) -> Option<Change> {
        match self.pairs.remove(&id) {
            Some(o) => Some(Change::Ended {
                operator: o.operator,
                waiting: o.waiting,
                bytes,
            }),
            None => {
                if self.unknown_closes.len() >= RECENT_UNKNOWN_CLOSES {
                    self.unknown_closes.pop_front();
                }
                self.unknown_closes.push_back((id, bytes));
                None
            }
        }
    }

    /// Every owned pair (for a binary upgrade's hand-over).
    pub(super) fn all(&self) -> impl Iterator<Item = (PairId, &Owned)> {
        self.pairs.iter().map(|(id, o)| (*id, o))
    }

    /// A handed-over pair's owner, taken over from the previous process; false when full.
    pub(super) fn adopt(
        &mut self,
        id: PairId,
        operator: Arc<str>,
        waiting: bool,
        expires_at: SystemTime,
    ) -> bool {
        if self.pairs.len() >= self.cap && !self.pairs.contains_key(&id) {
            return false;
        }
        self.pairs.insert(
            id,
            Owned {
                operator,
                waiting,
                expires_at,
            },
        );
        true
    }

    /// Pairs owned now.
    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.pairs.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tandem_engine::CoreId;

    fn id(seq: u64) -> PairId {
        PairId {
            core: CoreId(0),
            seq,
        }
    }

    #[test]
    fn paired_closed_early_closes_and_stale_waiting_pairs() {
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        let op: Arc<str> = Arc::from("hd-1");
        let mut o = Owners::new(2);
        assert_eq!(o.issued(id(1), op.clone(), t0), None);
        assert_eq!(o.paired(id(1)), Some(Change::Paired(op.clone())));
        assert_eq!(o.paired(id(1)), None, "a repeated event changes nothing");
        let end = |waiting, bytes| Change::Ended {
            operator: op.clone(),
            waiting,
            bytes,
        };
        assert_eq!(o.closed(id(1), 10), Some(end(false, 10)));
        assert_eq!(o.closed(id(2), 0), None, "not known yet");
        assert_eq!(o.issued(id(2), op.clone(), t0), Some(end(true, 0)));
        assert_eq!(o.len(), 0);
        o.issued(id(3), op.clone(), t0);
        o.issued(id(4), op.clone(), t0 + Duration::from_secs(60));
        let (room, released) = o.room(t0 + Duration::from_secs(10));
        assert!(room, "the expired waiting pair made room");
        assert_eq!(released, vec![end(true, 0)]);
        assert_eq!(o.len(), 1);
    }
}
