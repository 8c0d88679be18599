//! Resolving and binding a listener's `host:port` without blocking the runtime: every program
//! binds its listeners here (DNS through `tokio::net::lookup_host`, which runs the lookup on the
//! blocking pool).

use std::io;
use std::net::SocketAddr;

use tandem_types::HostPort;
use tokio::net::TcpListener;
use tracing::{info, warn};

use crate::group::{ListenerGroup, MAX_ADDRESSES_PER_LISTENER};

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
    /// An address the name resolves to could not be bound.
    #[error("binding {address}: {source}")]
    Bind {
        /// The address as configured.
        address: HostPort,
        /// The error of the address that failed.
        #[source]
        source: io::Error,
    },
    /// The name resolves to more distinct addresses than one listener binds.
    #[error(
        "{address} resolves to {count} addresses, more than {MAX_ADDRESSES_PER_LISTENER} for one listener"
    )]
    TooMany {
        /// The address as configured.
        address: HostPort,
        /// Distinct addresses it resolved to.
        count: usize,
    },
}

impl BindError {
    /// A stable label for logs and metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Resolve { .. } => "resolve",
            Self::Bind { .. } => "bind",
            Self::TooMany { .. } => "too_many_addresses",
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

/// The first address of [`resolve`] (IPv4 preferred): where a dialer that takes one address
/// connects.
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

/// Times a group on port 0 is bound afresh when a further address finds the first one's port
/// taken in its family (another program holds it there): a fresh port is almost always free.
const PORT_ZERO_ATTEMPTS: usize = 4;

/// The distinct addresses to bind for `addrs` (resolver answers, IPv4 first): duplicates
/// dropped, and `0.0.0.0` dropped beside `[::]` (a dual-stack socket serves IPv4 too, and the
/// two cannot share a port). Refused above [`MAX_ADDRESSES_PER_LISTENER`].
pub fn plan(address: &HostPort, addrs: &[SocketAddr]) -> Result<Vec<SocketAddr>, BindError> {
    let dual_stack = addrs.iter().any(|a| a.is_ipv6() && a.ip().is_unspecified());
    let mut out: Vec<SocketAddr> = Vec::with_capacity(addrs.len());
    for a in addrs {
        let covered = dual_stack && a.is_ipv4() && a.ip().is_unspecified();
        if !covered && !out.contains(a) {
            out.push(*a);
        }
    }
    if out.len() > MAX_ADDRESSES_PER_LISTENER {
        return Err(BindError::TooMany {
            address: address.clone(),
            count: out.len(),
        });
    }
    Ok(out)
}

/// Resolves `address` and binds one socket per distinct address it names (see [`plan`]), all on
/// one port: with port 0, the first picks it and the others bind the same. An address whose
/// family this host lacks (no IPv6 configured) is skipped with a warning while another binds;
/// any other failure fails the whole listener. `[::]` serves both families (IPv6-only off,
/// whatever `net.ipv6.bindv6only` says).
pub async fn bind(address: &HostPort) -> Result<ListenerGroup, BindError> {
    let addrs = plan(address, &resolve(address).await?)?;
    let bind_error = |source| BindError::Bind {
        address: address.clone(),
        source,
    };
    let mut attempts = 0;
    loop {
        attempts += 1;
        match bind_all(&addrs) {
            Ok(members) => {
                let group = ListenerGroup::new(members).ok_or_else(|| {
                    bind_error(io::Error::new(io::ErrorKind::NotFound, "no address"))
                })?;
                if group.len() > 1 {
                    let addrs = group.local_addrs().unwrap_or_default();
                    info!(configured = %address, addresses = ?addrs, "one listener on several addresses");
                }
                return Ok(group);
            }
            Err(Failure::LaterInUse(_)) if address.port == 0 && attempts < PORT_ZERO_ATTEMPTS => {}
            Err(Failure::First(e) | Failure::LaterInUse(e) | Failure::Later(e)) => {
                return Err(bind_error(e));
            }
        }
    }
}

/// Why [`bind_all`] failed: on the first address, or on a further one (in use: a port-0 group
/// may retry on a fresh port).
enum Failure {
    First(io::Error),
    LaterInUse(io::Error),
    Later(io::Error),
}

fn bind_all(addrs: &[SocketAddr]) -> Result<Vec<TcpListener>, Failure> {
    let mut members: Vec<TcpListener> = Vec::with_capacity(addrs.len());
    let mut port = None;
    let mut last = io::Error::new(io::ErrorKind::NotFound, "no address");
    for addr in addrs {
        let mut at = *addr;
        if let Some(p) = port {
            at.set_port(p);
        }
        match bind_addr(at) {
            Ok(l) => {
                if port.is_none() {
                    port = Some(l.local_addr().map_err(Failure::First)?.port());
                }
                members.push(l);
            }
            Err(e) if family_missing(&e) => {
                warn!(address = %at, error = %e, "skipping an address this host cannot bind");
                last = e;
            }
            Err(e) if members.is_empty() => return Err(Failure::First(e)),
            Err(e) if e.kind() == io::ErrorKind::AddrInUse => return Err(Failure::LaterInUse(e)),
            Err(e) => return Err(Failure::Later(e)),
        }
    }
    if members.is_empty() {
        return Err(Failure::First(last));
    }
    Ok(members)
}

/// The host has no such address or family (IPv6 disabled, an address not configured here).
fn family_missing(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EADDRNOTAVAIL | libc::EAFNOSUPPORT)
    )
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

    fn sa(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn the_plan_drops_duplicates_and_the_ipv4_any_beside_the_dual_stack_any() {
        let a = hp("x", 80);
        let both = plan(
            &a,
            &[sa("127.0.0.1:80"), sa("[::1]:80"), sa("127.0.0.1:80")],
        )
        .unwrap();
        assert_eq!(both, vec![sa("127.0.0.1:80"), sa("[::1]:80")]);
        let any = plan(&a, &[sa("0.0.0.0:80"), sa("[::]:80")]).unwrap();
        assert_eq!(any, vec![sa("[::]:80")]);
        let v4_any = plan(&a, &[sa("0.0.0.0:80"), sa("[::1]:80")]).unwrap();
        assert_eq!(v4_any, vec![sa("0.0.0.0:80"), sa("[::1]:80")]);
    }

    #[test]
    fn more_than_eight_distinct_addresses_are_refused_naming_the_count() {
        let many: Vec<SocketAddr> = (1..=9).map(|i| sa(&format!("127.0.0.{i}:80"))).collect();
        let err = plan(&hp("multi.example", 80), &many).unwrap_err();
        assert_eq!(err.kind(), "too_many_addresses");
        assert!(
            err.to_string()
                .contains("resolves to 9 addresses, more than 8"),
            "{err}"
        );
        assert_eq!(plan(&hp("x", 80), &many[..8]).unwrap().len(), 8);
    }

    #[tokio::test]
    async fn a_literal_binds_one_socket_and_the_group_reports_it() {
        let group = bind(&hp("127.0.0.1", 0)).await.unwrap();
        assert_eq!(group.len(), 1);
        assert_eq!(
            group.local_addrs().unwrap(),
            vec![group.local_addr().unwrap()]
        );
    }
}
