//! Per-source limits of one core, sans-IO with injected time, each table bounded:
//!
//! - [`BadTokenLimiter`]: a source that presents too many bad preambles is refused at accept.
//! - [`AcceptRateLimiter`]: new connections per source per window on a data port (the proxy's
//!   `tcp_rate_limits`).
//! - [`SniBudget`]: open SNI pairs per source and per domain (a flood of silent ClientHellos).
//!
//! Every core owns its own tables (no cross-core lock). A process-wide limit is split over the
//! cores with [`core_share`]; SO_REUSEPORT spreads one source's connections over the cores by a
//! hash of each connection's 4-tuple, so each core sees about its share of them.
//!
//! A source is keyed by [`SourceKey`]: an IPv4 address, or an IPv6 /64 prefix. One host is
//! routinely given a whole /64, so keying by full address would let it open each connection from
//! a fresh address (never limited) and churn the tables. IPv4-mapped IPv6 addresses (a
//! dual-stack listener) count as their IPv4 address.

mod accept_rate;
mod bad_token;
mod sni_budget;

use std::net::{IpAddr, Ipv6Addr};

pub use accept_rate::{AcceptRate, AcceptRateLimiter, MAX_ACCEPT_RATES, RateVerdict};
pub use bad_token::BadTokenLimiter;
pub use sni_budget::{SniBudget, SniRefusal, SniTicket};

/// The key a source is limited by: IPv4 as is (also when IPv4-mapped), IPv6 by its /64.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct SourceKey(IpAddr);

impl SourceKey {
    /// The key of the peer address `ip`.
    pub fn of(ip: IpAddr) -> Self {
        SourceKey(match ip {
            IpAddr::V4(_) => ip,
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => IpAddr::V4(v4),
                None => IpAddr::V6(Ipv6Addr::from_bits(v6.to_bits() & !u128::from(u64::MAX))),
            },
        })
    }

    /// The address (IPv4) or the /64 prefix (IPv6, host bits zero) the key stands for.
    pub fn addr(&self) -> IpAddr {
        self.0
    }
}

/// One core's share of a process-wide limit split over `cores` cores: `ceil(limit / cores)`,
/// at least 1. Over all cores a source gets at most `limit + cores - 1`; it gets less when its
/// connections land unevenly on the cores (each core refuses past its own share).
pub fn core_share(limit: u32, cores: usize) -> u32 {
    let cores = u32::try_from(cores.max(1)).unwrap_or(u32::MAX);
    limit.div_ceil(cores).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_round_up_and_never_reach_zero() {
        assert_eq!(core_share(1000, 2), 500);
        assert_eq!(core_share(1001, 2), 501);
        assert_eq!(core_share(1, 4), 1);
        assert_eq!(core_share(7, 1), 7);
        assert_eq!(core_share(7, 0), 7, "no cores counts as one");
    }

    #[test]
    fn ipv6_keys_are_the_64_prefix_and_mapped_ipv4_is_ipv4() {
        let a = IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 1, 0, 0, 0, 1));
        let b = IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 1, 0xffff, 0, 0, 9));
        let other = IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 2, 0, 0, 0, 1));
        assert_eq!(SourceKey::of(a), SourceKey::of(b));
        assert_ne!(SourceKey::of(a), SourceKey::of(other));
        let mapped = IpAddr::V6(Ipv6Addr::new(0, 0, 0, 0, 0, 0xffff, 0xc000, 0x0207));
        assert_eq!(SourceKey::of(mapped).addr(), IpAddr::from([192, 0, 2, 7]));
    }
}
