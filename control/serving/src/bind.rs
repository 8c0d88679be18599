//! Resolving and binding a listener's `host:port` without blocking the runtime: every program
//! binds its listeners here (DNS through `tokio::net::lookup_host`, which runs the lookup on the
//! blocking pool).

use std::io;
use std::net::SocketAddr;

use tandem_types::HostPort;
use tokio::net::TcpListener;

/// Why a listener's address could not be resolved or bound.
#[derive(Debug, thiserror::Error)]
pub enum BindError {
    /// The name lookup failed or found no address.
    #[error("resolving {address}: {source}")]
    Resolve {
        /// The address as configured.
        address: HostPort,
        /// The lookup error (`NotFound` when the name has no address).
        #[source]
        source: io::Error,
    },
    /// No address the name resolves to could be bound.
    #[error("binding {address}: {source}")]
    Bind {
        /// The address as configured.
        address: HostPort,
        /// The error of the last address tried.
        #[source]
        source: io::Error,
    },
}

impl BindError {
    /// A stable label for logs and metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Resolve { .. } => "resolve",
            Self::Bind { .. } => "bind",
        }
    }
}

/// The addresses `address` names, IPv4 first (so that `localhost` binds where clients that
/// dial `localhost` over IPv4 arrive), otherwise in resolver order. Never empty.
pub async fn resolve(address: &HostPort) -> Result<Vec<SocketAddr>, BindError> {
    let resolve_error = |source| BindError::Resolve {
        address: address.clone(),
        source,
    };
    let mut addrs: Vec<SocketAddr> = tokio::net::lookup_host((address.host.as_str(), address.port))
        .await
        .map_err(resolve_error)?
        .collect();
    // Stable: keeps the resolver's order within each family.
    addrs.sort_by_key(|a| !a.is_ipv4());
    if addrs.is_empty() {
        return Err(resolve_error(io::Error::new(
            io::ErrorKind::NotFound,
            "no address",
        )));
    }
    Ok(addrs)
}

/// The first address of [`resolve`] (IPv4 preferred): where a data port that takes one address
/// binds.
pub async fn resolve_one(address: &HostPort) -> Result<SocketAddr, BindError> {
    let addrs = resolve(address).await?;
    // `resolve` never returns an empty list.
    addrs.first().copied().ok_or_else(|| BindError::Resolve {
        address: address.clone(),
        source: io::Error::new(io::ErrorKind::NotFound, "no address"),
    })
}

/// Listen backlog of a control-plane listener, in connections (the kernel caps it at
/// `net.core.somaxconn`; tokio's own default is 1024).
const BACKLOG: i32 = 1024;

/// Resolves `address` and binds the first of its addresses that can be bound. `[::]` serves both
/// families (IPv6-only off, whatever `net.ipv6.bindv6only` says).
pub async fn bind(address: &HostPort) -> Result<TcpListener, BindError> {
    let addrs = resolve(address).await?;
    let mut last = io::Error::new(io::ErrorKind::NotFound, "no address");
    for addr in addrs {
        match bind_addr(addr) {
            Ok(listener) => return Ok(listener),
            Err(e) => last = e,
        }
    }
    Err(BindError::Bind {
        address: address.clone(),
        source: last,
    })
}

fn bind_addr(addr: SocketAddr) -> io::Result<TcpListener> {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    if addr.is_ipv6() && addr.ip().is_unspecified() {
        socket.set_only_v6(false)?;
    }
    // As tokio's `TcpListener::bind`: a restarted server rebinds past TIME_WAIT sockets.
    socket.set_reuse_address(true)?;
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(BACKLOG)?;
    TcpListener::from_std(socket.into())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn hp(host: &str, port: u16) -> HostPort {
        HostPort {
            host: host.into(),
            port,
        }
    }

    #[tokio::test]
    async fn binds_a_literal_and_localhost_prefers_ipv4() {
        let listener = bind(&hp("127.0.0.1", 0)).await.unwrap();
        assert!(listener.local_addr().unwrap().ip().is_loopback());
        let first = resolve_one(&hp("localhost", 0)).await.unwrap();
        assert!(first.is_ipv4(), "{first}");
    }

    #[tokio::test]
    async fn the_ipv6_any_address_serves_both_families_and_ipv4_peers_are_ipv4() {
        let listener = bind(&hp("::", 0)).await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let admission = crate::Admission::new(
            "dual",
            crate::ServingConfig::default(),
            crate::ServingMetrics::default(),
        );
        let (tx, mut rx) = tokio::sync::mpsc::channel(4);
        let acceptor = crate::Acceptor::new(listener, admission, crate::Handshake::None);
        let served = tokio::spawn(acceptor.serve(
            std::future::pending(),
            move |_io, peer, _slot| {
                let tx = tx.clone();
                async move {
                    let _ = tx.send(peer).await;
                }
            },
        ));
        for client in ["127.0.0.1", "::1"] {
            let ip: std::net::IpAddr = client.parse().unwrap();
            let _s = tokio::net::TcpStream::connect((ip, port)).await.unwrap();
            let peer = rx.recv().await.unwrap();
            assert_eq!(peer.ip(), ip, "served as its own family");
        }
        served.abort();
    }

    #[tokio::test]
    async fn a_taken_port_is_a_bind_error_naming_the_address() {
        let taken = bind(&hp("127.0.0.1", 0)).await.unwrap();
        let port = taken.local_addr().unwrap().port();
        let err = bind(&hp("127.0.0.1", port)).await.unwrap_err();
        assert_eq!(err.kind(), "bind");
        assert!(
            err.to_string()
                .starts_with(&format!("binding 127.0.0.1:{port}: ")),
            "{err}"
        );
    }
}
