//! A sans-IO token bucket: `burst` tokens, refilled at `per_second`, time injected by the caller.

use std::time::Instant;

/// Tokens are counted in millitokens so that slow rates refill smoothly without floats.
const MILLI: u64 = 1_000;

/// A rate with a burst allowance: at most `burst` events at once, `per_second` on average.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    /// Sustained events per second.
    pub per_second: u32,
    /// Events allowed back to back after a quiet period.
    pub burst: u32,
}

/// One bucket.
#[derive(Debug, Clone)]
pub struct TokenBucket {
    rate: Rate,
    millitokens: u64,
    updated: Instant,
}

impl TokenBucket {
    /// A full bucket at `now`.
    pub fn new(rate: Rate, now: Instant) -> Self {
        Self {
            rate,
            millitokens: u64::from(rate.burst) * MILLI,
            updated: now,
        }
    }

    fn refill(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.updated);
        // Whole microseconds are enough resolution; saturating keeps a bucket left alone for years safe.
        let earned = u64::try_from(elapsed.as_micros())
            .unwrap_or(u64::MAX)
            .saturating_mul(u64::from(self.rate.per_second))
            / 1_000;
        let cap = u64::from(self.rate.burst) * MILLI;
        self.millitokens = self.millitokens.saturating_add(earned).min(cap);
        self.updated = now;
    }

    /// Takes one token at `now`; `false` when the bucket is empty.
    pub fn take(&mut self, now: Instant) -> bool {
        self.refill(now);
        if self.millitokens >= MILLI {
            self.millitokens -= MILLI;
            true
        } else {
            false
        }
    }

    /// Whether the bucket is full at `now` (it then carries no memory worth keeping).
    pub fn is_full(&mut self, now: Instant) -> bool {
        self.refill(now);
        self.millitokens >= u64::from(self.rate.burst) * MILLI
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_burst_then_the_sustained_rate() {
        let t0 = Instant::now();
        let mut b = TokenBucket::new(
            Rate {
                per_second: 10,
                burst: 3,
            },
            t0,
        );
        assert!(b.take(t0) && b.take(t0) && b.take(t0));
        assert!(!b.take(t0), "the burst is spent");
        assert!(!b.take(t0 + Duration::from_millis(99)));
        assert!(
            b.take(t0 + Duration::from_millis(100)),
            "one token per 100 ms"
        );
        assert!(!b.take(t0 + Duration::from_millis(150)));
        assert!(!b.is_full(t0 + Duration::from_millis(250)));
        assert!(b.is_full(t0 + Duration::from_secs(10)));
        assert!(b.take(t0 + Duration::from_secs(10)));
    }

    #[test]
    fn a_clock_that_goes_back_does_not_refill_or_panic() {
        let t0 = Instant::now() + Duration::from_secs(5);
        let mut b = TokenBucket::new(
            Rate {
                per_second: 1,
                burst: 1,
            },
            t0,
        );
        assert!(b.take(t0));
        assert!(!b.take(t0 - Duration::from_secs(1)));
    }
}
