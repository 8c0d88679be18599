//! Sans-IO per-client rate limiting (the original's `tcp_rate_limits`): fixed windows per source IP.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use tandem_settings::listeners::TcpRateLimit;

/// The most client addresses tracked at once. Past it, entries whose windows have all expired are
/// swept; if none can be swept, unknown clients are refused until some can (a flood from many
/// addresses cannot grow memory without bound).
pub const MAX_TRACKED_CLIENTS: usize = 65_536;

/// One limit: at most `limit` requests per `window` per client address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    /// The window length (second, minute or hour in the settings).
    pub window: Duration,
    /// Requests allowed per window.
    pub limit: u32,
}

impl From<&TcpRateLimit> for RateLimit {
    fn from(limit: &TcpRateLimit) -> Self {
        Self {
            window: limit.period.duration(),
            limit: limit.limit.get(),
        }
    }
}

impl RateLimit {
    /// The `tcp_rate_limits` of a settings block (the one place settings become limits).
    pub fn from_settings(limits: &[TcpRateLimit]) -> Vec<Self> {
        limits.iter().map(Self::from).collect()
    }
}

#[derive(Debug, Clone)]
struct Counter {
    window_start: Instant,
    count: u32,
}

/// Counts requests per client address against a set of limits.
#[derive(Debug)]
pub struct RateLimiter {
    limits: Vec<RateLimit>,
    clients: HashMap<IpAddr, Vec<Counter>>,
    capacity: usize,
}

impl RateLimiter {
    /// A limiter with the given limits (none = unlimited) and the default table bound.
    pub fn new(limits: Vec<RateLimit>) -> Self {
        Self::with_capacity(limits, MAX_TRACKED_CLIENTS)
    }

    /// A limiter tracking at most `capacity` client addresses.
    pub fn with_capacity(limits: Vec<RateLimit>, capacity: usize) -> Self {
        Self {
            limits,
            clients: HashMap::new(),
            capacity,
        }
    }

    /// Records one request from `ip` at `now`; `false` means the client is over a limit.
    pub fn check(&mut self, ip: IpAddr, now: Instant) -> bool {
        if self.limits.is_empty() {
            return true;
        }
        if !self.clients.contains_key(&ip) && self.clients.len() >= self.capacity {
            self.sweep(now);
            if self.clients.len() >= self.capacity {
                return false;
            }
        }
        let counters = self.clients.entry(ip).or_insert_with(|| {
            self.limits
                .iter()
                .map(|_| Counter {
                    window_start: now,
                    count: 0,
                })
                .collect()
        });
        let mut allowed = true;
        for (limit, counter) in self.limits.iter().zip(counters.iter_mut()) {
            if now.saturating_duration_since(counter.window_start) >= limit.window {
                *counter = Counter {
                    window_start: now,
                    count: 0,
                };
            }
            if counter.count >= limit.limit {
                allowed = false;
            }
        }
        if allowed {
            counters.iter_mut().for_each(|c| c.count += 1);
        }
        allowed
    }

    /// How many client addresses are tracked.
    pub fn tracked(&self) -> usize {
        self.clients.len()
    }

    fn sweep(&mut self, now: Instant) {
        let limits = &self.limits;
        self.clients.retain(|_, counters| {
            limits
                .iter()
                .zip(counters.iter())
                .any(|(l, c)| now.saturating_duration_since(c.window_start) < l.window)
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(n: u8) -> IpAddr {
        IpAddr::from([127, 0, 0, n])
    }

    #[test]
    fn settings_limits_become_windows_of_their_period() {
        use std::num::NonZeroU32;
        use tandem_settings::listeners::RatePeriod;
        let settings = [
            TcpRateLimit {
                period: RatePeriod::Minute,
                limit: NonZeroU32::new(7).unwrap(),
            },
            TcpRateLimit {
                period: RatePeriod::Hour,
                limit: NonZeroU32::new(100).unwrap(),
            },
        ];
        assert_eq!(
            RateLimit::from_settings(&settings),
            vec![
                RateLimit {
                    window: Duration::from_secs(60),
                    limit: 7
                },
                RateLimit {
                    window: Duration::from_secs(3600),
                    limit: 100
                },
            ]
        );
    }

    #[test]
    fn limits_per_window_and_resets_after_it() {
        let t0 = Instant::now();
        let mut rl = RateLimiter::new(vec![RateLimit {
            window: Duration::from_secs(1),
            limit: 2,
        }]);
        assert!(rl.check(ip(1), t0));
        assert!(rl.check(ip(1), t0));
        assert!(
            !rl.check(ip(1), t0),
            "third request in the window is refused"
        );
        assert!(rl.check(ip(2), t0), "other clients are unaffected");
        assert!(
            rl.check(ip(1), t0 + Duration::from_secs(1)),
            "a new window starts"
        );
    }

    #[test]
    fn every_limit_applies() {
        let t0 = Instant::now();
        let mut rl = RateLimiter::new(vec![
            RateLimit {
                window: Duration::from_secs(1),
                limit: 10,
            },
            RateLimit {
                window: Duration::from_secs(60),
                limit: 3,
            },
        ]);
        for s in 0..3 {
            assert!(rl.check(ip(1), t0 + Duration::from_secs(s)));
        }
        assert!(
            !rl.check(ip(1), t0 + Duration::from_secs(5)),
            "minute limit reached"
        );
    }

    #[test]
    fn the_table_is_bounded() {
        let t0 = Instant::now();
        let mut rl = RateLimiter::with_capacity(
            vec![RateLimit {
                window: Duration::from_secs(1),
                limit: 5,
            }],
            2,
        );
        assert!(rl.check(ip(1), t0));
        assert!(rl.check(ip(2), t0));
        assert!(
            !rl.check(ip(3), t0),
            "a third address is refused while the table is full"
        );
        assert_eq!(rl.tracked(), 2);
        assert!(
            rl.check(ip(3), t0 + Duration::from_secs(2)),
            "expired entries are swept"
        );
        assert!(rl.tracked() <= 2);
    }

    #[test]
    fn no_limits_means_unlimited() {
        let mut rl = RateLimiter::new(vec![]);
        assert!((0..1000).all(|_| rl.check(ip(1), Instant::now())));
        assert_eq!(rl.tracked(), 0);
    }
}
