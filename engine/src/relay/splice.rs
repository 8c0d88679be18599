//! Thin, safe wrappers around the syscalls of the relay (all non-blocking).

use std::io;
use std::os::fd::RawFd;

/// Outcome of one non-blocking syscall.
#[derive(Debug, PartialEq, Eq)]
pub enum Step {
    /// Moved this many bytes.
    Moved(usize),
    /// End of stream at the source.
    Eof,
    /// Would block; wait for readiness.
    WouldBlock,
}

fn step(rc: isize) -> io::Result<Step> {
    if rc > 0 {
        return Ok(Step::Moved(rc as usize));
    }
    if rc == 0 {
        return Ok(Step::Eof);
    }
    let e = io::Error::last_os_error();
    match e.kind() {
        io::ErrorKind::WouldBlock => Ok(Step::WouldBlock),
        io::ErrorKind::Interrupted => Ok(Step::WouldBlock),
        _ => Err(e),
    }
}

/// splice(2) `len` bytes from `from` to `to` with SPLICE_F_MOVE | SPLICE_F_NONBLOCK. One of
/// the two must be a pipe; sockets are non-blocking, so this never sleeps.
pub fn splice(from: RawFd, to: RawFd, len: usize) -> io::Result<Step> {
    let flags = libc::SPLICE_F_MOVE | libc::SPLICE_F_NONBLOCK;
    // SAFETY: null offsets are allowed for pipes and sockets; the fds are open for the call
    // (owned by the caller's streams/pipes which outlive it).
    let rc = unsafe {
        libc::splice(
            from,
            std::ptr::null_mut(),
            to,
            std::ptr::null_mut(),
            len,
            flags,
        )
    };
    step(rc)
}

/// recv(2) with MSG_DONTWAIT into `buf`.
pub fn recv(fd: RawFd, buf: &mut [u8]) -> io::Result<Step> {
    // SAFETY: `buf` is valid and writable for `buf.len()` bytes for the whole call.
    let rc = unsafe { libc::recv(fd, buf.as_mut_ptr().cast(), buf.len(), libc::MSG_DONTWAIT) };
    step(rc)
}

/// send(2) with MSG_DONTWAIT | MSG_NOSIGNAL from `buf` (a zero return is reported as WouldBlock).
pub fn send(fd: RawFd, buf: &[u8]) -> io::Result<Step> {
    let flags = libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL;
    // SAFETY: `buf` is valid and readable for `buf.len()` bytes for the whole call.
    let rc = unsafe { libc::send(fd, buf.as_ptr().cast(), buf.len(), flags) };
    match step(rc)? {
        Step::Eof => Ok(Step::WouldBlock),
        s => Ok(s),
    }
}

/// shutdown(2) of the write half: the peer reads EOF once the queued bytes are delivered.
pub fn shutdown_write(fd: RawFd) {
    // SAFETY: plain syscall on an open fd; an error (peer already gone) changes nothing for us.
    let _ = unsafe { libc::shutdown(fd, libc::SHUT_WR) };
}

/// shutdown(2) of a listening socket: it stops listening at once (queued, unaccepted
/// connections are reset), whenever the driver gets round to closing the fd itself.
pub fn stop_listening(fd: RawFd) {
    // SAFETY: plain syscall on an open fd; an error (already closed) changes nothing for us.
    let _ = unsafe { libc::shutdown(fd, libc::SHUT_RDWR) };
}

/// Sets SO_LINGER {on, 0} so that closing the socket sends RST instead of FIN.
pub fn set_reset_on_close(fd: RawFd) {
    let linger = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: `linger` is a valid `struct linger` living across the call; its size is passed.
    let _ = unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            (&linger as *const libc::linger).cast(),
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        )
    };
}

/// accept4(2) of one pending connection with SOCK_NONBLOCK | SOCK_CLOEXEC: the socket comes
/// non-blocking (our syscalls never sleep on a core thread) and closed on exec (never leaked
/// into a process the control plane spawns) without a further syscall. `Ok(None)` when no
/// connection is pending. A connection reset before it was accepted (ECONNABORTED) is skipped.
pub fn accept_nonblocking(
    listener: RawFd,
) -> io::Result<Option<(std::net::TcpStream, std::net::SocketAddr)>> {
    // Bounded: ECONNABORTED means one fewer connection pending; at most the backlog retries.
    loop {
        // SAFETY: try_init hands accept4 a zeroed sockaddr_storage and its length, as accept4
        // requires; the fd it returns is owned by nobody else.
        let r = unsafe {
            socket2::SockAddr::try_init(|storage, len| {
                let fd = libc::accept4(
                    listener,
                    storage.cast(),
                    len,
                    libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
                );
                if fd < 0 {
                    Err(io::Error::last_os_error())
                } else {
                    Ok(fd)
                }
            })
        };
        match r {
            Ok((fd, addr)) => {
                // SAFETY: accept4 returned a new, open socket fd that we alone own.
                let stream =
                    unsafe { <std::net::TcpStream as std::os::fd::FromRawFd>::from_raw_fd(fd) };
                let peer = addr.as_socket().ok_or_else(|| {
                    io::Error::new(io::ErrorKind::InvalidData, "accepted a non-IP peer")
                })?;
                return Ok(Some((stream, peer)));
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(None),
            Err(e)
                if e.kind() == io::ErrorKind::Interrupted
                    || e.raw_os_error() == Some(libc::ECONNABORTED) => {}
            Err(e) => return Err(e),
        }
    }
}
