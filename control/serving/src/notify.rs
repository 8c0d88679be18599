//! The service manager's readiness protocol (`sd_notify(3)`), without libsystemd: one datagram of
//! newline-separated `KEY=VALUE` lines to the Unix socket named by `$NOTIFY_SOCKET` (a path, or
//! `@name` for an abstract socket). Used by every program under a `Type=notify` unit:
//!
//! - [`Notice::Ready`] once it serves (and again after a reload);
//! - [`Notice::Reloading`] when a reload starts (with `MONOTONIC_USEC`, as `Type=notify-reload`
//!   requires);
//! - [`Notice::Stopping`] when it starts to shut down;
//! - [`Notice::MainPid`] from the new process of a binary upgrade (with `NotifyAccess=all`), so
//!   that the manager follows it, and not the old process, as the service's main process.
//!
//! Without `$NOTIFY_SOCKET` nothing is sent. A failure to send is logged at debug and never
//! fails the program (the manager may be gone, or the program runs outside one). The variable
//! is read at each call and left set: a process this one starts (an upgrade) inherits it.

use std::os::unix::net::{SocketAddr, UnixDatagram};

use tracing::debug;

/// The environment variable naming the manager's socket.
pub const NOTIFY_SOCKET_ENV: &str = "NOTIFY_SOCKET";

/// One state change told to the service manager.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Notice {
    /// `READY=1`: start-up (or a reload) is complete; the program serves.
    Ready,
    /// `RELOADING=1` with `MONOTONIC_USEC=`: a reload has started (this clock reading, in
    /// microseconds of `CLOCK_MONOTONIC`); [`Notice::Ready`] follows when it is done.
    Reloading {
        /// `CLOCK_MONOTONIC` in microseconds when the reload started.
        monotonic_usec: u64,
    },
    /// `STOPPING=1`: the program is shutting down.
    Stopping,
    /// `MAINPID=`: this pid is now the service's main process.
    MainPid(u32),
}

impl Notice {
    /// [`Notice::Reloading`] stamped now.
    pub fn reloading_now() -> Self {
        Notice::Reloading {
            monotonic_usec: monotonic_usec(),
        }
    }

    /// [`Notice::MainPid`] of this process.
    pub fn this_main_pid() -> Self {
        Notice::MainPid(std::process::id())
    }

    fn push_lines(self, out: &mut String) {
        use std::fmt::Write as _;
        // Writing into a String cannot fail.
        let _ = match self {
            Notice::Ready => writeln!(out, "READY=1"),
            Notice::Reloading { monotonic_usec } => {
                writeln!(out, "RELOADING=1\nMONOTONIC_USEC={monotonic_usec}")
            }
            Notice::Stopping => writeln!(out, "STOPPING=1"),
            Notice::MainPid(pid) => writeln!(out, "MAINPID={pid}"),
        };
    }
}

/// The datagram for `notices` (one line each, in order; each line ends with a newline).
pub fn encode(notices: &[Notice]) -> String {
    let mut out = String::new();
    for n in notices {
        n.push_lines(&mut out);
    }
    out
}

/// Why a notification was not sent.
#[derive(Debug, thiserror::Error)]
pub enum NotifyError {
    /// `$NOTIFY_SOCKET` is neither an absolute path nor `@name` (e.g. a `vsock:` address).
    #[error("unsupported NOTIFY_SOCKET address `{0}`")]
    Address(String),
    /// The socket could not be created or the datagram not sent.
    #[error("cannot notify the service manager at `{addr}`: {source}")]
    Io {
        /// The address from `$NOTIFY_SOCKET`.
        addr: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
}

/// The socket address `$NOTIFY_SOCKET` names: an absolute path, or `@name` (abstract namespace).
pub fn address(text: &str) -> Result<SocketAddr, NotifyError> {
    let bad = |_| NotifyError::Address(text.to_owned());
    if let Some(name) = text.strip_prefix('@') {
        use std::os::linux::net::SocketAddrExt;
        SocketAddr::from_abstract_name(name.as_bytes()).map_err(bad)
    } else if text.starts_with('/') {
        SocketAddr::from_pathname(text).map_err(bad)
    } else {
        Err(NotifyError::Address(text.to_owned()))
    }
}

/// Sends `notices` to the socket `addr` names; `Ok(false)` when `addr` is `None` (no manager).
pub fn send_to(addr: Option<&str>, notices: &[Notice]) -> Result<bool, NotifyError> {
    let Some(text) = addr.filter(|t| !t.is_empty()) else {
        return Ok(false);
    };
    let to = address(text)?;
    let io = |source| NotifyError::Io {
        addr: text.to_owned(),
        source,
    };
    let sock = UnixDatagram::unbound().map_err(io)?;
    sock.send_to_addr(encode(notices).as_bytes(), &to)
        .map_err(io)?;
    Ok(true)
}

/// Tells the service manager of `$NOTIFY_SOCKET` about `notices` (nothing without one). True
/// when sent; a failure is logged at debug and otherwise ignored.
pub fn notify(notices: &[Notice]) -> bool {
    let addr = std::env::var(NOTIFY_SOCKET_ENV).ok();
    match send_to(addr.as_deref(), notices) {
        Ok(sent) => {
            if sent {
                debug!(?notices, "service manager notified");
            }
            sent
        }
        Err(e) => {
            debug!(error = %e, ?notices, "service manager not notified");
            false
        }
    }
}

/// `CLOCK_MONOTONIC` in microseconds (what `MONOTONIC_USEC` carries).
fn monotonic_usec() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec into `ts`; CLOCK_MONOTONIC always exists on Linux.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    if rc != 0 {
        return 0;
    }
    (ts.tv_sec as u64)
        .saturating_mul(1_000_000)
        .saturating_add(ts.tv_nsec as u64 / 1_000)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn encodes_one_line_per_notice_in_order() {
        assert_eq!(encode(&[Notice::Ready]), "READY=1\n");
        assert_eq!(encode(&[Notice::Stopping]), "STOPPING=1\n");
        assert_eq!(
            encode(&[Notice::MainPid(4242), Notice::Ready]),
            "MAINPID=4242\nREADY=1\n"
        );
        assert_eq!(
            encode(&[Notice::Reloading { monotonic_usec: 17 }]),
            "RELOADING=1\nMONOTONIC_USEC=17\n"
        );
        assert_eq!(encode(&[]), "");
    }

    #[test]
    fn reloading_now_reads_the_monotonic_clock() {
        let Notice::Reloading { monotonic_usec: a } = Notice::reloading_now() else {
            panic!("not reloading");
        };
        let Notice::Reloading { monotonic_usec: b } = Notice::reloading_now() else {
            panic!("not reloading");
        };
        assert!(a > 0 && b >= a, "{a} then {b}");
    }

    #[test]
    fn addresses_are_paths_or_abstract_names() {
        assert_eq!(
            address("/run/systemd/notify").unwrap().as_pathname(),
            Some(std::path::Path::new("/run/systemd/notify"))
        );
        use std::os::linux::net::SocketAddrExt;
        assert_eq!(
            address("@tandem/notify").unwrap().as_abstract_name(),
            Some(&b"tandem/notify"[..])
        );
        assert!(matches!(
            address("vsock:2:1234"),
            Err(NotifyError::Address(_))
        ));
        assert!(matches!(address("relative"), Err(NotifyError::Address(_))));
    }

    #[test]
    fn without_a_socket_nothing_is_sent() {
        assert!(!send_to(None, &[Notice::Ready]).unwrap());
        assert!(!send_to(Some(""), &[Notice::Ready]).unwrap());
    }

    #[test]
    fn sends_one_datagram_to_a_path_socket() {
        let dir = std::env::temp_dir().join(format!("tandem-notify-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("notify.sock");
        let _ = std::fs::remove_file(&path);
        let manager = UnixDatagram::bind(&path).unwrap();
        let sent = send_to(
            path.to_str(),
            &[Notice::MainPid(std::process::id()), Notice::Ready],
        )
        .unwrap();
        assert!(sent);
        let mut buf = [0u8; 256];
        let n = manager.recv(&mut buf).unwrap();
        let text = std::str::from_utf8(&buf[..n]).unwrap();
        assert_eq!(text, format!("MAINPID={}\nREADY=1\n", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn sends_to_an_abstract_socket() {
        use std::os::linux::net::SocketAddrExt;
        let name = format!("tandem-notify-test-{}", std::process::id());
        let addr = SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
        let manager = UnixDatagram::bind_addr(&addr).unwrap();
        assert!(send_to(Some(&format!("@{name}")), &[Notice::Stopping]).unwrap());
        let mut buf = [0u8; 64];
        let n = manager.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"STOPPING=1\n");
    }

    #[test]
    fn a_missing_socket_is_an_error_not_a_panic() {
        let e = send_to(Some("/nonexistent/tandem/notify.sock"), &[Notice::Ready]).unwrap_err();
        assert!(matches!(e, NotifyError::Io { .. }), "{e}");
    }
}
