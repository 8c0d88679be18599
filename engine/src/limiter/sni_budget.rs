//! Open SNI pairs per source and per domain on one core.
//!
//! Every ClientHello the resolver routes creates a pair and makes the control plane notify the
//! private side, which then holds one of its connection slots for the pair's life. A flood of
//! hellos that name an announced domain and then stay silent would hold all of them. So a routed
//! hello takes a ticket from this budget before the resolver is asked, and gives it back when its
//! connection closes (refused, expired, or the pair's relay ended): at most `per_source` open SNI
//! pairs per source and `per_domain` per domain. Counting until the close (not only until the
//! private side joins, which takes milliseconds) is what bounds the slots a flood holds.
//!
//! Bounded: an entry exists only while its count is above zero, so each table holds at most one
//! entry per open ticket, and tickets are bounded by the core's open connections.

use std::collections::HashMap;
use std::net::IpAddr;

use super::SourceKey;

/// Which budget refused a hello.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SniRefusal {
    /// The source holds `per_source` open SNI pairs.
    Source,
    /// The domain holds `per_domain` open SNI pairs.
    Domain,
}

impl SniRefusal {
    /// Stable label for logs and metrics.
    pub fn as_str(&self) -> &'static str {
        match self {
            SniRefusal::Source => "source",
            SniRefusal::Domain => "domain",
        }
    }
}

/// One open SNI pair's claim on the budget; give it back with [`SniBudget::release`].
#[derive(Debug, PartialEq, Eq)]
pub struct SniTicket {
    source: SourceKey,
    domain: Box<str>,
}

/// The counts of one core.
#[derive(Debug)]
pub struct SniBudget {
    per_source: u32,
    per_domain: u32,
    sources: HashMap<SourceKey, u32>,
    domains: HashMap<Box<str>, u32>,
    held: usize,
}

impl SniBudget {
    /// At most `per_source` open SNI pairs per source and `per_domain` per domain (each at
    /// least 1).
    pub fn new(per_source: u32, per_domain: u32) -> Self {
        SniBudget {
            per_source: per_source.max(1),
            per_domain: per_domain.max(1),
            sources: HashMap::new(),
            domains: HashMap::new(),
            held: 0,
        }
    }

    /// Takes a ticket for a hello from `ip` naming `domain` (lower-cased by the parser; `""`
    /// when the hello names none), or says which budget is spent.
    pub fn try_acquire(&mut self, ip: IpAddr, domain: &str) -> Result<SniTicket, SniRefusal> {
        let source = SourceKey::of(ip);
        if self.sources.get(&source).copied().unwrap_or(0) >= self.per_source {
            return Err(SniRefusal::Source);
        }
        if self.domains.get(domain).copied().unwrap_or(0) >= self.per_domain {
            return Err(SniRefusal::Domain);
        }
        *self.sources.entry(source).or_insert(0) += 1;
        match self.domains.get_mut(domain) {
            Some(n) => *n += 1,
            None => {
                self.domains.insert(domain.into(), 1);
            }
        }
        self.held += 1;
        Ok(SniTicket {
            source,
            domain: domain.into(),
        })
    }

    /// Gives a ticket back; entries that reach zero are removed.
    pub fn release(&mut self, ticket: SniTicket) {
        decrement(&mut self.sources, &ticket.source);
        decrement(&mut self.domains, &ticket.domain);
        self.held = self.held.saturating_sub(1);
    }

    /// Tickets out (open SNI pairs counted on this core).
    pub fn held(&self) -> usize {
        self.held
    }

    /// Entries in the two tables (sources, domains).
    pub fn entries(&self) -> (usize, usize) {
        (self.sources.len(), self.domains.len())
    }
}

fn decrement<K: std::hash::Hash + Eq>(map: &mut HashMap<K, u32>, key: &K) {
    if let Some(n) = map.get_mut(key) {
        *n = n.saturating_sub(1);
        if *n == 0 {
            map.remove(key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(n: u8) -> IpAddr {
        IpAddr::from([127, 0, 0, n])
    }

    #[test]
    fn a_source_is_refused_past_its_budget_until_a_ticket_returns() {
        let mut b = SniBudget::new(2, 100);
        let t1 = b.try_acquire(ip(2), "a.example").unwrap();
        let _t2 = b.try_acquire(ip(2), "a.example").unwrap();
        assert_eq!(b.try_acquire(ip(2), "a.example"), Err(SniRefusal::Source));
        assert!(b.try_acquire(ip(3), "a.example").is_ok(), "another source");
        b.release(t1);
        assert!(b.try_acquire(ip(2), "a.example").is_ok());
        assert_eq!(b.held(), 3);
    }

    #[test]
    fn a_domain_is_refused_past_its_budget_whatever_the_source() {
        let mut b = SniBudget::new(100, 3);
        for i in 10..13 {
            b.try_acquire(ip(i), "a.example").unwrap();
        }
        assert_eq!(b.try_acquire(ip(20), "a.example"), Err(SniRefusal::Domain));
        assert!(b.try_acquire(ip(20), "b.example").is_ok(), "another domain");
    }

    #[test]
    fn entries_exist_only_while_tickets_are_out() {
        let mut b = SniBudget::new(4, 4);
        let tickets: Vec<_> = (0..50u8)
            .filter_map(|i| b.try_acquire(ip(i), &format!("d{i}.example")).ok())
            .collect();
        assert_eq!(b.entries(), (50, 50));
        for t in tickets {
            b.release(t);
        }
        assert_eq!(b.entries(), (0, 0));
        assert_eq!(b.held(), 0);
    }
}
