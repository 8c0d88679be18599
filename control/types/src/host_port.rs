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

/// Why a text is not a `host:port` (the text is quoted in the message, for settings errors).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HostPortError {
    /// No `:port` at all.
    #[error("{0:?} is not host:port")]
    NoPort(String),
    /// `[v6` without its `]`.
    #[error("{0:?}: unbalanced brackets")]
    UnbalancedBrackets(String),
    /// An IPv6 address without brackets.
    #[error("{0:?}: write IPv6 hosts as [addr]:port")]
    UnbracketedIpv6(String),
    /// Nothing before the `:`.
    #[error("{0:?} has no host")]
    NoHost(String),
    /// The port is a number above 65535.
    #[error("port {0} is out of range (0..=65535)")]
    PortOutOfRange(u64),
    /// The port is not a number.
    #[error("{text:?}: port {port:?} is not a number")]
    PortNotANumber {
        /// The whole text.
        text: String,
        /// The port part.
        port: String,
    },
}

impl FromStr for HostPort {
    type Err = HostPortError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (host, port) = s
            .rsplit_once(':')
            .ok_or_else(|| HostPortError::NoPort(s.to_owned()))?;
        let host = match host.strip_prefix('[') {
            Some(v6) => v6
                .strip_suffix(']')
                .ok_or_else(|| HostPortError::UnbalancedBrackets(s.to_owned()))?,
            None if host.contains(':') => {
                return Err(HostPortError::UnbracketedIpv6(s.to_owned()));
            }
            None => host,
        };
        if host.is_empty() {
            return Err(HostPortError::NoHost(s.to_owned()));
        }
        let port = match port.parse::<u64>() {
            Ok(p) => u16::try_from(p).map_err(|_| HostPortError::PortOutOfRange(p))?,
            Err(_) => {
                return Err(HostPortError::PortNotANumber {
                    text: s.to_owned(),
                    port: port.to_owned(),
                });
            }
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
