//! systemd socket activation (`sd_listen_fds(3)`): listening sockets a supervisor bound and passed
//! as fds 3, 4, ... with `LISTEN_FDS` (how many), `LISTEN_PID` (for which process) and
//! `LISTEN_FDNAMES` (their `FileDescriptorName=`s, colon-separated). A program adopts them by name
//! ([`bind_named`]) instead of binding, so the socket outlives the process: during a restart the
//! kernel queues new connections in the socket's backlog instead of refusing them.
//!
//! [`adopt_from_env`] runs once at start (before any thread reads the environment): it checks
//! every passed fd is a listening TCP socket, marks it close-on-exec, and removes the variables so
//! children do not inherit them. The parser ([`parse`]) is pure.

use std::collections::HashMap;
use std::net::TcpListener as StdListener;
use std::os::fd::{FromRawFd, OwnedFd, RawFd};
use std::sync::{Mutex, OnceLock};

use socket2::{Domain, Socket, Type};
use tandem_types::HostPort;
use tokio::net::TcpListener;
use tracing::{info, warn};

use crate::bind::{BindError, bind};
use crate::group::{ListenerGroup, MAX_ADDRESSES_PER_LISTENER};

/// The first passed fd (`SD_LISTEN_FDS_START`).
pub const LISTEN_FDS_START: RawFd = 3;

/// At most this many passed fds are adopted: a program has a handful of listeners, and the bound
/// keeps a corrupt `LISTEN_FDS` from making us claim (and close) arbitrary descriptors.
pub const MAX_LISTEN_FDS: usize = 16;

/// Why the socket-activation variables were refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ActivationError {
    /// `LISTEN_FDS` or `LISTEN_PID` is not a number.
    #[error("{var}={value:?} is not a number")]
    NotANumber {
        /// The variable.
        var: &'static str,
        /// Its value.
        value: String,
    },
    /// More fds than [`MAX_LISTEN_FDS`].
    #[error("LISTEN_FDS={0} is more than {MAX_LISTEN_FDS}")]
    TooMany(usize),
    /// `LISTEN_FDNAMES` names a different number of fds than `LISTEN_FDS`.
    #[error("LISTEN_FDNAMES names {names} sockets but LISTEN_FDS is {fds}")]
    NameCount {
        /// Names given.
        names: usize,
        /// Fds passed.
        fds: usize,
    },
    /// A passed fd is not a listening TCP socket.
    #[error("fd {fd} ({name}) is not a listening TCP socket: {reason}")]
    NotAListener {
        /// The fd.
        fd: RawFd,
        /// Its name.
        name: String,
        /// Why.
        reason: String,
    },
}

/// The passed fds and their names, from the three variables' values; empty when they are not
/// for `my_pid` (a parent's variables leaked to us) or absent. Names default to `unknown`, as
/// systemd's do.
pub fn parse(
    listen_pid: Option<&str>,
    listen_fds: Option<&str>,
    listen_fdnames: Option<&str>,
    my_pid: u32,
) -> Result<Vec<(String, RawFd)>, ActivationError> {
    let (Some(pid), Some(fds)) = (listen_pid, listen_fds) else {
        return Ok(Vec::new());
    };
    let number = |var: &'static str, value: &str| {
        value
            .trim()
            .parse::<usize>()
            .map_err(|_| ActivationError::NotANumber {
                var,
                value: value.to_owned(),
            })
    };
    if number("LISTEN_PID", pid)? != my_pid as usize {
        return Ok(Vec::new());
    }
    let count = number("LISTEN_FDS", fds)?;
    if count > MAX_LISTEN_FDS {
        return Err(ActivationError::TooMany(count));
    }
    let names: Vec<String> = match listen_fdnames {
        Some(n) if !n.is_empty() => n.split(':').map(str::to_owned).collect(),
        _ => vec!["unknown".to_owned(); count],
    };
    if names.len() != count {
        return Err(ActivationError::NameCount {
            names: names.len(),
            fds: count,
        });
    }
    // `count` <= MAX_LISTEN_FDS, so the fd numbers fit.
    Ok(names.into_iter().zip(LISTEN_FDS_START..).collect())
}

/// Adopted sockets by name, not yet claimed by a listener.
static INHERITED: OnceLock<Mutex<HashMap<String, Vec<OwnedFd>>>> = OnceLock::new();

fn inherited() -> std::sync::MutexGuard<'static, HashMap<String, Vec<OwnedFd>>> {
    INHERITED
        .get_or_init(Mutex::default)
        .lock()
        .unwrap_or_else(|p| p.into_inner())
}

/// Adopts the sockets passed by a supervisor (see the module docs). Call once, first thing in
/// `main`, before threads start. Returns how many were adopted.
pub fn adopt_from_env() -> Result<usize, ActivationError> {
    let var = |name| std::env::var(name).ok();
    let passed = parse(
        var("LISTEN_PID").as_deref(),
        var("LISTEN_FDS").as_deref(),
        var("LISTEN_FDNAMES").as_deref(),
        std::process::id(),
    )?;
    for name in ["LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"] {
        // SAFETY (of the environment): called first in `main`, before any other thread runs.
        unsafe { std::env::remove_var(name) };
    }
    let mut adopted = inherited();
    for (name, fd) in &passed {
        // SAFETY: LISTEN_FDS hands these descriptors to this process (LISTEN_PID checked): we own
        // them from here on, and nothing else in the process refers to them.
        let owned = unsafe { OwnedFd::from_raw_fd(*fd) };
        let socket = Socket::from(owned);
        check_listener(&socket).map_err(|reason| ActivationError::NotAListener {
            fd: *fd,
            name: name.clone(),
            reason,
        })?;
        let close_on_exec = socket.set_cloexec(true);
        let nonblocking = socket.set_nonblocking(true);
        if let Err(e) = close_on_exec.and(nonblocking) {
            return Err(ActivationError::NotAListener {
                fd: *fd,
                name: name.clone(),
                reason: e.to_string(),
            });
        }
        info!(fd, name = %name, "adopted an inherited listening socket");
        adopted
            .entry(name.clone())
            .or_default()
            .push(OwnedFd::from(socket));
    }
    Ok(passed.len())
}

fn check_listener(socket: &Socket) -> Result<(), String> {
    let domain = socket.local_addr().map_err(|e| e.to_string())?.domain();
    if domain != Domain::IPV4 && domain != Domain::IPV6 {
        return Err("not an IP socket".into());
    }
    if socket.r#type().map_err(|e| e.to_string())? != Type::STREAM {
        return Err("not a stream socket".into());
    }
    if !socket.is_listener().map_err(|e| e.to_string())? {
        return Err("not listening".into());
    }
    Ok(())
}

/// The inherited sockets named `name` if the supervisor passed any (all of them, one group,
/// in passing order; claimed once), else `address` bound here. More than
/// [`MAX_ADDRESSES_PER_LISTENER`] sockets of one name is an error.
pub async fn bind_named(name: &str, address: &HostPort) -> Result<ListenerGroup, BindError> {
    let claimed = inherited().remove(name).unwrap_or_default();
    if claimed.is_empty() {
        return bind(address).await;
    }
    if claimed.len() > MAX_ADDRESSES_PER_LISTENER {
        return Err(BindError::TooMany {
            address: address.clone(),
            count: claimed.len(),
        });
    }
    let adopt = |source| BindError::Bind {
        address: address.clone(),
        source,
    };
    let mut members = Vec::with_capacity(claimed.len());
    for fd in claimed {
        let listener = TcpListener::from_std(StdListener::from(fd)).map_err(adopt)?;
        match listener.local_addr() {
            Ok(local) => {
                info!(name, address = %local, configured = %address, "serving an inherited socket")
            }
            Err(e) => warn!(name, error = %e, "an inherited socket has no local address"),
        }
        members.push(listener);
    }
    ListenerGroup::new(members).ok_or_else(|| {
        adopt(std::io::Error::new(
            std::io::ErrorKind::NotFound,
            "no socket",
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn variables_for_another_process_or_absent_are_ignored() {
        assert_eq!(parse(None, None, None, 7), Ok(vec![]));
        assert_eq!(parse(Some("8"), Some("1"), None, 7), Ok(vec![]));
    }

    #[test]
    fn names_map_to_fds_from_three() {
        let got = parse(Some("7"), Some("2"), Some("jsonrpc_server:metrics"), 7).unwrap();
        assert_eq!(
            got,
            vec![("jsonrpc_server".into(), 3), ("metrics".into(), 4)]
        );
        let unnamed = parse(Some("7"), Some("1"), None, 7).unwrap();
        assert_eq!(unnamed, vec![("unknown".into(), 3)]);
    }

    #[test]
    fn malformed_variables_are_errors() {
        assert!(matches!(
            parse(Some("x"), Some("1"), None, 7),
            Err(ActivationError::NotANumber {
                var: "LISTEN_PID",
                ..
            })
        ));
        assert_eq!(
            parse(Some("7"), Some("99"), None, 7),
            Err(ActivationError::TooMany(99))
        );
        assert_eq!(
            parse(Some("7"), Some("2"), Some("a"), 7),
            Err(ActivationError::NameCount { names: 1, fds: 2 })
        );
    }

    fn passed(name: &str, addrs: &[&str]) {
        let mut adopted = inherited();
        for a in addrs {
            let l = StdListener::bind(a).unwrap();
            l.set_nonblocking(true).unwrap();
            adopted
                .entry(name.into())
                .or_default()
                .push(OwnedFd::from(l));
        }
    }

    #[tokio::test]
    async fn every_socket_passed_under_one_name_is_one_listener_group() {
        passed("both_families", &["127.0.0.1:0", "[::1]:0"]);
        let configured = HostPort {
            host: "unused.example".into(),
            port: 1,
        };
        let group = bind_named("both_families", &configured).await.unwrap();
        let addrs = group.local_addrs().unwrap();
        assert_eq!(addrs.len(), 2);
        assert!(
            addrs[0].is_ipv4() && addrs[1].is_ipv6(),
            "in passing order: {addrs:?}"
        );
        assert!(inherited().get("both_families").is_none(), "claimed once");
    }

    #[tokio::test]
    async fn more_than_eight_sockets_of_one_name_are_refused() {
        passed("too_many", &["127.0.0.1:0"; MAX_ADDRESSES_PER_LISTENER + 1]);
        let configured = HostPort {
            host: "unused.example".into(),
            port: 1,
        };
        let err = bind_named("too_many", &configured).await.unwrap_err();
        assert_eq!(err.kind(), "too_many_addresses");
    }
}
