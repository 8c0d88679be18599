//! Per-source limiter for bad preambles (sans-IO, injected time). Bounded: at most `capacity`
//! sources are tracked; when full, the entry with the oldest window is evicted.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use super::SourceKey;

/// Counts bad tokens per IP in fixed windows; an IP over the limit is refused until its window ends.
#[derive(Debug)]
pub struct BadTokenLimiter {
    limit: u32,
    window: Duration,
    capacity: usize,
    seen: HashMap<SourceKey, (Instant, u32)>,
}

impl BadTokenLimiter {
    /// `limit` bad tokens per `window` per IP, tracking at most `capacity` IPs.
    pub fn new(limit: u32, window: Duration, capacity: usize) -> Self {
        BadTokenLimiter {
            limit,
            window,
            capacity: capacity.max(1),
            seen: HashMap::new(),
        }
    }

    /// True when connections from `ip` should be refused right at accept.
    pub fn is_blocked(&self, ip: IpAddr, now: Instant) -> bool {
        match self.seen.get(&SourceKey::of(ip)) {
            Some(&(start, n)) => now < start + self.window && n >= self.limit,
            None => false,
        }
    }

    /// Records one bad token from `ip`.
    pub fn record(&mut self, ip: IpAddr, now: Instant) {
        let ip = SourceKey::of(ip);
        if !self.seen.contains_key(&ip) && self.seen.len() >= self.capacity {
            self.evict(now);
        }
        let entry = self.seen.entry(ip).or_insert((now, 0));
        if now >= entry.0 + self.window {
            *entry = (now, 0);
        }
        entry.1 = entry.1.saturating_add(1);
    }

    fn evict(&mut self, now: Instant) {
        let window = self.window;
        self.seen.retain(|_, (start, _)| now < *start + window);
        if self.seen.len() >= self.capacity {
            let oldest = self
                .seen
                .iter()
                .min_by_key(|(_, (start, _))| *start)
                .map(|(ip, _)| *ip);
            if let Some(ip) = oldest {
                self.seen.remove(&ip);
            }
        }
    }

    /// Addresses tracked.
    pub fn len(&self) -> usize {
        self.seen.len()
    }

    /// True when no address is tracked.
    pub fn is_empty(&self) -> bool {
        self.seen.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use std::net::Ipv6Addr;

    use super::*;

    #[test]
    fn blocks_after_limit_until_window_ends() {
        let now = Instant::now();
        let ip: IpAddr = [10, 0, 0, 1].into();
        let mut l = BadTokenLimiter::new(2, Duration::from_secs(10), 8);
        l.record(ip, now);
        assert!(!l.is_blocked(ip, now));
        l.record(ip, now);
        assert!(l.is_blocked(ip, now));
        assert!(!l.is_blocked([10, 0, 0, 2].into(), now));
        assert!(!l.is_blocked(ip, now + Duration::from_secs(10)));
    }

    #[test]
    fn ipv6_sources_are_limited_by_their_64_prefix() {
        let now = Instant::now();
        let mut l = BadTokenLimiter::new(3, Duration::from_secs(10), 8);
        // One host rotating through its /64: each bad token from a fresh address.
        for i in 1..=3u16 {
            l.record(
                IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 1, 0, 0, 0, i)),
                now,
            );
        }
        let next = IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 1, 0xdead, 0, 0, 99));
        assert!(l.is_blocked(next, now), "the /64 is limited");
        assert_eq!(l.len(), 1, "one table entry for the /64");
        let neighbour = IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 2, 0, 0, 0, 1));
        assert!(!l.is_blocked(neighbour, now), "another /64 is not");
    }

    #[test]
    fn ipv4_mapped_counts_as_ipv4() {
        let now = Instant::now();
        let mut l = BadTokenLimiter::new(2, Duration::from_secs(10), 8);
        let v4: IpAddr = [192, 0, 2, 7].into();
        let mapped = IpAddr::V6(Ipv6Addr::new(0, 0, 0, 0, 0, 0xffff, 0xc000, 0x0207));
        l.record(v4, now);
        l.record(mapped, now);
        assert!(l.is_blocked(v4, now));
        assert!(l.is_blocked(mapped, now));
        assert!(!l.is_blocked([192, 0, 2, 8].into(), now));
    }

    #[test]
    fn table_is_bounded() {
        let now = Instant::now();
        let mut l = BadTokenLimiter::new(1, Duration::from_secs(10), 4);
        for i in 0..100u8 {
            l.record(
                [10, 0, 0, i].into(),
                now + Duration::from_millis(u64::from(i)),
            );
            assert!(l.len() <= 4);
        }
        assert!(l.is_blocked([10, 0, 0, 99].into(), now + Duration::from_millis(99)));
    }
}
