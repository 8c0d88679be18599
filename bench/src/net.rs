//! Loopback sockets for the load generator: dialling from spread source addresses, accepting
//! with a deadline, and a free port for a baseline's configuration.

use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use socket2::{Domain, Protocol, SockAddr, Socket, Type};

/// Upper bound on any one blocking client step (a stuck relay fails the run instead of
/// hanging it), in seconds.
pub const STEP: Duration = Duration::from_secs(20);

/// Linux's IP_BIND_ADDRESS_NO_PORT (include/uapi/linux/in.h): bind picks the address only and
/// the port is chosen at connect by the 4-tuple, so one source address serves many
/// destinations' worth of ephemeral ports.
const IP_BIND_ADDRESS_NO_PORT: libc::c_int = 24;

/// The `i`-th of `n` source addresses 127.0.0.1 ..= 127.0.0.n (`n` = 0 means the kernel's choice).
pub fn source_addr(i: usize, n: usize) -> Option<Ipv4Addr> {
    (n > 0).then(|| Ipv4Addr::new(127, 0, 0, 1 + (i % n.min(250)) as u8))
}

/// Connects to `to`, from `from` when given (bound with IP_BIND_ADDRESS_NO_PORT), with
/// TCP_NODELAY and [`STEP`] timeouts.
pub fn dial(to: SocketAddr, from: Option<Ipv4Addr>) -> io::Result<TcpStream> {
    let s = Socket::new(Domain::IPV4, Type::STREAM.cloexec(), Some(Protocol::TCP))?;
    if let Some(ip) = from {
        let one: libc::c_int = 1;
        // SAFETY: setsockopt on an open socket with a valid int option value.
        let rc = unsafe {
            libc::setsockopt(
                s.as_raw_fd(),
                libc::IPPROTO_IP,
                IP_BIND_ADDRESS_NO_PORT,
                (&one as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        if rc != 0 {
            return Err(io::Error::last_os_error());
        }
        s.bind(&SockAddr::from(SocketAddrV4::new(ip, 0)))?;
    }
    s.connect_timeout(&SockAddr::from(to), STEP)?;
    let s: TcpStream = s.into();
    configure(&s)?;
    Ok(s)
}

/// TCP_NODELAY and [`STEP`] read/write timeouts.
pub fn configure(s: &TcpStream) -> io::Result<()> {
    s.set_nodelay(true)?;
    s.set_read_timeout(Some(STEP))?;
    s.set_write_timeout(Some(STEP))
}

/// Accepts one connection within `timeout` (`Ok(None)` when none arrived). The listener is
/// non-blocking (see [`listen`]): when several threads poll one listener, all wake for one
/// connection and the losers see `WouldBlock` and poll again instead of blocking in accept.
pub fn accept_timeout(l: &TcpListener, timeout: Duration) -> io::Result<Option<TcpStream>> {
    let until = Instant::now() + timeout;
    loop {
        let left = until.saturating_duration_since(Instant::now());
        let mut pfd = libc::pollfd {
            fd: l.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        let ms = libc::c_int::try_from(left.as_millis()).unwrap_or(libc::c_int::MAX);
        // SAFETY: poll on one valid pollfd.
        let rc = unsafe { libc::poll(&mut pfd, 1, ms) };
        if rc < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        if rc == 0 {
            return Ok(None);
        }
        match l.accept() {
            Ok((s, _)) => {
                // Accepted sockets do not inherit O_NONBLOCK on Linux; set it explicitly anyway.
                s.set_nonblocking(false)?;
                configure(&s)?;
                return Ok(Some(s));
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock && !left.is_zero() => continue,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(None),
            Err(e) => return Err(e),
        }
    }
}

/// A non-blocking listener on 127.0.0.1 with an ephemeral port and a deep backlog (4096
/// pending connects: the setup-rate run offers up to a few hundred at once). Accept with
/// [`accept_timeout`].
pub fn listen() -> io::Result<TcpListener> {
    let s = Socket::new(Domain::IPV4, Type::STREAM.cloexec(), Some(Protocol::TCP))?;
    s.set_reuse_address(true)?;
    s.bind(&SockAddr::from(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 0)))?;
    s.listen(4096)?;
    s.set_nonblocking(true)?;
    Ok(s.into())
}

/// A port on 127.0.0.1 that was free a moment ago (for a baseline's config file; a lost race
/// shows up as the baseline failing to start, which the caller retries).
pub fn free_port() -> io::Result<u16> {
    Ok(TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?
        .local_addr()?
        .port())
}

/// Writes `msg` to `a`, reads it on `b`, writes it back on `b` and reads it on `a`; checks the
/// bytes that came back.
pub fn echo_through(a: &mut TcpStream, b: &mut TcpStream, msg: &[u8]) -> io::Result<()> {
    let mut buf = vec![0u8; msg.len()];
    a.write_all(msg)?;
    b.read_exact(&mut buf)?;
    b.write_all(&buf)?;
    a.read_exact(&mut buf)?;
    if buf != msg {
        return Err(io::Error::new(io::ErrorKind::InvalidData, "echo corrupted"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn source_addresses_cycle_within_loopback() {
        assert_eq!(source_addr(0, 0), None);
        assert_eq!(source_addr(0, 4), Some(Ipv4Addr::new(127, 0, 0, 1)));
        assert_eq!(source_addr(5, 4), Some(Ipv4Addr::new(127, 0, 0, 2)));
    }

    #[test]
    fn dial_from_a_spread_address_and_accept() {
        let l = listen().unwrap();
        let to = l.local_addr().unwrap();
        let mut a = dial(to, Some(Ipv4Addr::new(127, 0, 0, 3))).unwrap();
        let mut b = accept_timeout(&l, STEP).unwrap().expect("accepted");
        assert_eq!(b.peer_addr().unwrap().ip(), Ipv4Addr::new(127, 0, 0, 3));
        echo_through(&mut a, &mut b, b"ping").unwrap();
        assert!(
            accept_timeout(&l, Duration::from_millis(10))
                .unwrap()
                .is_none()
        );
    }
}
