//! Bandwidth limits of the data plane: a byte token bucket per limited direction (the pair's
//! rate) and one per operator per core (shared by that operator's pairs on the core).
//!
//! Sans-IO apart from [`Throttle::until_open`]: buckets take `now`, count in nano-bytes (bytes ×
//! 10⁹, `u128`) so refills are exact at any rate from 1 B/s up, and use `Cell`s: a bucket lives on
//! its core and is never shared across threads (no lock, no atomic). An unlimited pair has no
//! [`Throttle`] at all, so the pump's only cost is one `Option` test per burst.
//!
//! How a limited direction moves: each splice asks at most [`Throttle::grant`] bytes (the
//! smallest credit of its buckets); when a bucket holds less than half its burst the direction
//! parks on a monoio timer until it holds half again ([`Throttle::until_open`]). Waking at half the
//! burst leaves the other half as head-room for the timer's lateness (monoio's wheel has 1 ms
//! ticks; a loaded core is later), and the refill after a park may go up to twice the burst
//! ([`Bucket::refill_parked`]), so a wake-up up to 1.5 bursts late loses no credit and the
//! long-run rate is the configured one (the proxy's default burst is 20 ms of the rate, at least
//! 64 KiB: 30 ms of lateness is absorbed).

use std::num::NonZeroU64;
use std::time::{Duration, Instant};

/// Nano-bytes per byte: credit is kept as bytes × 10⁹ so that `elapsed_ns × bytes_per_second`
/// adds exactly, with no rounding lost per refill.
const NANO: u128 = 1_000_000_000;

/// Shortest park of a limited direction: 1 ms, one tick of monoio's timer wheel (a shorter sleep
/// may complete without yielding). A bucket should hold at least 2 ms of its rate, else credit
/// earned while parked is lost to the cap and the pair runs below its rate; the proxy's settings
/// require 10 ms.
pub const MIN_PARK: Duration = Duration::from_millis(1);

/// A rate in bytes per second with a burst allowance in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ByteRate {
    /// Sustained bytes per second.
    pub per_second: NonZeroU64,
    /// Bytes that may move back to back after a quiet period (the bucket's size).
    pub burst: NonZeroU64,
}

impl ByteRate {
    /// One core's share of an engine-wide rate split over `cores`: `ceil(rate / cores)` and
    /// `ceil(burst / cores)` (the rule of [`crate::limiter::core_share`]).
    pub fn core_share(self, cores: usize) -> ByteRate {
        let n = NonZeroU64::new(cores.max(1) as u64).unwrap_or(NonZeroU64::MIN);
        let share = |v: NonZeroU64| NonZeroU64::new(v.get().div_ceil(n.get())).unwrap_or(v);
        ByteRate {
            per_second: share(self.per_second),
            burst: share(self.burst),
        }
    }
}

/// An operator's engine-wide rate, and the key its pairs share a bucket by on each core.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OperatorBandwidth {
    /// Identifies the operator (the control plane derives it from the operator's name).
    pub key: u64,
    /// The operator's rate over the whole engine; each core enforces its
    /// [`ByteRate::core_share`].
    pub rate: ByteRate,
}

/// The bandwidth limits of one pair, given when it is created. `Default` is unlimited.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BandwidthLimits {
    /// Each direction of the pair moves at most this rate.
    pub pair: Option<ByteRate>,
    /// All directions of the operator's pairs on one core share this bucket.
    pub operator: Option<OperatorBandwidth>,
}

impl BandwidthLimits {
    /// No limit: the pair relays as fast as the sockets allow.
    pub const UNLIMITED: BandwidthLimits = BandwidthLimits {
        pair: None,
        operator: None,
    };

    /// Whether any limit applies.
    pub fn is_limited(&self) -> bool {
        self.pair.is_some() || self.operator.is_some()
    }
}

/// One byte bucket (core-local).
#[derive(Debug)]
pub struct Bucket {
    per_second: u128,
    cap: u128,
    credit: std::cell::Cell<u128>,
    updated: std::cell::Cell<Instant>,
}

impl Bucket {
    /// A full bucket at `now`.
    pub fn new(rate: ByteRate, now: Instant) -> Self {
        let cap = u128::from(rate.burst.get()) * NANO;
        Self {
            per_second: u128::from(rate.per_second.get()),
            cap,
            credit: std::cell::Cell::new(cap),
            updated: std::cell::Cell::new(now),
        }
    }

    /// Adds the credit earned since the last refill, up to `cap`; credit already above the cap
    /// (earned while parked, see [`Bucket::refill_parked`]) is kept until spent.
    fn refill(&self, now: Instant) {
        self.refill_to(now, self.cap);
    }

    /// The refill right after a throttled direction's park: the direction had bytes waiting all
    /// along, so the credit of a late wake-up (a loaded core) is kept up to twice the burst
    /// instead of being lost to the cap. Over any busy stretch the bytes moved stay within the
    /// rate times the time plus the burst; only the chunk after a late wake-up is larger.
    pub fn refill_parked(&self, now: Instant) {
        self.refill_to(now, self.cap.saturating_mul(2));
    }

    fn refill_to(&self, now: Instant, cap: u128) {
        let elapsed = now.saturating_duration_since(self.updated.get()).as_nanos();
        if elapsed == 0 {
            return;
        }
        self.updated.set(now);
        let credit = self.credit.get();
        if credit >= cap {
            return;
        }
        let earned = elapsed.saturating_mul(self.per_second);
        self.credit.set(credit.saturating_add(earned).min(cap));
    }

    /// Whole bytes that may move at `now`.
    pub fn available(&self, now: Instant) -> u64 {
        self.refill(now);
        u64::try_from(self.credit.get() / NANO).unwrap_or(u64::MAX)
    }

    /// Takes `n` bytes that moved (never below empty).
    pub fn spend(&self, n: u64) {
        let cost = u128::from(n) * NANO;
        self.credit.set(self.credit.get().saturating_sub(cost));
    }

    /// How long until the bucket holds half its burst (at least one byte), or `None` when it
    /// holds that much at `now`. A direction that spent below half its burst parks until then:
    /// it must not take the trickle that refills while it runs (a few hundred bytes per splice),
    /// because its source stays readable, so on the epoll driver its readiness wait completes at
    /// once and the direction would never yield to the core's other pairs.
    pub fn wait(&self, now: Instant) -> Option<Duration> {
        self.refill(now);
        let target = (self.cap / 2).max(NANO);
        if self.credit.get() >= target {
            return None;
        }
        let need = target - self.credit.get();
        let nanos = need.div_ceil(self.per_second.max(1));
        Some(Duration::from_nanos(
            u64::try_from(nanos).unwrap_or(u64::MAX),
        ))
    }
}

/// The buckets one direction of a limited pair draws from.
#[derive(Debug)]
pub struct Throttle {
    pair: Option<Bucket>,
    operator: Option<std::rc::Rc<Bucket>>,
}

impl Throttle {
    /// A direction limited by its own `pair` bucket and/or its operator's shared one.
    pub fn new(pair: Option<Bucket>, operator: Option<std::rc::Rc<Bucket>>) -> Self {
        Self { pair, operator }
    }

    fn buckets(&self) -> impl Iterator<Item = &Bucket> {
        self.pair.iter().chain(self.operator.as_deref())
    }

    /// At most `want` bytes that may move now (0: every byte must wait).
    pub fn grant(&self, want: usize, now: Instant) -> usize {
        self.buckets().fold(want, |g, b| {
            g.min(usize::try_from(b.available(now)).unwrap_or(usize::MAX))
        })
    }

    /// Charges `n` bytes that moved to every bucket.
    pub fn spend(&self, n: usize) {
        for b in self.buckets() {
            b.spend(n as u64);
        }
    }

    /// How long to park before any byte may move (`None`: now).
    pub fn wait(&self, now: Instant) -> Option<Duration> {
        self.buckets().filter_map(|b| b.wait(now)).max()
    }

    /// Parks on a timer while a bucket holds less than half its burst. Each park lasts at least
    /// [`MIN_PARK`], so a parked direction always yields to the core's other tasks.
    pub async fn until_open(&self) {
        while let Some(d) = self.wait(Instant::now()) {
            monoio::time::sleep(d.max(MIN_PARK)).await;
            let now = Instant::now();
            for b in self.buckets() {
                b.refill_parked(now);
            }
        }
    }

    /// The operator bucket (to give back to the core's registry when the pair ends).
    pub(crate) fn operator(&self) -> Option<&std::rc::Rc<Bucket>> {
        self.operator.as_ref()
    }
}

#[cfg(test)]
#[path = "throttle_tests.rs"]
mod tests;
