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

/// Sets FD_CLOEXEC. monoio's io_uring accept passes no flags (its epoll path uses accept4
/// with SOCK_CLOEXEC), so without this every relayed socket leaked into processes the
/// control plane spawns. A fork on another thread between accept and this call can still
/// inherit the fd; the window is one syscall.
pub fn set_cloexec(fd: RawFd) -> io::Result<()> {
    // SAFETY: plain fcntl on an fd the caller owns; F_SETFD takes an int flag set.
    let rc = unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}
