//! Per-worker SO_REUSEPORT listeners (socket2): the kernel spreads accepts over the workers.
//!
//! The relayed sockets' options (TCP_NODELAY, keepalive) are set once on the listener: Linux
//! copies them into every connection it accepts, which saves five setsockopt calls per
//! accepted connection on the setup path (the `accepted_sockets_inherit_the_options` test
//! holds the kernel to it).

use std::net::{SocketAddr, TcpListener};
use std::time::Duration;

use socket2::{Domain, Protocol, Socket, TcpKeepalive, Type};

use crate::error::EngineError;

/// Options every accepted connection inherits from its listener.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct ConnOptions {
    /// TCP_NODELAY.
    pub nodelay: bool,
    /// Keepalive idle time (probes every quarter of it, 4 of them); `None` = off.
    pub keepalive: Option<Duration>,
}

fn set_conn_options(socket: &Socket, o: ConnOptions) -> std::io::Result<()> {
    socket.set_tcp_nodelay(o.nodelay)?;
    if let Some(idle) = o.keepalive {
        let ka = TcpKeepalive::new()
            .with_time(idle)
            .with_interval(idle / 4)
            .with_retries(4);
        socket.set_tcp_keepalive(&ka)?;
    }
    Ok(())
}

/// Listen backlog per worker socket, in connections: absorbs a burst of dials while the core
/// is busy; the kernel caps it at net.core.somaxconn.
const BACKLOG: i32 = 4096;

fn bind_one(addr: SocketAddr, o: ConnOptions) -> std::io::Result<TcpListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    set_conn_options(&socket, o)?;
    socket.set_reuse_address(true)?;
    socket.set_reuse_port(true)?;
    socket.set_nonblocking(true)?;
    socket.set_cloexec(true)?;
    if addr.is_ipv6() && addr.ip().is_unspecified() {
        // `[::]` serves both families whatever `net.ipv6.bindv6only` says.
        socket.set_only_v6(false)?;
    }
    socket.bind(&addr.into())?;
    socket.listen(BACKLOG)?;
    Ok(socket.into())
}

/// Binds `n` listeners on one port. With port 0, the first picks the port and the others join it.
pub(crate) fn bind_group(
    addr: SocketAddr,
    n: usize,
    o: ConnOptions,
) -> Result<Vec<TcpListener>, EngineError> {
    let err = |source| EngineError::Bind { addr, source };
    let first = bind_one(addr, o).map_err(err)?;
    let actual = first.local_addr().map_err(err)?;
    let mut out = vec![first];
    for _ in 1..n {
        out.push(bind_one(actual, o).map_err(|source| EngineError::Bind {
            addr: actual,
            source,
        })?);
    }
    Ok(out)
}

/// The distinct addresses of one port: `first`, then `more` without duplicates and without
/// `0.0.0.0` when `[::]` is among them (a dual-stack socket serves IPv4 too, and the two cannot
/// share a port).
pub(crate) fn port_addresses(first: SocketAddr, more: &[SocketAddr]) -> Vec<SocketAddr> {
    let all: Vec<SocketAddr> = std::iter::once(first).chain(more.iter().copied()).collect();
    let dual_stack = all.iter().any(|a| a.is_ipv6() && a.ip().is_unspecified());
    let mut out: Vec<SocketAddr> = Vec::with_capacity(all.len());
    for a in all {
        let covered = dual_stack && a.is_ipv4() && a.ip().is_unspecified();
        if !covered && !out.contains(&a) {
            out.push(a);
        }
    }
    out
}

/// The host has no such address or family (IPv6 disabled, an address not configured here).
fn family_missing(e: &std::io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EADDRNOTAVAIL | libc::EAFNOSUPPORT)
    )
}

/// Binds one port on every address of `first` and `more` (see [`port_addresses`]), `n` members
/// each: `result[core]` holds core `core`'s member of every address, the first address's first.
/// With port 0, the first address picks the port and every other binds the same.
pub(crate) fn bind_port(
    first: SocketAddr,
    more: &[SocketAddr],
    n: usize,
    o: ConnOptions,
) -> Result<Vec<Vec<TcpListener>>, EngineError> {
    let addrs = port_addresses(first, more);
    let mut per_core: Vec<Vec<TcpListener>> = (0..n).map(|_| Vec::new()).collect();
    let mut port = None;
    for mut addr in addrs {
        if let Some(p) = port {
            addr.set_port(p);
        }
        let group = match bind_group(addr, n, o) {
            Ok(g) => g,
            // A further address of a family this host lacks (IPv6 disabled): serve the rest.
            Err(EngineError::Bind { source, .. }) if port.is_some() && family_missing(&source) => {
                tracing::warn!(%addr, error = %source, "skipping an address this host cannot bind");
                continue;
            }
            Err(e) => return Err(e),
        };
        if port.is_none() {
            let got = group.first().map(TcpListener::local_addr).transpose();
            port = got
                .map_err(|source| EngineError::Bind { addr, source })?
                .map(|a| a.port());
        }
        for (core, l) in group.into_iter().enumerate() {
            per_core[core].push(l);
        }
    }
    Ok(per_core)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn accept_one(o: ConnOptions) -> Socket {
        let l = bind_group("127.0.0.1:0".parse().unwrap(), 1, o)
            .unwrap()
            .remove(0);
        l.set_nonblocking(false).unwrap();
        let _client = std::net::TcpStream::connect(l.local_addr().unwrap()).unwrap();
        Socket::from(l.accept().unwrap().0)
    }

    #[test]
    fn accepted_sockets_inherit_the_options() {
        let s = accept_one(ConnOptions {
            nodelay: true,
            keepalive: Some(Duration::from_secs(40)),
        });
        assert!(s.tcp_nodelay().unwrap());
        assert!(s.keepalive().unwrap());
        assert_eq!(s.tcp_keepalive_time().unwrap(), Duration::from_secs(40));
        assert_eq!(s.tcp_keepalive_interval().unwrap(), Duration::from_secs(10));
        assert_eq!(s.tcp_keepalive_retries().unwrap(), 4);
        let s = accept_one(ConnOptions {
            nodelay: false,
            keepalive: None,
        });
        assert!(!s.tcp_nodelay().unwrap());
        assert!(!s.keepalive().unwrap());
    }

    #[test]
    fn a_port_binds_each_distinct_address_once_and_the_ipv6_any_covers_the_ipv4_any() {
        let sa = |s: &str| -> SocketAddr { s.parse().unwrap() };
        assert_eq!(
            port_addresses(sa("127.0.0.1:7"), &[sa("[::1]:7"), sa("127.0.0.1:7")]),
            vec![sa("127.0.0.1:7"), sa("[::1]:7")]
        );
        assert_eq!(
            port_addresses(sa("0.0.0.0:7"), &[sa("[::]:7")]),
            vec![sa("[::]:7")]
        );
        let o = ConnOptions {
            nodelay: true,
            keepalive: None,
        };
        let per_core = bind_port(sa("127.0.0.1:0"), &[sa("[::1]:0")], 2, o).unwrap();
        assert_eq!(per_core.len(), 2);
        let port = per_core[0][0].local_addr().unwrap().port();
        for core in &per_core {
            let addrs: Vec<SocketAddr> = core.iter().map(|l| l.local_addr().unwrap()).collect();
            assert_eq!(
                addrs,
                vec![
                    SocketAddr::from(([127, 0, 0, 1], port)),
                    SocketAddr::new("::1".parse().unwrap(), port)
                ]
            );
        }
    }
}
