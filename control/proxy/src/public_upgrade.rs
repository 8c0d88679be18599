//! [`PublicProxy`]'s side of a binary upgrade (see [`crate::upgrade`]): the inherited start,
//! the upgrade settings, and the copies of the control plane's listeners it hands on.

pub(super) use crate::upgrade::copy_fds;

use tandem_serving::ListenerGroup;
use tracing::warn;

use super::PublicProxy;
use crate::ProxyError;
use crate::settings::PublicProxySettings;
use crate::upgrade::{Inherited, ListenerRole, Upgrade};

impl PublicProxy {
    /// [`PublicProxy::start`] in the new process of a binary upgrade: the engine, its pairs
    /// and the ControlService's listener come from `inherited`; it reports ready to the old
    /// process once [`PublicProxy::serve`] serves.
    pub async fn start_inherited(
        settings: &PublicProxySettings,
        jsonrpc: impl Into<ListenerGroup>,
        inherited: Inherited,
    ) -> Result<Self, ProxyError> {
        Self::start_with(settings, jsonrpc.into(), Some(inherited)).await
    }

    /// Upgrades on SIGUSR2 and `proxy ctl upgrade` by starting `up`.
    pub fn with_upgrade(mut self, up: Upgrade) -> Self {
        self.upgrade = Some(up);
        self
    }

    /// Keeps copies of `listener`'s sockets to hand to the next process.
    pub(super) fn keep_for_upgrade(&mut self, role: ListenerRole, listener: &ListenerGroup) {
        match copy_fds(listener) {
            Ok(fds) => self
                .listener_fds
                .extend(fds.into_iter().map(|fd| (role, fd))),
            Err(e) => warn!(error = %e, "cannot keep a listener for an upgrade"),
        }
    }
}
