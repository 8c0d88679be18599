//! New connections per source per window on one data port of one core (the proxy's
//! `tcp_rate_limits`), in fixed windows. Bounded: at most `capacity` sources are tracked; a new
//! source on a full table first sweeps sources whose windows all ended, then evicts the least
//! active source (fewest connections in its windows, the oldest among equals): one O(capacity)
//! scan per new source while the table is full. A hot source, at its limit, is never evicted
//! while a source with fewer connections is tracked, so rotating many sources cannot reset it.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use super::SourceKey;

/// Most accept rates enforced at once (the original's shape is one per window length: second,
/// minute, hour). Bounds a tracked source's entry at this many counters.
pub const MAX_ACCEPT_RATES: usize = 4;

/// At most `limit` new connections per source per `window`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AcceptRate {
    /// The window's length.
    pub window: Duration,
    /// Connections admitted per window (at least 1).
    pub limit: u32,
}

/// What to do with a new connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RateVerdict {
    /// Within every rate; counted.
    Admitted,
    /// Over a rate: close it at once (not counted against the source).
    Refused,
}

/// One counter per rate: (window start, connections admitted in it).
type Windows = [(Instant, u32); MAX_ACCEPT_RATES];

/// Counts admitted connections per source against a set of rates.
#[derive(Debug)]
pub struct AcceptRateLimiter {
    rates: Vec<AcceptRate>,
    capacity: usize,
    seen: HashMap<SourceKey, Windows>,
}

impl AcceptRateLimiter {
    /// A limiter of `rates` (beyond [`MAX_ACCEPT_RATES`] are ignored; the engine's config
    /// refuses more) tracking at most `capacity` sources. No rates: everything is admitted.
    pub fn new(rates: &[AcceptRate], capacity: usize) -> Self {
        AcceptRateLimiter {
            rates: rates.iter().take(MAX_ACCEPT_RATES).copied().collect(),
            capacity: capacity.max(1),
            seen: HashMap::new(),
        }
    }

    /// Records one new connection from `ip` at `now` unless it is over a rate.
    pub fn check(&mut self, ip: IpAddr, now: Instant) -> RateVerdict {
        if self.rates.is_empty() {
            return RateVerdict::Admitted;
        }
        let key = SourceKey::of(ip);
        if !self.seen.contains_key(&key) && self.seen.len() >= self.capacity {
            self.make_room(now);
        }
        let windows = self.seen.entry(key).or_insert([(now, 0); MAX_ACCEPT_RATES]);
        let mut admitted = true;
        for (rate, (start, n)) in self.rates.iter().zip(windows.iter_mut()) {
            if now.saturating_duration_since(*start) >= rate.window {
                *start = now;
                *n = 0;
            }
            if *n >= rate.limit {
                admitted = false;
            }
        }
        if !admitted {
            return RateVerdict::Refused;
        }
        for (_, n) in windows.iter_mut().take(self.rates.len()) {
            *n = n.saturating_add(1);
        }
        RateVerdict::Admitted
    }

    fn make_room(&mut self, now: Instant) {
        let rates = &self.rates;
        self.seen.retain(|_, windows| {
            rates
                .iter()
                .zip(windows.iter())
                .any(|(rate, (start, _))| now.saturating_duration_since(*start) < rate.window)
        });
        if self.seen.len() >= self.capacity {
            let n = self.rates.len();
            let least = self
                .seen
                .iter()
                .min_by_key(|(_, windows)| {
                    let busiest = windows[..n].iter().map(|(_, count)| *count).max();
                    (busiest, windows[0].0)
                })
                .map(|(key, _)| *key);
            if let Some(key) = least {
                self.seen.remove(&key);
            }
        }
    }

    /// Sources tracked.
    pub fn len(&self) -> usize {
        self.seen.len()
    }

    /// True when no source is tracked.
    pub fn is_empty(&self) -> bool {
        self.seen.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(n: u8) -> IpAddr {
        IpAddr::from([127, 0, 0, n])
    }

    fn per(window_s: u64, limit: u32) -> AcceptRate {
        AcceptRate {
            window: Duration::from_secs(window_s),
            limit,
        }
    }

    #[test]
    fn refuses_past_the_rate_until_the_window_ends() {
        let t0 = Instant::now();
        let mut l = AcceptRateLimiter::new(&[per(1, 2)], 16);
        assert_eq!(l.check(ip(2), t0), RateVerdict::Admitted);
        assert_eq!(l.check(ip(2), t0), RateVerdict::Admitted);
        assert_eq!(l.check(ip(2), t0), RateVerdict::Refused);
        assert_eq!(
            l.check(ip(2), t0),
            RateVerdict::Refused,
            "refusals do not count"
        );
        assert_eq!(l.check(ip(3), t0), RateVerdict::Admitted, "another source");
        let next = t0 + Duration::from_secs(1);
        assert_eq!(l.check(ip(2), next), RateVerdict::Admitted, "a new window");
    }

    #[test]
    fn every_rate_applies() {
        let t0 = Instant::now();
        let mut l = AcceptRateLimiter::new(&[per(1, 10), per(60, 3)], 16);
        for s in 0..3 {
            let at = t0 + Duration::from_secs(s);
            assert_eq!(l.check(ip(2), at), RateVerdict::Admitted);
        }
        let at = t0 + Duration::from_secs(5);
        assert_eq!(
            l.check(ip(2), at),
            RateVerdict::Refused,
            "minute rate spent"
        );
    }

    #[test]
    fn no_rates_admit_everything_untracked() {
        let mut l = AcceptRateLimiter::new(&[], 16);
        assert!((0..1000).all(|_| l.check(ip(2), Instant::now()) == RateVerdict::Admitted));
        assert!(l.is_empty());
    }

    #[test]
    fn the_table_is_bounded_and_a_hot_source_stays_limited() {
        let t0 = Instant::now();
        let mut l = AcceptRateLimiter::new(&[per(60, 3)], 8);
        let hot = ip(1);
        for _ in 0..3 {
            assert_eq!(l.check(hot, t0), RateVerdict::Admitted);
        }
        // Many newer sources, one connection each, rotate through the full table.
        for i in 10..200u8 {
            let at = t0 + Duration::from_millis(u64::from(i));
            assert_eq!(l.check(ip(i), at), RateVerdict::Admitted);
            assert!(l.len() <= 8);
        }
        let at = t0 + Duration::from_secs(1);
        assert_eq!(l.check(hot, at), RateVerdict::Refused, "still limited");
        // Windows that ended are swept before anything is evicted.
        let much_later = t0 + Duration::from_secs(120);
        assert_eq!(l.check(ip(250), much_later), RateVerdict::Admitted);
        assert_eq!(l.len(), 1);
    }

    #[test]
    fn ipv6_sources_share_their_64() {
        let t0 = Instant::now();
        let mut l = AcceptRateLimiter::new(&[per(60, 2)], 8);
        let host = |i| IpAddr::V6(std::net::Ipv6Addr::new(0x2001, 0xdb8, 0, 7, 0, 0, 0, i));
        assert_eq!(l.check(host(1), t0), RateVerdict::Admitted);
        assert_eq!(l.check(host(2), t0), RateVerdict::Admitted);
        assert_eq!(l.check(host(3), t0), RateVerdict::Refused);
        assert_eq!(l.len(), 1);
    }
}
