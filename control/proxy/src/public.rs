//! The public proxy (`proxy run public`): the engine serves the pairing and TLS ports on its
//! cores, tokio serves the JSON-RPC methods our Hyper node delivers (`requestConnection`,
//! `announceConnections`, `getAnnouncements`, SPEC §4.2) and notifies private proxies.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use tandem_engine::EngineHandle;
use tandem_net::tls::ServerTls;
use tandem_serving::ListenerGroup;
use tokio::sync::mpsc;
use tracing::{info, warn};

use super::announcements::Rules;
use super::control::ControlPlane;
use super::error::ProxyError;
use super::hyper_link::HyperLink;
use super::peer_check;
use super::pins::HyperDirectory;
use super::sni::{SNI_QUEUE, SniRouter};
use super::stats::ProxyCounters;
use super::store::PublicStore;
use crate::access_log::AccessLog;
use crate::control_service::EventHub;
use crate::quota::{Quotas, counter_for};
use crate::reload::ProxySettingsSource;
use crate::settings::PublicProxySettings;

use crate::upgrade::{Inherited, Upgrade};

use std::os::fd::OwnedFd;
use tandem_engine::handover::ListenerRole;
use upgrade_wiring::copy_fds;

#[path = "public_engine.rs"]
mod engine_start;
/// The upgrade's entry points on [`PublicProxy`] (a child module: it sets private fields).
#[path = "public_upgrade.rs"]
mod upgrade_wiring;
use engine_start::{default_endpoint, start_engine};
#[path = "public_handle.rs"]
mod handle;
/// [`PublicProxy::serve`]: the proxy's run until shutdown (a child module: it takes the proxy apart).
#[path = "public_serve.rs"]
mod serving;
pub use handle::PublicHandle;

/// Most connections in one `announceConnections` call.
pub const MAX_CONNECTIONS_PER_CALL: usize = 1000;
/// How often expired announcements are pruned from memory.
pub const PRUNE_INTERVAL: Duration = Duration::from_secs(60);

/// What the methods, the resolver bridge and the handle share.
pub struct PublicState {
    pub(crate) name: String,
    pub(crate) endpoint: String,
    pub(crate) hyper: HyperLink,
    /// The directory through `hyper`, for the caller and admin pins.
    pub(crate) pins: Arc<HyperDirectory>,
    pub(crate) engine: EngineHandle,
    pub(crate) announcements: PublicStore,
    pub(crate) counters: Arc<ProxyCounters>,
    /// Per-operator quotas of `requestConnection` (released by the event hub).
    pub(crate) quotas: Arc<Quotas>,
    /// Callers must present our operator's certificate (see `peer_check`).
    pub(crate) check_callers: bool,
    /// The per-pair access log, when configured (`requestConnection` names the operators).
    pub(crate) access_log: Option<Arc<AccessLog>>,
    jsonrpc_addr: SocketAddr,
    control_addr: Option<SocketAddr>,
}

/// A started public proxy; [`PublicProxy::serve`] runs it.
pub struct PublicProxy {
    state: Arc<PublicState>,
    listener: ListenerGroup,
    tls: Option<ServerTls>,
    settings: PublicProxySettings,
    jobs: mpsc::Receiver<super::sni::SniJob>,
    events: EventHub,
    control: Option<ControlPlane>,
    metrics: Option<ListenerGroup>,
    /// Binary upgrade: how to start the next binary (SIGUSR2), the control plane's listeners
    /// to hand it, and what this process inherited (reported ready once serving).
    upgrade: Option<Upgrade>,
    listener_fds: Vec<(ListenerRole, OwnedFd)>,
    inherited: Option<Inherited>,
    /// `proxy ctl upgrade` calls from the ControlService.
    asks: mpsc::Receiver<crate::control_service::UpgradeAsk>,
    /// Where SIGHUP and `proxy ctl reload` re-read the settings; `None`: no reloads.
    reload_source: Option<ProxySettingsSource>,
}

/// Binds the JSON-RPC port of `settings`.
pub async fn bind_public(settings: &PublicProxySettings) -> Result<ListenerGroup, ProxyError> {
    Ok(tandem_serving::bind(&settings.jsonrpc_server.bind_address).await?)
}

/// Runs the public proxy until `shutdown` resolves, then drains the engine (`engine.drain_grace`).
pub async fn run_public(
    settings: &PublicProxySettings,
    jsonrpc: impl Into<ListenerGroup>,
    shutdown: impl Future<Output = ()>,
) -> Result<(), ProxyError> {
    PublicProxy::start(settings, jsonrpc)
        .await?
        .serve(shutdown)
        .await
}

impl PublicProxy {
    /// Loads the announcements, starts the engine on the configured ports and prepares the
    /// JSON-RPC server on `jsonrpc`.
    pub async fn start(
        settings: &PublicProxySettings,
        jsonrpc: impl Into<ListenerGroup>,
    ) -> Result<Self, ProxyError> {
        Self::start_with(settings, jsonrpc.into(), None).await
    }

    async fn start_with(
        settings: &PublicProxySettings,
        jsonrpc: ListenerGroup,
        mut inherited: Option<Inherited>,
    ) -> Result<Self, ProxyError> {
        let server = &settings.jsonrpc_server;
        let tls = tandem_net::http::server_tls(server)?.map(ServerTls::new);
        if !peer_check(&settings.jsonrpc_server) {
            warn!(
                "jsonrpc_server asks for no client certificate: anyone who reaches it can call the proxy as its Hyper node"
            );
        }
        let hyper = HyperLink::new(
            &settings.jsonrpc_client,
            &settings.name,
            settings.call_timeout,
        )?;
        let pins = HyperDirectory::new(hyper.clone());
        let counters = Arc::new(ProxyCounters::default());
        let announcements = PublicStore::open(
            &settings.datastore,
            Rules::new(&settings.announcements),
            counters.clone(),
            Utc::now(),
        )
        .await?;
        // Read before the engine adopts anything: a section this build cannot read refuses
        // the hand-over while the old process still holds everything.
        let carried = match inherited.as_ref() {
            Some(i) => crate::upgrade::read_carried(&i.bundle)?,
            None => None,
        };
        let (jobs_tx, jobs) = mpsc::channel(SNI_QUEUE);
        let router = SniRouter::new(announcements.table(), jobs_tx, counters.clone());
        let (engine, events) = start_engine(settings, router, inherited.as_mut()).await?;
        let addrs = engine.local_addrs();
        if settings.internal_endpoint.is_none() && addrs.pairing.ip().is_unspecified() {
            warn!(pairing = %addrs.pairing, "internal_endpoint is unset and the pairing port listens on every address: peers are handed an unroutable endpoint; set internal_endpoint");
        }
        let endpoint = settings
            .internal_endpoint
            .clone()
            .unwrap_or_else(|| default_endpoint(&settings.internal_bind_address, addrs.pairing));
        let access_log = match &settings.access_log {
            Some(a) => Some(Arc::new(
                AccessLog::start(a).map_err(|e| ProxyError::io("opening the access log", e))?,
            )),
            None => None,
        };
        let quotas = Arc::new(Quotas::new(
            settings.quotas.clone(),
            counter_for(&settings.datastore).await?,
        ));
        if let Some(c) = carried {
            // Before the hub starts: the adopted pairs' events wait in the engine's channel.
            quotas.take_over(c);
        }
        let hub = EventHub::start_full(events, quotas.clone(), access_log.clone())
            .map_err(|e| ProxyError::io("starting the pair-event thread", e))?;
        let control = match &settings.control {
            Some(c) => {
                let pins = pins.clone();
                let listener = match inherited.as_mut() {
                    Some(i) => i.listener(ListenerRole::Control)?,
                    None => None,
                };
                Some(
                    ControlPlane::bind(
                        c,
                        engine.clone(),
                        endpoint.clone(),
                        hub.clone(),
                        pins,
                        listener,
                    )
                    .await?,
                )
            }
            None => None,
        };
        let jsonrpc_addr = jsonrpc
            .local_addr()
            .map_err(|e| ProxyError::io("reading the JSON-RPC address", e))?;
        let (pairing_all, tls_all) = engine.port_addrs();
        info!(pairing = %addrs.pairing, tls = ?addrs.tls, ?pairing_all, ?tls_all, %endpoint, jsonrpc = %jsonrpc_addr, cores = engine.cores(), drivers = ?engine.drivers(), "public proxy started");
        let state = Arc::new(PublicState {
            name: settings.name.clone(),
            endpoint,
            hyper,
            pins,
            engine,
            announcements,
            counters,
            quotas,
            check_callers: peer_check(&settings.jsonrpc_server),
            access_log,
            jsonrpc_addr,
            control_addr: control.as_ref().map(ControlPlane::addr),
        });
        let mut listener_fds: Vec<(ListenerRole, OwnedFd)> = copy_fds(&jsonrpc)?
            .into_iter()
            .map(|fd| (ListenerRole::JsonRpc, fd))
            .collect();
        // Bounded: one upgrade runs at a time; a second call waits behind it or is refused.
        let (asks_tx, asks) = mpsc::channel(1);
        if let Some(c) = &control {
            let copies = c.listener_copies()?;
            listener_fds.extend(copies.into_iter().map(|fd| (ListenerRole::Control, fd)));
            c.accept_upgrades(asks_tx);
        }
        Ok(Self {
            state,
            listener: jsonrpc,
            tls,
            settings: settings.clone(),
            jobs,
            events: hub,
            control,
            metrics: None,
            upgrade: None,
            listener_fds,
            inherited,
            asks,
            reload_source: None,
        })
    }

    /// Serves `/metrics`, `/healthz` and `/readyz` on `listener` while the proxy runs (ready
    /// once serving, not ready while draining); see [`super::metrics`].
    pub fn with_metrics(mut self, listener: impl Into<ListenerGroup>) -> Self {
        let listener = listener.into();
        self.keep_for_upgrade(ListenerRole::Metrics, &listener);
        self.metrics = Some(listener);
        self
    }

    /// Reloads on SIGHUP and `proxy ctl reload` from `source` (see [`crate::reload`]).
    pub fn with_reloads(mut self, source: ProxySettingsSource) -> Self {
        self.reload_source = Some(source);
        self
    }
}
