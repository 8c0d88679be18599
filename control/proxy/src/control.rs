//! The public proxy's `ControlService` (create pairs, list, stats, drain, events over gRPC/mTLS),
//! started beside the JSON-RPC server when the settings have a `control:` block.

use std::net::SocketAddr;
use std::sync::Arc;

use tandem_engine::EngineHandle;
use tandem_net::tls::ServerTls;
use tokio::task::JoinHandle;
use tracing::{info, warn};

use super::error::ProxyError;
use super::pins::HyperDirectory;
use crate::control_service::{AdminPolicy, ControlServer, EventHub};
use crate::settings::ControlSettings;
use tandem_serving::{Admission, ListenerGroup, ServingConfig, ServingMetrics, Shutdown};

/// A bound control service, ready to serve.
pub(crate) struct ControlPlane {
    server: ControlServer,
    listener: ListenerGroup,
    tls: ServerTls,
    addr: SocketAddr,
    serving: ServingConfig,
}

impl ControlPlane {
    /// Binds the control port and builds the service over `engine` and `hub`; the admins'
    /// certificates are checked against the directory's pins (`pins`, see `AdminPolicy`).
    pub(crate) async fn bind(
        settings: &ControlSettings,
        engine: EngineHandle,
        endpoint: String,
        hub: EventHub,
        pins: Arc<HyperDirectory>,
        inherited: Option<ListenerGroup>,
    ) -> Result<Self, ProxyError> {
        let tls = ControlServer::tls_config(&settings.tls)
            .map_err(|e| ProxyError::Settings(format!("control.tls: {e}")))?;
        let tls = ServerTls::new(tls);
        let listener = match inherited {
            Some(l) => l,
            None => tandem_serving::bind(&settings.bind_address).await?,
        };
        let addr = listener
            .local_addr()
            .map_err(|e| ProxyError::io("reading the control address", e))?;
        let policy = AdminPolicy::names(settings.admins.iter().cloned()).with_pins(pins);
        Ok(Self {
            server: ControlServer::new(engine, endpoint, policy, hub),
            listener,
            tls,
            addr,
            serving: settings.serving.clone(),
        })
    }

    /// Sends the service's `Upgrade` calls to `asks`.
    pub(crate) fn accept_upgrades(
        &self,
        asks: tokio::sync::mpsc::Sender<crate::control_service::UpgradeAsk>,
    ) {
        self.server.accept_upgrades(asks);
    }

    /// Copies of its listening sockets (kept for a binary upgrade).
    pub(crate) fn listener_copies(&self) -> Result<Vec<std::os::fd::OwnedFd>, ProxyError> {
        crate::upgrade::copy_fds(&self.listener)
    }

    /// The control listener's TLS config and admin policy, which a reload replaces.
    pub(crate) fn live(&self) -> (ServerTls, crate::control_service::AdminPolicy) {
        (self.tls.clone(), self.server.policy().clone())
    }

    /// Lets the `Reload` call run `reloader`.
    pub(crate) fn set_reloader(&self, reloader: tandem_net::reload::Reloader) {
        self.server.set_reloader(reloader);
    }

    /// Where it listens.
    pub(crate) fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Serves until `stop` (tracked by the returned handle).
    pub(crate) fn spawn(self, stop: Shutdown, metrics: ServingMetrics) -> JoinHandle<()> {
        info!(address = %self.addr, "control service listening");
        let admission = Admission::new("control", self.serving, metrics);
        tokio::spawn(async move {
            let serving = self
                .server
                .serve_with(self.listener, self.tls, admission, stop.wait());
            if let Err(e) = serving.await {
                warn!(error = %e, "control service stopped with an error");
            }
        })
    }
}
