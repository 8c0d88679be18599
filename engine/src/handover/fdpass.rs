//! The hand-over conversation over a Unix stream socket: frames (see `wire`) written and read
//! whole, and the sockets of an offer passed after its frame with `SCM_RIGHTS`, in batches.
//!
//! Blocking I/O on a `std` socket: the caller sets the socket's read and write timeouts, which
//! bound every call here (a silent or slow peer fails the call, it never hangs it).

use std::io::{Read, Write};
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;

use super::HandoverError;
use super::wire::{self, HEADER_LEN, Message};

/// Sockets per `sendmsg`: below the kernel's `SCM_MAX_FD` (253).
pub const FDS_PER_MSG: usize = 250;
/// The byte each batch of sockets rides on.
const FD_BATCH_BYTE: u8 = b'F';

/// Writes `msg`, then `fds` (an offer's sockets, in index order).
pub fn send(sock: &UnixStream, msg: &Message, fds: &[BorrowedFd<'_>]) -> Result<(), HandoverError> {
    let frame = wire::encode(msg)?;
    (&*sock)
        .write_all(&frame)
        .map_err(HandoverError::io("sending a frame"))?;
    for batch in fds.chunks(FDS_PER_MSG) {
        let raw: Vec<RawFd> = batch.iter().map(AsRawFd::as_raw_fd).collect();
        send_fds(sock.as_raw_fd(), &raw).map_err(HandoverError::io("passing sockets"))?;
    }
    Ok(())
}

/// Reads one message; for an offer, also the sockets it names (`state.fds` of them), owned
/// (closed on drop) and close-on-exec.
pub fn recv(sock: &UnixStream) -> Result<(Message, Vec<OwnedFd>), HandoverError> {
    let mut header = [0u8; HEADER_LEN];
    // Byte by byte until the magic is whole: a stray peer is refused at its first wrong byte.
    for i in 0..HEADER_LEN {
        (&*sock)
            .read_exact(&mut header[i..=i])
            .map_err(HandoverError::io("reading a frame header"))?;
        wire::decode_header(&header[..=i])?;
    }
    let Some((_, _, len)) = wire::decode_header(&header)? else {
        return Err(HandoverError::Protocol("short header"));
    };
    // Grows with the bytes that arrive, so a claimed length costs nothing until it is sent.
    let mut frame = header.to_vec();
    sock.take(len as u64)
        .read_to_end(&mut frame)
        .map_err(HandoverError::io("reading a frame body"))?;
    let Some((msg, _)) = wire::decode(&frame)? else {
        return Err(HandoverError::Protocol(
            "frame body ends early (peer closed)",
        ));
    };
    let want = match &msg {
        Message::Offer(s) => s.fds as usize,
        _ => 0,
    };
    let mut fds = Vec::with_capacity(want.min(FDS_PER_MSG * 16));
    while fds.len() < want {
        let batch = recv_fds(sock.as_raw_fd(), (want - fds.len()).min(FDS_PER_MSG))
            .map_err(HandoverError::io("receiving sockets"))?;
        if batch.is_empty() {
            return Err(HandoverError::Protocol("a socket batch carried no socket"));
        }
        fds.extend(batch);
    }
    if fds.len() != want {
        return Err(HandoverError::Protocol("more sockets than the offer names"));
    }
    Ok((msg, fds))
}

fn cmsg_space(n: usize) -> usize {
    // SAFETY: CMSG_SPACE only computes a size.
    unsafe { libc::CMSG_SPACE((n * size_of::<RawFd>()) as u32) as usize }
}

fn send_fds(sock: RawFd, fds: &[RawFd]) -> std::io::Result<()> {
    let byte = [FD_BATCH_BYTE];
    let mut iov = libc::iovec {
        iov_base: byte.as_ptr() as *mut libc::c_void,
        iov_len: 1,
    };
    // u64 elements: the control buffer must be aligned for `cmsghdr`.
    let mut control = vec![0u64; cmsg_space(fds.len()).div_ceil(8)];
    // SAFETY: zeroed msghdr is valid; every pointer set below outlives the sendmsg call, and the
    // control buffer holds CMSG_SPACE(len) bytes, enough for one header and `fds`.
    unsafe {
        let mut msg: libc::msghdr = std::mem::zeroed();
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = control.as_mut_ptr().cast();
        msg.msg_controllen = cmsg_space(fds.len()) as _;
        let cmsg = libc::CMSG_FIRSTHDR(&msg);
        (*cmsg).cmsg_level = libc::SOL_SOCKET;
        (*cmsg).cmsg_type = libc::SCM_RIGHTS;
        (*cmsg).cmsg_len = libc::CMSG_LEN(size_of_val(fds) as u32) as _;
        std::ptr::copy_nonoverlapping(fds.as_ptr(), libc::CMSG_DATA(cmsg).cast(), fds.len());
        loop {
            let n = libc::sendmsg(sock, &msg, libc::MSG_NOSIGNAL);
            if n == 1 {
                return Ok(());
            }
            let e = std::io::Error::last_os_error();
            if n < 0 && e.kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            return Err(if n < 0 {
                e
            } else {
                std::io::ErrorKind::WriteZero.into()
            });
        }
    }
}

fn recv_fds(sock: RawFd, max: usize) -> std::io::Result<Vec<OwnedFd>> {
    let mut byte = [0u8];
    let mut iov = libc::iovec {
        iov_base: byte.as_mut_ptr().cast(),
        iov_len: 1,
    };
    let space = cmsg_space(max);
    let mut control = vec![0u64; space.div_ceil(8)];
    let mut out = Vec::new();
    // SAFETY: as in `send_fds`; the kernel writes at most `msg_controllen` bytes of control
    // data, and each fd it passed is taken into an `OwnedFd` exactly once.
    unsafe {
        let mut msg: libc::msghdr = std::mem::zeroed();
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = control.as_mut_ptr().cast();
        msg.msg_controllen = space as _;
        let n = loop {
            let n = libc::recvmsg(sock, &mut msg, libc::MSG_CMSG_CLOEXEC);
            if n < 0 && std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            break n;
        };
        if n < 0 {
            return Err(std::io::Error::last_os_error());
        }
        let mut cmsg = libc::CMSG_FIRSTHDR(&msg);
        while !cmsg.is_null() {
            if (*cmsg).cmsg_level == libc::SOL_SOCKET && (*cmsg).cmsg_type == libc::SCM_RIGHTS {
                let data = libc::CMSG_DATA(cmsg).cast::<RawFd>();
                let bytes = (*cmsg).cmsg_len as usize - libc::CMSG_LEN(0) as usize;
                for i in 0..bytes / size_of::<RawFd>() {
                    out.push(OwnedFd::from_raw_fd(std::ptr::read_unaligned(data.add(i))));
                }
            }
            cmsg = libc::CMSG_NXTHDR(&msg, cmsg);
        }
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        if byte[0] != FD_BATCH_BYTE || msg.msg_flags & libc::MSG_CTRUNC != 0 {
            // `out` drops here: sockets that came with a bad batch are closed, not leaked.
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                "malformed socket batch",
            ));
        }
    }
    Ok(out)
}

#[cfg(test)]
#[path = "fdpass_tests.rs"]
mod tests;
