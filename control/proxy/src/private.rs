//! The private proxy (`proxy run private`, SPEC §4.7): announces domains to public proxies,
//! re-announces them periodically, and for each `incomingConnection` dials the public proxy's
//! pairing port with the token and forwards (ForwardTLS) or terminates (TerminateTLS) the TLS
//! connection. Connection tasks are tracked and bounded.

use std::collections::BTreeMap;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::reload::{Block, Live, ProxySettingsSource};
use chrono::Utc;
use tandem_net::reload::{ReloadFn, ReloadMetrics, Reloader};
use tandem_net::tls::ServerTls;
use tandem_serving::{ListenerGroup, Notice};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tracing::{info, warn};

use super::announcements::{PrivateAnnouncement, Rules};
use super::error::{CallError, ProxyError};
use super::hyper_link::{HyperLink, LinkError};
use super::journal::SHARED_REFRESH_INTERVAL;
use super::pins::HyperDirectory;
use super::private_methods::PrivateMethods;
use super::private_store::PrivateStore;
use super::public::MAX_CONNECTIONS_PER_CALL;
use super::stats::PrivateCounters;
use super::terminate::Terminator;
use super::{peer_check, route_config};
use crate::settings::PrivateProxySettings;
use tandem_contracts::Call;
use tandem_contracts::public_proxy::{AnnounceConnections, AnnouncedConnection};
use tandem_net::http::{ClientError, ServerLimits, jsonrpc_router_observed, serve};
use tandem_net::jsonrpc::ErrorObject;
use tandem_net::metrics::{MetricsServer, Readiness, Refusals};

/// Connections handled at once (each holds two sockets); more `incomingConnection` calls are
/// refused with 503 until one ends.
pub const MAX_PRIVATE_CONNECTIONS: usize = 1024;
/// How long shutdown waits for open connections before cutting them.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(2);

pub(super) struct PrivateState {
    pub(super) name: String,
    pub(super) hyper: HyperLink,
    /// The directory through `hyper`, for the caller pins.
    pub(super) pins: Arc<HyperDirectory>,
    /// `incomingConnection` endpoints refused (not the calling public proxy's), by reason.
    pub(super) refused: Refusals,
    pub(super) announcements: PrivateStore,
    pub(super) counters: Arc<PrivateCounters>,
    pub(super) settings: PrivateProxySettings,
    pub(super) terminator: Option<Terminator>,
    pub(super) slots: Arc<Semaphore>,
    pub(super) connections: Mutex<JoinSet<()>>,
    /// Callers must present our operator's certificate (see `peer_check`).
    pub(super) check_callers: bool,
}

/// A started private proxy; [`PrivateProxy::serve`] runs it.
pub struct PrivateProxy {
    state: Arc<PrivateState>,
    listener: ListenerGroup,
    tls: Option<ServerTls>,
    addr: SocketAddr,
    metrics: Option<ListenerGroup>,
    /// Where SIGHUP re-reads the settings; `None`: no reloads.
    reload_source: Option<ProxySettingsSource>,
}

/// Binds the JSON-RPC port of `settings`.
pub async fn bind_private(settings: &PrivateProxySettings) -> Result<ListenerGroup, ProxyError> {
    Ok(tandem_serving::bind(&settings.jsonrpc_server.bind_address).await?)
}

/// Runs the private proxy until `shutdown` resolves.
pub async fn run_private(
    settings: &PrivateProxySettings,
    jsonrpc: impl Into<ListenerGroup>,
    shutdown: impl Future<Output = ()>,
) -> Result<(), ProxyError> {
    PrivateProxy::start(settings, jsonrpc)
        .await?
        .serve(shutdown)
        .await
}

impl PrivateProxy {
    /// Loads the announcements and prepares the JSON-RPC server on `jsonrpc`.
    pub async fn start(
        settings: &PrivateProxySettings,
        jsonrpc: impl Into<ListenerGroup>,
    ) -> Result<Self, ProxyError> {
        let jsonrpc = jsonrpc.into();
        let tls = tandem_net::http::server_tls(&settings.jsonrpc_server)?.map(ServerTls::new);
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
        let terminator = Terminator::new(&settings.internal_endpoint)?;
        let counters = Arc::new(PrivateCounters::default());
        let announcements = PrivateStore::open(
            &settings.datastore,
            Rules::new(&settings.announcements),
            counters.clone(),
            Utc::now(),
        )
        .await?;
        let addr = jsonrpc
            .local_addr()
            .map_err(|e| ProxyError::io("reading the JSON-RPC address", e))?;
        info!(jsonrpc = %addr, internal = %settings.internal_endpoint.address, terminate = terminator.is_some(), "private proxy started");
        let state = Arc::new(PrivateState {
            name: settings.name.clone(),
            pins: HyperDirectory::new(hyper.clone()),
            refused: Refusals::default(),
            hyper,
            announcements,
            counters,
            settings: settings.clone(),
            terminator,
            slots: Arc::new(Semaphore::new(MAX_PRIVATE_CONNECTIONS)),
            connections: Mutex::new(JoinSet::new()),
            check_callers: peer_check(&settings.jsonrpc_server),
        });
        Ok(Self {
            state,
            listener: jsonrpc,
            tls,
            addr,
            metrics: None,
            reload_source: None,
        })
    }

    /// Serves `/metrics`, `/healthz` and `/readyz` on `listener` while the proxy runs.
    pub fn with_metrics(mut self, listener: impl Into<ListenerGroup>) -> Self {
        self.metrics = Some(listener.into());
        self
    }

    /// Reloads on SIGHUP from `source` (see [`crate::reload`]).
    pub fn with_reloads(mut self, source: ProxySettingsSource) -> Self {
        self.reload_source = Some(source);
        self
    }

    /// The JSON-RPC server's bound address.
    pub fn jsonrpc_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Serves until `shutdown` resolves, re-announcing every `reannounce_interval`.
    pub async fn serve(self, shutdown: impl Future<Output = ()>) -> Result<(), ProxyError> {
        let state = self.state;
        let (stop_tx, stop) = tandem_serving::shutdown();
        let route = route_config(
            &state.settings.jsonrpc_server,
            state.settings.call_timeout * 2,
        );
        let (mut registry, rpc_metrics, serving_metrics) = super::metrics::private_registry(
            state.slots.clone(),
            MAX_PRIVATE_CONNECTIONS,
            &state.refused,
            state.counters.clone(),
        );
        let router = jsonrpc_router_observed(
            Arc::new(PrivateMethods {
                state: state.clone(),
            }),
            route,
            Some(rpc_metrics),
        );
        let reload_metrics = ReloadMetrics::register(&mut registry);
        let reloads = self.reload_source.map(|source| {
            let live = Live::new(Block::Private, self.tls.clone(), None);
            let reload: ReloadFn = Arc::new(move || live.apply(crate::reload::prepare(source()?)?));
            tokio::spawn(Reloader::new(reload, reload_metrics).on_sighup(stop.clone()))
        });
        let ready = Readiness::new();
        let metrics = self
            .metrics
            .map(|l| MetricsServer::spawn(l, registry, ready.clone()));
        // The listener is bound: ready from here on (before the first request can be served).
        ready.set(true);
        let server = tokio::spawn(serve(
            self.listener,
            self.tls,
            router,
            ServerLimits::named(
                "private_proxy",
                state.settings.jsonrpc_server.serving.clone(),
                serving_metrics,
            ),
            stop.clone().wait(),
        ));
        // Type=notify: the service manager counts the proxy started from here.
        tandem_serving::notify(&[Notice::Ready]);
        tokio::pin!(shutdown);
        let mut tick = tokio::time::interval(state.settings.reannounce_interval);
        let mut refresh = tokio::time::interval(SHARED_REFRESH_INTERVAL);
        refresh.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = &mut shutdown => break,
                _ = tick.tick() => reannounce(&state).await,
                // Announcements other nodes wrote to a shared store count here too.
                _ = refresh.tick() => tokio::select! {
                    () = &mut shutdown => break,
                    r = state.announcements.refresh(Utc::now()) => {
                        if let Err(e) = r {
                            tracing::warn!(kind = e.kind(), error = %e, "reading the shared announcement store failed");
                        }
                    }
                },
            }
        }
        info!("private proxy stopping");
        tandem_serving::notify(&[Notice::Stopping]);
        ready.set(false);
        stop_tx.trigger();
        let _ = server.await;
        if let Some(reloads) = reloads {
            let _ = reloads.await;
        }
        let mut connections = std::mem::take(&mut *lock(&state.connections));
        let drained = tokio::time::timeout(SHUTDOWN_GRACE, async {
            while connections.join_next().await.is_some() {}
        });
        if drained.await.is_err() {
            connections.abort_all();
            while connections.join_next().await.is_some() {}
        }
        state.announcements.close(Utc::now()).await;
        if let Some(metrics) = metrics {
            metrics.stop().await;
        }
        Ok(())
    }
}

pub(super) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Prunes expired announcements and re-announces the live ones, grouped by public proxy.
async fn reannounce(state: &PrivateState) {
    let now = Utc::now();
    state.announcements.prune(now);
    let live = state.announcements.live(now);
    let mut by_proxy: BTreeMap<String, Vec<PrivateAnnouncement>> = BTreeMap::new();
    for a in live {
        by_proxy.entry(a.proxy.clone()).or_default().push(a);
    }
    for (proxy, list) in by_proxy {
        // The public proxy takes at most MAX_CONNECTIONS_PER_CALL per call.
        for batch in list.chunks(MAX_CONNECTIONS_PER_CALL) {
            if let Err(e) = announce_to(state, &proxy, batch).await {
                warn!(%proxy, kind = e.kind(), error = %e, "re-announcement failed");
            }
        }
    }
}

/// `<proxy>.announceConnections {connections}`; a refused item becomes an error.
pub(super) async fn announce_to(
    state: &PrivateState,
    proxy: &str,
    list: &[PrivateAnnouncement],
) -> Result<(), CallError> {
    let call = AnnounceConnections {
        connections: list
            .iter()
            .map(|a| AnnouncedConnection {
                domain: a.domain.clone(),
                expires_at: a.expires_at,
            })
            .collect(),
    };
    let results = state
        .hyper
        .call(proxy, &call)
        .await
        .map_err(CallError::Peer)?;
    match results.into_iter().flatten().next() {
        None => Ok(()),
        Some(refusal) => Err(CallError::Peer(LinkError::Call(ClientError::Rpc {
            endpoint: format!("{proxy}.{}", AnnounceConnections::METHOD),
            error: ErrorObject::new(refusal.code, refusal.message),
        }))),
    }
}
