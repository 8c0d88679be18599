//! What an inbound header says.

use std::net::SocketAddr;

/// One parsed PROXY header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProxyHeader {
    /// v2 LOCAL: the proxy's own connection (a health check); the socket's addresses stand.
    Local,
    /// v1 `UNKNOWN`, or v2 PROXY with the UNSPEC or UNIX family: the proxy could not name the
    /// client; the socket's addresses stand.
    Unknown,
    /// A proxied TCP connection over IPv4 or IPv6.
    Proxied {
        /// The client's address: the one every limit, log line and metric uses.
        source: SocketAddr,
        /// The address the client connected to (the load balancer's front).
        destination: SocketAddr,
    },
}

impl ProxyHeader {
    /// The client's address when the header names one.
    pub fn source(&self) -> Option<SocketAddr> {
        match self {
            ProxyHeader::Proxied { source, .. } => Some(*source),
            ProxyHeader::Local | ProxyHeader::Unknown => None,
        }
    }

    /// A stable label for logs and metrics (`local`, `unknown`, `proxied`).
    pub fn kind(&self) -> &'static str {
        match self {
            ProxyHeader::Local => "local",
            ProxyHeader::Unknown => "unknown",
            ProxyHeader::Proxied { .. } => "proxied",
        }
    }
}
