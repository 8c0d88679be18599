//! The v2 binary header: a 12-byte signature, version/command, family/transport, a big-endian
//! length, then that many bytes: the addresses of the family, then TLVs (type, u16 length, value).

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};

use crate::error::HeaderError;
use crate::header::ProxyHeader;

/// The v2 signature.
pub const V2_SIGNATURE: [u8; 12] = *b"\r\n\r\n\0\r\nQUIT\n";
/// Signature, version/command, family/transport and length: the bytes before the address block.
pub const V2_FIXED_BYTES: usize = 16;

/// Version 2 in the high nibble of byte 12.
pub(crate) const VERSION: u8 = 0x2;
/// Command LOCAL (health checks of the proxy itself).
pub(crate) const CMD_LOCAL: u8 = 0x0;
/// Command PROXY (a relayed connection).
pub(crate) const CMD_PROXY: u8 = 0x1;
/// Family/transport bytes: TCP over IPv4 and over IPv6.
pub(crate) const TCP4: u8 = 0x11;
pub(crate) const TCP6: u8 = 0x21;
/// Address block lengths of IPv4, IPv6 and UNIX addresses.
const INET_LEN: usize = 12;
const INET6_LEN: usize = 36;
const UNIX_LEN: usize = 216;

/// The total length (fixed part plus block) a complete fixed part declares.
pub(crate) fn total_len(fixed: &[u8; V2_FIXED_BYTES]) -> usize {
    V2_FIXED_BYTES + usize::from(u16::from_be_bytes([fixed[14], fixed[15]]))
}

/// Checks the version and command of a fixed part (so that a bad one is refused before its block
/// is waited for).
pub(crate) fn check_fixed(fixed: &[u8; V2_FIXED_BYTES]) -> Result<(), HeaderError> {
    let version = fixed[12] >> 4;
    if version != VERSION {
        return Err(HeaderError::V2Version { version });
    }
    let command = fixed[12] & 0x0f;
    if command != CMD_LOCAL && command != CMD_PROXY {
        return Err(HeaderError::V2Command { command });
    }
    Ok(())
}

/// Parses a whole header (fixed part checked by [`check_fixed`], `header.len() == total_len`).
pub(crate) fn parse(header: &[u8]) -> Result<ProxyHeader, HeaderError> {
    let (fixed, block) = header.split_at(V2_FIXED_BYTES.min(header.len()));
    let command = fixed.get(12).map_or(CMD_LOCAL, |b| b & 0x0f);
    if command == CMD_LOCAL {
        // The specification: a LOCAL header's block (family included) is discarded.
        return Ok(ProxyHeader::Local);
    }
    let family = fixed.get(13).copied().unwrap_or(0);
    // High nibble: 0 UNSPEC, 1 INET, 2 INET6, 3 UNIX; low nibble: 0 UNSPEC, 1 STREAM, 2 DGRAM.
    let (af, transport) = (usize::from(family >> 4), family & 0x0f);
    if af > 3 || transport > 1 {
        return Err(HeaderError::V2Unsupported { byte: family });
    }
    let min = [0, INET_LEN, INET6_LEN, UNIX_LEN][af];
    if block.len() < min {
        return Err(HeaderError::V2AddressTooShort { len: block.len() });
    }
    skip_tlvs(&block[min..])?;
    Ok(match family {
        TCP4 | TCP6 => addresses(&block[..min]),
        _ => ProxyHeader::Unknown,
    })
}

fn addresses(a: &[u8]) -> ProxyHeader {
    let port = |at: usize| u16::from_be_bytes([a[at], a[at + 1]]);
    let (source, destination) = if a.len() == INET_LEN {
        let ip = |at: usize| Ipv4Addr::new(a[at], a[at + 1], a[at + 2], a[at + 3]);
        (
            SocketAddr::new(ip(0).into(), port(8)),
            SocketAddr::new(ip(4).into(), port(10)),
        )
    } else {
        let ip = |at: usize| {
            let mut o = [0u8; 16];
            o.copy_from_slice(&a[at..at + 16]);
            Ipv6Addr::from(o)
        };
        (
            SocketAddr::new(ip(0).into(), port(32)),
            SocketAddr::new(ip(16).into(), port(34)),
        )
    };
    ProxyHeader::Proxied {
        source,
        destination,
    }
}

/// Walks the TLVs after the addresses: each must fit within the header. Their contents are not
/// used (ALPN, authority, CRC, SSL details, cloud endpoint ids): they are skipped.
fn skip_tlvs(mut rest: &[u8]) -> Result<(), HeaderError> {
    while !rest.is_empty() {
        if rest.len() < 3 {
            return Err(HeaderError::V2Tlv);
        }
        let len = usize::from(u16::from_be_bytes([rest[1], rest[2]]));
        rest = rest.get(3 + len..).ok_or(HeaderError::V2Tlv)?;
    }
    Ok(())
}
