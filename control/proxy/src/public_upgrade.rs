//! [`PublicProxy`]'s side of a binary upgrade (see [`crate::upgrade`]): the inherited start,
//! the upgrade settings, and the copies of the control plane's listeners it hands on.

use std::os::fd::{AsFd, OwnedFd};

use tokio::net::TcpListener;
use tracing::warn;

use super::PublicProxy;
use crate::ProxyError;
use crate::settings::PublicProxySettings;
use crate::upgrade::{Inherited, ListenerRole, Upgrade};

/// A copy of a listener's socket (kept for a binary upgrade).
pub(super) fn copy_fd(l: &TcpListener) -> Result<OwnedFd, ProxyError> {
    l.as_fd()
        .try_clone_to_owned()
        .map_err(|e| ProxyError::io("copying a listener", e))
}

impl PublicProxy {
    /// [`PublicProxy::start`] in the new process of a binary upgrade: the engine, its pairs
    /// and the ControlService's listener come from `inherited`; it reports ready to the old
    /// process once [`PublicProxy::serve`] serves.
    pub async fn start_inherited(
        settings: &PublicProxySettings,
        jsonrpc: TcpListener,
        inherited: Inherited,
    ) -> Result<Self, ProxyError> {
        Self::start_with(settings, jsonrpc, Some(inherited)).await
    }

    /// Upgrades on SIGUSR2 and `proxy ctl upgrade` by starting `up`.
    pub fn with_upgrade(mut self, up: Upgrade) -> Self {
        self.upgrade = Some(up);
        self
    }

    /// Keeps a copy of `listener` to hand to the next process.
    pub(super) fn keep_for_upgrade(&mut self, role: ListenerRole, listener: &TcpListener) {
        match copy_fd(listener) {
            Ok(fd) => self.listener_fds.push((role, fd)),
            Err(e) => warn!(error = %e, "cannot keep a listener for an upgrade"),
        }
    }
}
