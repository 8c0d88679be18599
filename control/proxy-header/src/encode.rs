//! Writing a header: what we send when we are the proxy (the private proxy to its backends).

use std::net::{IpAddr, SocketAddr};

use crate::v2::{CMD_LOCAL, CMD_PROXY, TCP4, TCP6, V2_FIXED_BYTES, V2_SIGNATURE, VERSION};

/// Both addresses in one family: IPv4 when both are IPv4, else IPv6 (an IPv4 address as its
/// IPv4-mapped form).
fn same_family(source: SocketAddr, destination: SocketAddr) -> (SocketAddr, SocketAddr) {
    let v6 = |a: SocketAddr| match a.ip() {
        IpAddr::V4(v4) => SocketAddr::new(IpAddr::V6(v4.to_ipv6_mapped()), a.port()),
        IpAddr::V6(_) => a,
    };
    if source.is_ipv4() && destination.is_ipv4() {
        (source, destination)
    } else {
        (v6(source), v6(destination))
    }
}

/// A v2 PROXY header (TCP) for a connection from `source` to `destination`, without TLVs:
/// 28 bytes for IPv4, 52 for IPv6.
pub fn encode_v2(source: SocketAddr, destination: SocketAddr) -> Vec<u8> {
    let (source, destination) = same_family(source, destination);
    let mut out = Vec::with_capacity(V2_FIXED_BYTES + 36);
    out.extend_from_slice(&V2_SIGNATURE);
    out.push(VERSION << 4 | CMD_PROXY);
    let (family, block): (u8, u16) = match source.ip() {
        IpAddr::V4(_) => (TCP4, 12),
        IpAddr::V6(_) => (TCP6, 36),
    };
    out.push(family);
    out.extend_from_slice(&block.to_be_bytes());
    for a in [source, destination] {
        match a.ip() {
            IpAddr::V4(ip) => out.extend_from_slice(&ip.octets()),
            IpAddr::V6(ip) => out.extend_from_slice(&ip.octets()),
        }
    }
    out.extend_from_slice(&source.port().to_be_bytes());
    out.extend_from_slice(&destination.port().to_be_bytes());
    out
}

/// A v2 LOCAL header (the proxy's own connection, e.g. a health check): 16 bytes.
pub fn encode_v2_local() -> [u8; V2_FIXED_BYTES] {
    let mut out = [0u8; V2_FIXED_BYTES];
    out[..12].copy_from_slice(&V2_SIGNATURE);
    out[12] = VERSION << 4 | CMD_LOCAL;
    out
}

/// A v1 line (`PROXY TCP4 ...\r\n` or `TCP6`) for a connection from `source` to `destination`.
pub fn encode_v1(source: SocketAddr, destination: SocketAddr) -> String {
    let (source, destination) = same_family(source, destination);
    let proto = if source.is_ipv4() { "TCP4" } else { "TCP6" };
    format!(
        "PROXY {proto} {} {} {} {}\r\n",
        source.ip(),
        destination.ip(),
        source.port(),
        destination.port()
    )
}
