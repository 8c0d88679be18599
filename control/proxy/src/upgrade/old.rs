//! The running process's side of an upgrade: start the binary, hear its hello, release the
//! announcement store, export the engine and the control plane's listeners with the quota
//! bookkeeping of the pairs exported, and wait for
//! `Ready`; on any failure kill the new process and take everything back.

use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::process::Child;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tandem_engine::EngineHandle;
use tandem_engine::handover::{Bundle, HandoverError, ListenerRole, Message, fdpass, wire};
use tokio::sync::oneshot;
use tracing::{info, warn};

use super::{HELLO_WITHIN, QUIET_WITHIN, UPGRADE_FD, UPGRADE_FD_ENV, Upgrade, UpgradeError};
use crate::public::PublicState;
use crate::quota::Quotas;

/// How an upgrade ended.
#[derive(Debug)]
pub enum Outcome {
    /// The new process serves everything: stop and exit 0.
    Completed {
        /// Its pid.
        pid: u32,
        /// Live pairs handed over.
        live: usize,
        /// Issued pairs handed over (with or without a waiting side).
        issued: usize,
        /// Sockets passed.
        sockets: u32,
        /// Bytes the live pairs had moved when they were handed over (both directions).
        bytes_moved: u64,
        /// From the request to `Ready`.
        took: Duration,
    },
    /// The old process serves on (everything taken back), because of this.
    RolledBack(UpgradeError),
}

/// Runs one upgrade of this process (see the module docs).
pub async fn upgrade(
    up: &Upgrade,
    state: &Arc<PublicState>,
    listeners: &[(ListenerRole, OwnedFd)],
) -> Outcome {
    let started = Instant::now();
    let mut child = None;
    match run(up, state, listeners, &mut child, started).await {
        Ok(done) => done,
        Err(e) => {
            if let Some(mut c) = child {
                reclaim_main_pid();
                let _ = c.kill();
                let _ = tokio::task::spawn_blocking(move || c.wait()).await;
            }
            Outcome::RolledBack(e)
        }
    }
}

async fn run(
    up: &Upgrade,
    state: &Arc<PublicState>,
    listeners: &[(ListenerRole, OwnedFd)],
    child: &mut Option<Child>,
    started: Instant,
) -> Result<Outcome, UpgradeError> {
    let engine = &state.engine;
    let copies: Result<Vec<(ListenerRole, OwnedFd)>, _> = listeners
        .iter()
        .map(|(r, fd)| fd.try_clone().map(|c| (*r, c)))
        .collect();
    let copies = copies.map_err(HandoverError::io("copying a listener"))?;
    let (ours, theirs) = UnixStream::pair().map_err(|source| spawn_err(up, source))?;
    *child = Some(spawn(up, &theirs)?);
    drop(theirs);
    let timeouts = |s: &UnixStream, d: Duration| {
        s.set_read_timeout(Some(d))
            .and_then(|()| s.set_write_timeout(Some(d)))
            .map_err(HandoverError::io("setting the hand-over socket's timeouts"))
    };
    timeouts(&ours, HELLO_WITHIN)?;
    let (ours, hello) = blocking(move || {
        let r = fdpass::recv(&ours);
        (ours, r)
    })
    .await?;
    let version = match hello? {
        (Message::Hello { min, max, .. }, _) => wire::agree(min, max),
        (Message::Refuse { reason }, _) => return Err(HandoverError::Refused(reason).into()),
        _ => return Err(HandoverError::Protocol("expected a hello").into()),
    };
    if version.is_none() {
        let reason = format!(
            "no common format version (this binary writes {})",
            wire::VERSION
        );
        let _ = fdpass::send(&ours, &Message::Refuse { reason }, &[]);
        return Err(HandoverError::Protocol("no common format version").into());
    }
    // The store: writes held here until the outcome, its lock released for the new process.
    let (released_tx, released) = oneshot::channel();
    let (back, back_rx) = oneshot::channel();
    let holder = state.clone();
    let held = tokio::spawn(async move {
        holder
            .announcements
            .hand_over_store(released_tx, back_rx)
            .await
    });
    let give_back = |back: oneshot::Sender<bool>| {
        let _ = back.send(true);
    };
    match released.await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => {
            give_back(back);
            return Err(e.into());
        }
        Err(_) => return Err(UpgradeError::Task("the store holder ended".into())),
    }
    let engine2 = engine.clone();
    let quotas = state.quotas.clone();
    let ready_within = up.ready_within;
    let (bundle, answer) =
        blocking(move || exchange(&engine2, &quotas, ours, copies, ready_within)).await?;
    let Some(mut bundle) = bundle else {
        give_back(back);
        return Err(answer
            .err()
            .unwrap_or(UpgradeError::Task("no bundle".into())));
    };
    match answer {
        Ok(pid) => {
            // Writes stay held until this process exits: the new one owns the store now.
            drop(back);
            drop(held);
            Ok(Outcome::Completed {
                pid,
                live: bundle.state.live.len(),
                issued: bundle.state.issued.len(),
                sockets: bundle.state.fds,
                bytes_moved: bundle
                    .state
                    .live
                    .iter()
                    .map(|p| p.bytes[0] + p.bytes[1])
                    .sum(),
                took: started.elapsed(),
            })
        }
        Err(e) => {
            if let Some(mut c) = child.take() {
                reclaim_main_pid();
                let _ = c.kill();
                let _ = tokio::task::spawn_blocking(move || c.wait()).await;
            }
            let taken = engine.adopt(&mut bundle);
            give_back(back);
            info!(?taken, "upgrade failed: everything taken back");
            Err(e)
        }
    }
}

/// Export, send, wait for the answer (blocking). The bundle comes back whenever the engine
/// was exported, so that a failure can adopt it again.
fn exchange(
    engine: &EngineHandle,
    quotas: &Quotas,
    sock: UnixStream,
    listeners: Vec<(ListenerRole, OwnedFd)>,
    ready_within: Duration,
) -> (Option<Bundle>, Result<u32, UpgradeError>) {
    let mut bundle = match engine.export(QUIET_WITHIN) {
        Ok(b) => b,
        Err(e) => return (None, Err(e.into())),
    };
    for (role, fd) in listeners {
        bundle.push_listener(role, fd);
    }
    let answer = (|| {
        super::carry::carry_out(quotas, &mut bundle)?;
        sock.set_read_timeout(Some(ready_within))
            .map_err(HandoverError::io("setting the ready deadline"))?;
        bundle.send(&sock)?;
        match fdpass::recv(&sock)? {
            (Message::Ready { pid }, _) => Ok(pid),
            (Message::Refuse { reason }, _) => Err(HandoverError::Refused(reason).into()),
            _ => Err(HandoverError::Protocol("expected ready").into()),
        }
    })();
    (Some(bundle), answer)
}

/// Before the new process is killed: this one is the service's main process again (the new
/// one may have told the service manager `MAINPID=` its pid before it failed; a manager that
/// saw that main process die would stop the service).
fn reclaim_main_pid() {
    tandem_serving::notify(&[tandem_serving::Notice::this_main_pid()]);
}

fn spawn_err(up: &Upgrade, source: std::io::Error) -> UpgradeError {
    UpgradeError::Spawn {
        binary: up.binary.display().to_string(),
        source,
    }
}

/// Starts the binary with our arguments and `theirs` as its fd 3.
fn spawn(up: &Upgrade, theirs: &UnixStream) -> Result<Child, UpgradeError> {
    let mut cmd = std::process::Command::new(&up.binary);
    cmd.args(&up.args)
        .env(UPGRADE_FD_ENV, UPGRADE_FD.to_string());
    let fd = theirs.as_raw_fd();
    // SAFETY: between fork and exec only async-signal-safe calls (dup2, fcntl) on fds we own.
    unsafe {
        cmd.pre_exec(move || {
            if fd == UPGRADE_FD {
                // dup2 onto itself keeps close-on-exec: clear it.
                if libc::fcntl(fd, libc::F_SETFD, 0) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
            } else if libc::dup2(fd, UPGRADE_FD) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let child = cmd.spawn().map_err(|source| spawn_err(up, source))?;
    info!(binary = %up.binary.display(), pid = child.id(), "upgrade: new process started");
    Ok(child)
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, UpgradeError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| UpgradeError::Task(e.to_string()))
}

/// Logs a rolled-back upgrade (one warn line with the reason).
pub(crate) fn log_rollback(e: &UpgradeError) {
    warn!(kind = e.kind(), error = %e, "upgrade failed; this process keeps serving");
}
