//! Per-worker SO_REUSEPORT listeners (socket2): the kernel spreads accepts over the workers.

use std::net::{SocketAddr, TcpListener};

use socket2::{Domain, Protocol, Socket, Type};

use crate::error::EngineError;

/// Listen backlog per worker socket, in connections: absorbs a burst of dials while the core
/// is busy; the kernel caps it at net.core.somaxconn.
const BACKLOG: i32 = 4096;

fn bind_one(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    socket.set_reuse_port(true)?;
    socket.set_nonblocking(true)?;
    socket.set_cloexec(true)?;
    socket.bind(&addr.into())?;
    socket.listen(BACKLOG)?;
    Ok(socket.into())
}

/// Binds `n` listeners on one port. With port 0, the first picks the port and the others join it.
pub(crate) fn bind_group(addr: SocketAddr, n: usize) -> Result<Vec<TcpListener>, EngineError> {
    let err = |source| EngineError::Bind { addr, source };
    let first = bind_one(addr).map_err(err)?;
    let actual = first.local_addr().map_err(err)?;
    let mut out = vec![first];
    for _ in 1..n {
        out.push(bind_one(actual).map_err(|source| EngineError::Bind {
            addr: actual,
            source,
        })?);
    }
    Ok(out)
}
