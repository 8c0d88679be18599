//! A core's bandwidth bookkeeping: the limits of its issued pairs until they pair, and the
//! operator buckets its relaying pairs share. Core-local (`RefCell`, no borrow across an
//! `.await`); only limited pairs have entries, so an engine without limits keeps both maps empty.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use std::time::Instant;

use super::throttle::{BandwidthLimits, Bucket, Throttle};

/// The limits of pairs not yet relaying and the shared operator buckets of one core.
///
/// Bounds: `pending` holds one entry per limited pair in the core's pair table (removed when the
/// pair pairs, expires, is cancelled or drained), so it is bounded by `max_pairs_per_core`;
/// `operators` holds one bucket per operator with a relaying limited pair on this core (removed
/// with its last pair), so it is bounded by the core's live pairs.
#[derive(Debug)]
pub(crate) struct Bandwidth {
    cores: usize,
    pending: RefCell<HashMap<u64, BandwidthLimits>>,
    operators: RefCell<HashMap<u64, Rc<Bucket>>>,
}

/// The two directions' throttles of a limited pair (boxed where held: only limited pairs pay
/// its room) and the key of its operator's bucket.
#[derive(Debug)]
pub(crate) struct PairThrottle {
    /// `[a→b, b→a]`.
    pub dirs: [Throttle; 2],
    key: Option<u64>,
    /// The limits the throttles were made from (handed over with the pair in an upgrade).
    pub limits: BandwidthLimits,
}

impl Bandwidth {
    /// Empty bookkeeping for a core of an engine with `cores` cores.
    pub(crate) fn new(cores: usize) -> Self {
        Self {
            cores,
            pending: RefCell::default(),
            operators: RefCell::default(),
        }
    }

    /// Remembers the limits of the pair `seq` just registered (nothing when unlimited).
    pub(crate) fn issued(&self, seq: u64, limits: BandwidthLimits) {
        if limits.is_limited() {
            self.pending.borrow_mut().insert(seq, limits);
        }
    }

    /// The pair `seq` left the table without relaying (expired, cancelled, drained).
    pub(crate) fn forget(&self, seq: u64) {
        if !self.pending.borrow().is_empty() {
            self.pending.borrow_mut().remove(&seq);
        }
    }

    /// Takes out the limits of the pair `seq` leaving the table for a hand-over (unlimited when
    /// it has none).
    pub(crate) fn take_pending(&self, seq: u64) -> BandwidthLimits {
        if self.pending.borrow().is_empty() {
            return BandwidthLimits::UNLIMITED;
        }
        self.pending
            .borrow_mut()
            .remove(&seq)
            .unwrap_or(BandwidthLimits::UNLIMITED)
    }

    /// The throttles of the pair `seq` that starts relaying now (`None`: unlimited).
    pub(crate) fn start(&self, seq: u64, now: Instant) -> Option<Box<PairThrottle>> {
        if self.pending.borrow().is_empty() {
            return None;
        }
        let limits = self.pending.borrow_mut().remove(&seq)?;
        let shared = limits.operator.map(|op| {
            let mut ops = self.operators.borrow_mut();
            ops.entry(op.key)
                .or_insert_with(|| Rc::new(Bucket::new(op.rate.core_share(self.cores), now)))
                .clone()
        });
        let own = || limits.pair.map(|r| Bucket::new(r, now));
        Some(Box::new(PairThrottle {
            dirs: [
                Throttle::new(own(), shared.clone()),
                Throttle::new(own(), shared),
            ],
            key: limits.operator.map(|op| op.key),
            limits,
        }))
    }

    /// The pair's relay ended: drops its throttles and, with its operator's last pair on this
    /// core, the operator's bucket.
    pub(crate) fn end(&self, throttle: Option<Box<PairThrottle>>) {
        let Some(t) = throttle else { return };
        let shared = t.dirs[0].operator().cloned();
        let key = t.key;
        drop(t);
        if let (Some(bucket), Some(key)) = (shared, key) {
            // The registry's copy and `bucket` are the last two: no other pair uses it.
            if Rc::strong_count(&bucket) == 2 {
                self.operators.borrow_mut().remove(&key);
            }
        }
    }

    /// Operator buckets held now (tests).
    #[cfg(test)]
    pub(crate) fn operators(&self) -> usize {
        self.operators.borrow().len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::relay::throttle::{ByteRate, OperatorBandwidth};
    use std::num::NonZeroU64;

    fn limits(pair: bool, key: Option<u64>) -> BandwidthLimits {
        let r = ByteRate {
            per_second: NonZeroU64::new(1000).unwrap(),
            burst: NonZeroU64::new(1000).unwrap(),
        };
        BandwidthLimits {
            pair: pair.then_some(r),
            operator: key.map(|key| OperatorBandwidth { key, rate: r }),
        }
    }

    #[test]
    fn unlimited_pairs_leave_no_trace_and_operator_buckets_go_with_their_last_pair() {
        let bw = Bandwidth::new(2);
        let now = Instant::now();
        bw.issued(1, BandwidthLimits::UNLIMITED);
        assert!(
            bw.start(1, now).is_none(),
            "an unlimited pair has no throttle"
        );
        bw.issued(2, limits(true, Some(7)));
        bw.issued(3, limits(false, Some(7)));
        bw.issued(4, limits(true, None));
        bw.issued(5, limits(true, Some(8)));
        bw.forget(5);
        assert!(
            bw.start(5, now).is_none(),
            "a forgotten pair starts unlimited"
        );
        let p2 = bw.start(2, now).unwrap();
        let p3 = bw.start(3, now).unwrap();
        let p4 = bw.start(4, now).unwrap();
        assert_eq!(bw.operators(), 1, "pairs 2 and 3 share operator 7's bucket");
        // The operator's share on one of two cores: 500 B/s with a 500 B burst.
        assert_eq!(p3.dirs[0].grant(1 << 20, now), 500);
        p2.dirs[0].spend(500);
        assert_eq!(p3.dirs[1].grant(1 << 20, now), 0, "the bucket is shared");
        bw.end(Some(p2));
        assert_eq!(bw.operators(), 1);
        bw.end(Some(p4));
        bw.end(Some(p3));
        assert_eq!(bw.operators(), 0);
        assert!(bw.pending.borrow().is_empty());
    }
}
