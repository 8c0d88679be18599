//! The new process's side: say hello on the inherited socket, receive the state with its
//! sockets, and after adopting it say `Ready` (or `Refuse`, with why).

use std::os::fd::{FromRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::time::Duration;

use tandem_engine::handover::{Bundle, HandoverError, ListenerRole, Message, fdpass, wire};
use tandem_serving::ListenerGroup;
use tokio::net::TcpListener;

use super::{UPGRADE_FD, UPGRADE_FD_ENV};
use crate::ProxyError;

/// How long the new process waits for the old one's offer and its sockets.
const OFFER_WITHIN: Duration = Duration::from_secs(60);

/// What the new process inherited, until it reports ready.
pub struct Inherited {
    sock: UnixStream,
    /// The state and its sockets (taken out as they are adopted).
    pub bundle: Bundle,
}

impl std::fmt::Debug for Inherited {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Inherited")
            .field("state", &self.bundle.state.fds)
            .finish()
    }
}

impl Inherited {
    /// When started by an upgrade (`TANDEM_UPGRADE_FD` set): hello, then the offer. `None`
    /// for a plain start.
    pub fn from_env() -> Option<Result<Self, HandoverError>> {
        let fd = std::env::var(UPGRADE_FD_ENV).ok()?;
        Some(Self::connect(fd))
    }

    fn connect(fd: String) -> Result<Self, HandoverError> {
        if fd != UPGRADE_FD.to_string() {
            return Err(HandoverError::Protocol(
                "TANDEM_UPGRADE_FD names another fd",
            ));
        }
        if !is_unix_socket(UPGRADE_FD) {
            return Err(HandoverError::Protocol("fd 3 is not a Unix socket"));
        }
        // SAFETY: fd 3 is open (checked above), a socket, and owned by nothing else here: the
        // old process put it there for us alone.
        let sock = UnixStream::from(unsafe { OwnedFd::from_raw_fd(UPGRADE_FD) });
        let io = HandoverError::io("setting the hand-over socket's timeouts");
        sock.set_read_timeout(Some(OFFER_WITHIN)).map_err(io)?;
        sock.set_write_timeout(Some(OFFER_WITHIN))
            .map_err(HandoverError::io("setting the hand-over socket's timeouts"))?;
        let hello = Message::Hello {
            min: wire::MIN_VERSION,
            max: wire::VERSION,
            pid: std::process::id(),
        };
        fdpass::send(&sock, &hello, &[])?;
        match fdpass::recv(&sock)? {
            (Message::Offer(state), fds) => Ok(Inherited {
                sock,
                bundle: Bundle::from_parts(state, fds),
            }),
            (Message::Refuse { reason }, _) => Err(HandoverError::Refused(reason)),
            _ => Err(HandoverError::Protocol("expected an offer")),
        }
    }

    /// Takes the listener with `role` out as a tokio listener group, every socket it was
    /// bound on (`None`: none was handed over).
    pub fn listener(&mut self, role: ListenerRole) -> Result<Option<ListenerGroup>, ProxyError> {
        let mut members = Vec::new();
        for fd in self.bundle.take_listeners(role) {
            let l = std::net::TcpListener::from(fd);
            let l = l
                .set_nonblocking(true)
                .and_then(|()| TcpListener::from_std(l))
                .map_err(|e| ProxyError::io("adopting an inherited listener", e))?;
            members.push(l);
        }
        Ok(ListenerGroup::new(members))
    }

    /// Reports ready: the old process stops and exits.
    pub fn ready(self) -> Result<(), HandoverError> {
        fdpass::send(
            &self.sock,
            &Message::Ready {
                pid: std::process::id(),
            },
            &[],
        )
    }

    /// A second handle on the hand-over socket, to refuse with why if starting fails after
    /// the state was taken (the old process then logs that reason and takes everything back).
    pub fn refuser(&self) -> Option<Refuser> {
        self.sock.try_clone().ok().map(Refuser)
    }
}

/// Refuses a hand-over on behalf of a process that could not start (see
/// [`Inherited::refuser`]).
#[derive(Debug)]
pub struct Refuser(UnixStream);

impl Refuser {
    /// Sends `Refuse { reason }` (best effort: the old process also sees the socket close).
    pub fn refuse(self, reason: &str) {
        let msg = Message::Refuse {
            reason: reason.to_owned(),
        };
        let _ = fdpass::send(&self.0, &msg, &[]);
    }
}

fn is_unix_socket(fd: i32) -> bool {
    let mut domain: libc::c_int = 0;
    let mut len = size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: getsockopt writes at most `len` bytes into `domain`; an fd that is not a socket
    // fails with ENOTSOCK.
    let rc = unsafe {
        libc::getsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_DOMAIN,
            (&mut domain as *mut libc::c_int).cast(),
            &mut len,
        )
    };
    rc == 0 && domain == libc::AF_UNIX
}
