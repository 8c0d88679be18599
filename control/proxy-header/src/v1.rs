//! The v1 text header: `PROXY TCP4 <src> <dst> <sport> <dport>\r\n` (or `TCP6`, or `UNKNOWN` with
//! anything up to the line end), at most 107 bytes with its `\r\n`.

use std::net::{IpAddr, SocketAddr};

use crate::error::HeaderError;
use crate::header::ProxyHeader;

/// Every v1 header starts with these bytes.
pub const V1_PREFIX: &[u8] = b"PROXY ";
/// The longest v1 line, `\r\n` included (the specification's bound: a TCP6 line with the
/// longest addresses and ports).
pub const V1_MAX_BYTES: usize = 107;

fn malformed(what: &'static str) -> HeaderError {
    HeaderError::V1Malformed { what }
}

/// Parses one whole line, `\r\n` included (the reader hands it over at its `\n`).
pub(crate) fn parse(line: &[u8]) -> Result<ProxyHeader, HeaderError> {
    let body = line
        .strip_suffix(b"\r\n")
        .ok_or(malformed("line does not end with \\r\\n"))?;
    let body = body
        .strip_prefix(V1_PREFIX)
        .ok_or(malformed("no PROXY prefix"))?;
    if let Some(rest) = body.strip_prefix(b"UNKNOWN") {
        // The receiver must ignore what follows UNKNOWN (up to the line end).
        return match rest.first() {
            None | Some(b' ') => Ok(ProxyHeader::Unknown),
            Some(_) => Err(malformed("unknown protocol")),
        };
    }
    let text = std::str::from_utf8(body).map_err(|_| malformed("not ASCII"))?;
    let mut parts = text.split(' ');
    let mut next = |what| parts.next().ok_or(malformed(what));
    let v6 = match next("protocol")? {
        "TCP4" => false,
        "TCP6" => true,
        _ => return Err(malformed("unknown protocol")),
    };
    let src = address(next("source address")?, v6)?;
    let dst = address(next("destination address")?, v6)?;
    let sport = port(next("source port")?)?;
    let dport = port(next("destination port")?)?;
    if parts.next().is_some() {
        return Err(malformed("extra fields"));
    }
    Ok(ProxyHeader::Proxied {
        source: SocketAddr::new(src, sport),
        destination: SocketAddr::new(dst, dport),
    })
}

fn address(text: &str, v6: bool) -> Result<IpAddr, HeaderError> {
    let ip: IpAddr = text.parse().map_err(|_| malformed("bad address"))?;
    if ip.is_ipv6() != v6 {
        return Err(malformed("address of the other family"));
    }
    Ok(ip)
}

/// A decimal port 0..=65535, digits only, no leading zero (the specification's form).
fn port(text: &str) -> Result<u16, HeaderError> {
    let digits_only = !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit());
    let leading_zero = text.len() > 1 && text.starts_with('0');
    if !digits_only || leading_zero {
        return Err(malformed("bad port"));
    }
    text.parse().map_err(|_| malformed("bad port"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tcp4_and_tcp6_lines_parse() {
        let h = parse(b"PROXY TCP4 192.0.2.1 198.51.100.2 56324 443\r\n").unwrap();
        assert_eq!(h.source(), Some("192.0.2.1:56324".parse().unwrap()));
        let h = parse(b"PROXY TCP6 2001:db8::1 ::1 1 65535\r\n").unwrap();
        assert_eq!(h.source(), Some("[2001:db8::1]:1".parse().unwrap()));
        assert_eq!(
            parse(b"PROXY UNKNOWN whatever\r\n").unwrap(),
            ProxyHeader::Unknown
        );
        assert_eq!(parse(b"PROXY UNKNOWN\r\n").unwrap(), ProxyHeader::Unknown);
    }

    #[test]
    fn malformed_lines_are_refused() {
        for bad in [
            &b"PROXY TCP4 192.0.2.1 198.51.100.2 56324 443\n"[..],
            b"PROXY TCP4 192.0.2.1 198.51.100.2 56324\r\n",
            b"PROXY TCP4 192.0.2.1 198.51.100.2 56324 443 9\r\n",
            b"PROXY TCP4 192.0.2.1  198.51.100.2 56324 443\r\n",
            b"PROXY TCP4 2001:db8::1 198.51.100.2 56324 443\r\n",
            b"PROXY TCP6 192.0.2.1 ::1 56324 443\r\n",
            b"PROXY TCP4 192.0.2.1 198.51.100.2 65536 443\r\n",
            b"PROXY TCP4 192.0.2.1 198.51.100.2 +1 443\r\n",
            b"PROXY TCP4 192.0.2.1 198.51.100.2 01 443\r\n",
            b"PROXY UDP4 192.0.2.1 198.51.100.2 1 443\r\n",
            b"PROXY UNKNOWNX\r\n",
        ] {
            assert!(
                matches!(parse(bad), Err(HeaderError::V1Malformed { .. })),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }
}
