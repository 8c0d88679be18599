//! `host:port` addresses as settings and directory records write them.

use std::fmt;
use std::net::SocketAddr;
use std::str::FromStr;

/// A `host:port` (or `[v6]:port`) address, resolved when a listener binds or a client dials,
/// because settings name hosts (`localhost:8888`) and resolution is I/O.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct HostPort {
    /// Host name or IP literal (without brackets).
    pub host: String,
    /// TCP port; 0 asks the OS for a free port (tests).
    pub port: u16,
}

impl From<SocketAddr> for HostPort {
    fn from(addr: SocketAddr) -> Self {
        Self {
            host: addr.ip().to_string(),
            port: addr.port(),
        }
    }
}

impl FromStr for HostPort {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (host, port) = s
            .rsplit_once(':')
            .ok_or_else(|| format!("{s:?} is not host:port"))?;
        let host = match host.strip_prefix('[') {
            Some(v6) => v6
                .strip_suffix(']')
                .ok_or_else(|| format!("{s:?}: unbalanced brackets"))?,
            None if host.contains(':') => {
                return Err(format!("{s:?}: write IPv6 hosts as [addr]:port"));
            }
            None => host,
        };
        if host.is_empty() {
            return Err(format!("{s:?} has no host"));
        }
        let port = match port.parse::<u64>() {
            Ok(p) => {
                u16::try_from(p).map_err(|_| format!("port {p} is out of range (0..=65535)"))?
            }
            Err(_) => return Err(format!("{s:?}: port {port:?} is not a number")),
        };
        Ok(Self {
            host: host.to_owned(),
            port,
        })
    }
}

impl fmt::Display for HostPort {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}
