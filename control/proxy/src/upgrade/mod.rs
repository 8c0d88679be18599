//! Binary upgrade of `proxy run public` (SIGUSR2, as nginx): the running process starts the
//! binary at its path with the same arguments and a Unix socket on fd 3 (`TANDEM_UPGRADE_FD`),
//! and hands it, with `SCM_RIGHTS`, every listening socket (pairing and TLS per core, JSON-RPC,
//! ControlService, metrics), every issued pair with its waiting side and every live pair (see
//! `tandem_engine::handover`). The announcement store is released to it (the table is read
//! again from the store). The new process adopts everything and answers `Ready`; the old one
//! then stops and exits 0. If the new one refuses, fails or is not ready within
//! [`Upgrade::ready_within`], it is killed and the old one adopts everything back and serves on.
//!
//! - `old.rs`: the running process's side (start the binary, export, wait, roll back).
//! - `new.rs`: the started binary's side (hello, receive, report ready or refuse).
//! - `carry.rs`: the proxy's own section of the state (the quota bookkeeping: owners of the
//!   pairs handed over and each operator's minute and day counts).
//!
//! Under systemd (`Type=notify`, `NotifyAccess=all`) the new process tells the manager
//! `MAINPID=` its pid and `READY=1` before it answers `Ready`, so the manager follows it and the
//! old process's exit is not the service's end; a rolled-back upgrade tells `MAINPID=` the old
//! pid again before the new process is killed (see [`tandem_serving::notify`]).
//!
//! The socket is one end of a `socketpair` inherited by the child only: no path, nothing
//! another user or process can connect to.

mod carry;
mod new;
mod old;

pub(crate) use carry::read_carried;

use std::ffi::OsString;

use std::path::PathBuf;
use std::time::Duration;
use tandem_proto::control::UpgradeResponse;

pub use new::{Inherited, Refuser};
pub use old::{Outcome, upgrade};
pub use tandem_engine::handover::ListenerRole;

/// The environment variable naming the hand-over socket's fd in the new process.
pub const UPGRADE_FD_ENV: &str = "TANDEM_UPGRADE_FD";
/// The fd the hand-over socket gets in the new process.
pub const UPGRADE_FD: i32 = 3;
/// How long the new process may take to say hello (it has just been exec'd), by default.
pub const HELLO_WITHIN: Duration = Duration::from_secs(30);
/// How long the cores may take to pause (relays stop between bursts) before the export.
pub const QUIET_WITHIN: Duration = Duration::from_secs(5);

/// How to start the next binary, fixed when the process starts: the path it was run from
/// (a binary replaced at that path since is the new version) and its arguments.
#[derive(Clone, Debug)]
pub struct Upgrade {
    /// The binary to start.
    pub binary: PathBuf,
    /// Its arguments (this process's, without `argv[0]`).
    pub args: Vec<OsString>,
    /// How long the new process may take from receiving the state to `Ready`.
    pub ready_within: Duration,
}

/// Why an upgrade did not happen (the old process serves on).
#[derive(Debug, thiserror::Error)]
pub enum UpgradeError {
    /// The new binary could not be started.
    #[error("cannot start {binary}: {source}")]
    Spawn {
        /// The path.
        binary: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// The hand-over conversation failed.
    #[error(transparent)]
    Handover(#[from] tandem_engine::handover::HandoverError),
    /// The announcement store could not be released.
    #[error("cannot release the announcement store: {0}")]
    Store(#[from] tandem_datastore::DatastoreError),
    /// The quota bookkeeping could not be written into the hand-over.
    #[error("cannot hand over the quota bookkeeping: {0}")]
    Carry(#[from] crate::quota::CarryError),
    /// A blocking step's task failed.
    #[error("upgrade task failed: {0}")]
    Task(String),
    /// The new process exited before it was ready.
    #[error("the new process exited before it was ready: {0}")]
    Exited(std::process::ExitStatus),
}

impl UpgradeError {
    /// A stable label for the log line and metric.
    pub fn kind(&self) -> &'static str {
        match self {
            UpgradeError::Spawn { .. } => "spawn",
            UpgradeError::Handover(e) => e.kind(),
            UpgradeError::Store(_) => "store",
            UpgradeError::Carry(_) => "carry",
            UpgradeError::Task(_) => "task",
            UpgradeError::Exited(_) => "exited",
        }
    }
}

/// Upgrade requests: SIGUSR2 (when upgrades are on) and `proxy ctl upgrade` calls.
pub(crate) struct Requests {
    signal: Option<tokio::signal::unix::Signal>,
    asks: tokio::sync::mpsc::Receiver<crate::control_service::UpgradeAsk>,
}

impl Requests {
    pub(crate) fn new(
        on: bool,
        asks: tokio::sync::mpsc::Receiver<crate::control_service::UpgradeAsk>,
    ) -> Self {
        let signal = on.then(|| {
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::user_defined2())
                .inspect_err(|e| tracing::warn!(error = %e, "cannot watch SIGUSR2: no upgrades"))
                .ok()
        });
        Requests {
            signal: signal.flatten(),
            asks,
        }
    }

    /// The next request: `None` for a signal, the caller's reply slot for a ctl call.
    pub(crate) async fn next(&mut self) -> Option<crate::control_service::UpgradeAsk> {
        let signal = async {
            let got = match &mut self.signal {
                Some(s) => s.recv().await,
                None => None,
            };
            if got.is_none() {
                std::future::pending::<()>().await;
            }
        };
        tokio::select! {
            () = signal => None,
            Some(ask) = self.asks.recv() => Some(ask),
        }
    }
}

/// Runs the upgrade one request asked for and answers a ctl caller; true when the new
/// process took over (this one then stops).
pub(crate) async fn answer(
    up: Option<&Upgrade>,
    state: &std::sync::Arc<crate::public::PublicState>,
    listeners: &[(tandem_engine::handover::ListenerRole, std::os::fd::OwnedFd)],
    ask: Option<crate::control_service::UpgradeAsk>,
) -> bool {
    let outcome = attempt(up, state, listeners).await;
    let completed = outcome.completed;
    if let Some(reply) = ask {
        let _ = reply.send(outcome);
    }
    completed
}

/// One upgrade with its log line and counter (`None`: upgrades are off in this process).
async fn attempt(
    up: Option<&Upgrade>,
    state: &std::sync::Arc<crate::public::PublicState>,
    listeners: &[(tandem_engine::handover::ListenerRole, std::os::fd::OwnedFd)],
) -> UpgradeResponse {
    let Some(up) = up else {
        return UpgradeResponse {
            reason: "this process was started without upgrades".into(),
            ..Default::default()
        };
    };
    tracing::info!(binary = %up.binary.display(), "upgrade requested");
    match upgrade(up, state, listeners).await {
        Outcome::Completed {
            pid,
            live,
            issued,
            sockets,
            bytes_moved,
            took,
        } => {
            crate::stats::ProxyCounters::inc(&state.counters.upgrades_completed);
            let took_ms = took.as_millis() as u64;
            tracing::info!(
                new_pid = pid,
                live_pairs = live,
                issued_pairs = issued,
                sockets,
                bytes_moved,
                took_ms,
                "upgrade complete: the new process serves; this one exits"
            );
            UpgradeResponse {
                completed: true,
                new_pid: pid,
                live_pairs: live as u64,
                issued_pairs: issued as u64,
                took_ms,
                reason: String::new(),
            }
        }
        Outcome::RolledBack(e) => {
            crate::stats::ProxyCounters::inc(&state.counters.upgrades_rolled_back);
            old::log_rollback(&e);
            UpgradeResponse {
                reason: e.to_string(),
                ..Default::default()
            }
        }
    }
}

/// Tells the old process this one serves (its listeners are being accepted on).
pub(crate) async fn report_ready(inherited: Inherited) {
    match tokio::task::spawn_blocking(move || inherited.ready()).await {
        Ok(Ok(())) => tracing::info!("upgrade: ready reported to the previous process"),
        Ok(Err(e)) => tracing::warn!(error = %e, "upgrade: cannot report ready"),
        Err(e) => tracing::warn!(error = %e, "upgrade: ready task failed"),
    }
}

/// Copies of a listener's sockets, primary first (kept for a binary upgrade; one listener bound
/// on several addresses travels as several sockets of one role).
pub(crate) fn copy_fds(
    l: &tandem_serving::ListenerGroup,
) -> Result<Vec<std::os::fd::OwnedFd>, crate::ProxyError> {
    use std::os::fd::AsFd;
    l.members()
        .iter()
        .map(|m| {
            m.as_fd()
                .try_clone_to_owned()
                .map_err(|e| crate::ProxyError::io("copying a listener", e))
        })
        .collect()
}
