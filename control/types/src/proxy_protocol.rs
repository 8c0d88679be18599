//! Who may put a PROXY protocol header in front of a connection: the trusted source networks
//! (CIDRs) and the deadline for the header. Shared by the engine's data ports and the serving
//! kit's listeners; the header itself is read by `tandem-proxy-header`.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;
use std::time::Duration;

/// Networks one listener trusts, at most this many (a list is scanned per accepted connection:
/// 256 prefixes cover any load balancer fleet and keep the scan a few hundred nanoseconds).
pub const MAX_TRUSTED_NETWORKS: usize = 256;
/// Time a trusted source has to deliver its whole header after the accept (default 5 s, as the
/// token deadline: a load balancer writes it with its first segment, so anything slower is a
/// stalled or hostile connection holding a slot before its client is known).
pub const DEFAULT_PROXY_HEADER_TIMEOUT: Duration = Duration::from_secs(5);

/// One network: an address and a prefix length, host bits zero (`10.0.0.0/8`, `fd00::/8`, or a
/// bare address for one host).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Cidr {
    net: IpAddr,
    prefix: u8,
}

/// A network that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CidrError {
    /// Not an IP address (before the `/`).
    #[error("`{0}` is not an IP address")]
    Address(String),
    /// The prefix is not a number within the family's width.
    #[error("`{0}` is not a prefix length of this family")]
    Prefix(String),
    /// Bits past the prefix are set (`10.0.0.1/8`): probably a typo for a host or another prefix.
    #[error("`{0}` has host bits set past its prefix")]
    HostBits(String),
}

impl Cidr {
    /// The network's address (host bits zero).
    pub fn net(&self) -> IpAddr {
        self.net
    }

    /// The prefix length.
    pub fn prefix(&self) -> u8 {
        self.prefix
    }

    /// Whether `ip` lies in this network; an IPv4-mapped IPv6 address (what a dual-stack
    /// listener reports for IPv4 peers) counts as its IPv4 address.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            IpAddr::V4(_) => ip,
        };
        match (self.net, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                ip.to_bits() & mask == net.to_bits()
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                ip.to_bits() & mask == net.to_bits()
            }
            _ => false,
        }
    }
}

impl FromStr for Cidr {
    type Err = CidrError;

    fn from_str(s: &str) -> Result<Self, CidrError> {
        let (addr, prefix) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let net: IpAddr = addr.parse().map_err(|_| CidrError::Address(s.to_owned()))?;
        let width = if net.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => width,
            Some(p) if !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) => p
                .parse::<u8>()
                .ok()
                .filter(|n| *n <= width)
                .ok_or_else(|| CidrError::Prefix(s.to_owned()))?,
            Some(_) => return Err(CidrError::Prefix(s.to_owned())),
        };
        let cidr = Cidr { net, prefix };
        if !cidr.contains(net) || matches!(net, IpAddr::V6(v6) if v6.to_ipv4_mapped().is_some()) {
            // `contains` masks the host bits: a network that does not contain its own address
            // has some set. Mapped addresses are written as IPv4 networks.
            return Err(CidrError::HostBits(s.to_owned()));
        }
        Ok(cidr)
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.net, self.prefix)
    }
}

/// Where a listener takes PROXY headers from: only from its trusted networks, within the deadline.
/// From a trusted source the header is required; from any other source a header is a bad
/// connection (closed and counted).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProxyProtocol {
    trusted: Vec<Cidr>,
    /// See [`DEFAULT_PROXY_HEADER_TIMEOUT`].
    pub deadline: Duration,
}

/// A trusted list that is empty or too long.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProxyProtocolError {
    /// No networks: the PROXY protocol would be on for nobody.
    #[error("no trusted networks")]
    Empty,
    /// More than [`MAX_TRUSTED_NETWORKS`].
    #[error("{0} trusted networks, at most {MAX_TRUSTED_NETWORKS}")]
    TooMany(usize),
}

impl ProxyProtocol {
    /// Headers from `trusted` (1..=[`MAX_TRUSTED_NETWORKS`] networks) within `deadline`.
    pub fn new(trusted: Vec<Cidr>, deadline: Duration) -> Result<Self, ProxyProtocolError> {
        match trusted.len() {
            0 => Err(ProxyProtocolError::Empty),
            n if n > MAX_TRUSTED_NETWORKS => Err(ProxyProtocolError::TooMany(n)),
            _ => Ok(ProxyProtocol { trusted, deadline }),
        }
    }

    /// The trusted networks.
    pub fn trusted(&self) -> &[Cidr] {
        &self.trusted
    }

    /// Whether a connection from `peer` must start with a header.
    pub fn trusts(&self, peer: IpAddr) -> bool {
        self.trusted.iter().any(|n| n.contains(peer))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cidr(s: &str) -> Cidr {
        s.parse().unwrap()
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn networks_contain_their_addresses_and_mapped_ipv4() {
        assert!(cidr("10.0.0.0/8").contains(ip("10.255.1.2")));
        assert!(!cidr("10.0.0.0/8").contains(ip("11.0.0.1")));
        assert!(cidr("10.0.0.0/8").contains(ip("::ffff:10.1.2.3")));
        assert!(cidr("127.0.0.1").contains(ip("127.0.0.1")));
        assert!(!cidr("127.0.0.1").contains(ip("127.0.0.2")));
        assert!(cidr("0.0.0.0/0").contains(ip("192.0.2.1")));
        assert!(!cidr("0.0.0.0/0").contains(ip("2001:db8::1")));
        assert!(cidr("::/0").contains(ip("2001:db8::1")));
        assert!(cidr("2001:db8::/32").contains(ip("2001:db8:ffff::1")));
        assert!(cidr("::1").contains(ip("::1")));
        assert!(!cidr("::1").contains(ip("::2")));
    }

    #[test]
    fn bad_networks_are_refused_with_the_reason() {
        assert!(matches!(
            "10.0.0.1/8".parse::<Cidr>(),
            Err(CidrError::HostBits(_))
        ));
        assert!(matches!(
            "10.0.0.0/33".parse::<Cidr>(),
            Err(CidrError::Prefix(_))
        ));
        assert!(matches!(
            "10.0.0.0/+8".parse::<Cidr>(),
            Err(CidrError::Prefix(_))
        ));
        assert!(matches!(
            "10.0.0.0/".parse::<Cidr>(),
            Err(CidrError::Prefix(_))
        ));
        assert!(matches!(
            "::/129".parse::<Cidr>(),
            Err(CidrError::Prefix(_))
        ));
        assert!(matches!(
            "lb.example/8".parse::<Cidr>(),
            Err(CidrError::Address(_))
        ));
        assert!(matches!(
            "::ffff:10.0.0.0/104".parse::<Cidr>(),
            Err(CidrError::HostBits(_))
        ));
        assert_eq!(cidr("fd00::/8").to_string(), "fd00::/8");
    }

    #[test]
    fn the_trusted_list_is_bounded_and_not_empty() {
        let d = DEFAULT_PROXY_HEADER_TIMEOUT;
        assert_eq!(
            ProxyProtocol::new(vec![], d),
            Err(ProxyProtocolError::Empty)
        );
        let many = vec![cidr("10.0.0.0/8"); MAX_TRUSTED_NETWORKS + 1];
        assert!(matches!(
            ProxyProtocol::new(many, d),
            Err(ProxyProtocolError::TooMany(_))
        ));
        let p = ProxyProtocol::new(vec![cidr("10.0.0.0/8"), cidr("::1")], d).unwrap();
        assert!(p.trusts(ip("10.9.9.9")) && p.trusts(ip("::1")));
        assert!(!p.trusts(ip("127.0.0.1")));
    }
}
