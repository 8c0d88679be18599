//! `hyper server run` as a library (SPEC §2): the directory client, the message broker and the
//! channels in settings order, the gRPC server and client, and the local JSON-RPC gateway.
//!
//! The binary calls [`Listeners::bind`] then [`run`]; tests bind `127.0.0.1:0` themselves.

mod error;
mod gateway;
mod metrics;
pub mod reload;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use tokio::task::JoinSet;
use tracing::{Instrument, info, info_span};

use crate::broker::types::DirectorySource;

pub use error::HyperServerError;
pub use gateway::{InboundOnly, MAX_GATEWAY_BODY_BYTES, ROUTE_TIMEOUT_MARGIN};
pub use metrics::BROKER_METHODS;
pub use reload::{HyperSettingsSource, prepare};

use crate::broker::{JsonRpcClientChannel, MessageBroker, StdoutChannel};
use crate::dirclient::DirectoryClient;
use crate::grpc::{GrpcClient, GrpcServer, InjectHandle, ReverseChannel};
use crate::p2p::{BrokerProxyDialer, GrpcConnectionHandler};
use tandem_serving::{ListenerGroup, Shutdown, ShutdownTrigger};
use tandem_settings::HyperSettings;
use tandem_settings::hyper::{ChannelKind, ChannelSettings};
use tandem_types::OperatorName;

/// Pre-bound listeners for the channels that listen.
#[derive(Debug, Default)]
pub struct Listeners {
    /// For the `grpc_server` channel (one socket per address of its host name).
    pub grpc: Option<ListenerGroup>,
    /// For the `jsonrpc_server` channel (the local gateway).
    pub jsonrpc: Option<ListenerGroup>,
}

/// The name a supervisor gives the `grpc_server` socket it passes (`FileDescriptorName=`).
pub const GRPC_SOCKET: &str = "grpc_server";
/// The name a supervisor gives the `jsonrpc_server` (gateway) socket it passes.
pub const JSONRPC_SOCKET: &str = "jsonrpc_server";

impl Listeners {
    /// Adopts the sockets a supervisor passed as [`GRPC_SOCKET`] and [`JSONRPC_SOCKET`], else
    /// binds the `bind_address` of the configured `grpc_server` and `jsonrpc_server` channels.
    pub async fn bind(settings: &HyperSettings) -> Result<Self, HyperServerError> {
        let mut listeners = Self::default();
        for channel in &settings.channels {
            let (slot, name, address) = match &channel.kind {
                ChannelKind::GrpcServer(s) => (&mut listeners.grpc, GRPC_SOCKET, &s.bind_address),
                ChannelKind::JsonRpcServer(s) => (
                    &mut listeners.jsonrpc,
                    JSONRPC_SOCKET,
                    &s.server.bind_address,
                ),
                _ => continue,
            };
            *slot = Some(tandem_serving::bind_named(name, address).await?);
        }
        Ok(listeners)
    }
}

/// Runs the operator server until `shutdown` resolves, then stops every task it started and waits
/// for them (each has its own bounded grace).
pub async fn run(
    settings: &HyperSettings,
    listeners: Listeners,
    shutdown: impl Future<Output = ()>,
) -> Result<(), HyperServerError> {
    run_server(settings, listeners, shutdown, None).await
}

/// [`run`], and on every `SIGHUP` reloads what [`reload`] can change from `source`.
pub async fn run_reloading(
    settings: &HyperSettings,
    listeners: Listeners,
    shutdown: impl Future<Output = ()>,
    source: HyperSettingsSource,
) -> Result<(), HyperServerError> {
    run_server(settings, listeners, shutdown, Some(source)).await
}

async fn run_server(
    settings: &HyperSettings,
    listeners: Listeners,
    shutdown: impl Future<Output = ()>,
    source: Option<HyperSettingsSource>,
) -> Result<(), HyperServerError> {
    reload::prepare(settings.clone())?;
    tandem_net::reload::apply_log_level(settings.log_level.as_deref());
    let mut server = HyperServer::start(settings, listeners)?;
    if let Some(source) = source {
        server.reload_on_sighup(source);
    }
    if let Some(m) = &settings.metrics {
        let listener = tandem_net::metrics::bind(m).await?;
        server.serve_metrics(listener);
    }
    // Type=notify: started once every listener serves; STOPPING=1 when the shutdown begins.
    tandem_serving::notify(&[tandem_serving::Notice::Ready]);
    shutdown.await;
    tandem_serving::notify(&[tandem_serving::Notice::Stopping]);
    server.shutdown().await;
    Ok(())
}

/// The `grpc_server` channel's parts that other components use.
#[derive(Debug, Clone)]
pub struct GrpcServerParts {
    /// The reverse-stream channel (`grpc_server` in the broker).
    pub reverse: Arc<ReverseChannel>,
    /// Hands sockets to the gRPC server (the proxy path, `_connectionRequest`).
    pub inject: InjectHandle,
    /// Where the gRPC listener is bound.
    pub local_addr: SocketAddr,
}

/// A running operator server: its parts (for the proxy hooks and tests) and its tasks.
pub struct HyperServer {
    /// The broker (add `_connectionRequest` handlers here).
    pub broker: Arc<MessageBroker>,
    /// The directory client.
    pub directory: Arc<DirectoryClient>,
    /// The gRPC server, if configured.
    pub grpc_server: Option<GrpcServerParts>,
    /// The `grpc_client` channel, if configured (install a proxy dialer here).
    pub grpc_client: Option<Arc<GrpcClient>>,
    /// Where the JSON-RPC gateway is bound, if configured.
    pub jsonrpc_addr: Option<SocketAddr>,
    stop: ShutdownTrigger,
    tasks: JoinSet<()>,
    /// Taken by [`HyperServer::serve_metrics`].
    registry: Option<tandem_net::metrics::Registry>,
    /// Admissions, refusals and cuts of the gateway and the gRPC server.
    serving_metrics: tandem_serving::ServingMetrics,
    ready: Arc<tandem_net::metrics::Readiness>,
    metrics: Option<tandem_net::metrics::MetricsServer>,
    refusals: metrics::DoorRefusals,
    /// The listeners' TLS configs a reload replaces.
    live_tls: reload::LiveTls,
    reload_metrics: tandem_net::reload::ReloadMetrics,
}

impl std::fmt::Debug for HyperServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HyperServer")
            .field("broker", &self.broker)
            .field(
                "grpc_server",
                &self.grpc_server.as_ref().map(|g| g.local_addr),
            )
            .field("jsonrpc_addr", &self.jsonrpc_addr)
            .finish_non_exhaustive()
    }
}

impl HyperServer {
    /// Builds the directory client, the broker and the channels in settings order, and starts
    /// their tasks (must run inside a tokio runtime). On error, everything started is stopped.
    pub fn start(
        settings: &HyperSettings,
        mut listeners: Listeners,
    ) -> Result<Self, HyperServerError> {
        let span = info_span!("hyper_server", operator = %settings.name);
        let _entered = span.enter();
        let name = settings.name.as_str();
        let timeouts = settings.timeouts;
        let directory = Arc::new(DirectoryClient::from_settings(settings)?);
        let (stop, stopped) = tandem_serving::shutdown();
        // Dropping `server` on an error below stops and aborts what was started.
        let operator = OperatorName::new(name)?;
        let broker = Arc::new(MessageBroker::new(
            operator,
            directory.clone(),
            timeouts.call,
        ));
        let refusals = metrics::DoorRefusals::default();
        let mut registry = metrics::hyper_registry(&broker, &directory, &refusals);
        let serving_metrics = tandem_serving::ServingMetrics::register(&mut registry);
        let reload_metrics = tandem_net::reload::ReloadMetrics::register(&mut registry);
        let mut server = Self {
            broker,
            directory: directory.clone(),
            grpc_server: None,
            grpc_client: None,
            jsonrpc_addr: None,
            stop,
            tasks: JoinSet::new(),
            registry: Some(registry),
            serving_metrics,
            ready: tandem_net::metrics::Readiness::new(),
            metrics: None,
            refusals,
            live_tls: reload::LiveTls::default(),
            reload_metrics,
        };
        let refresh = stopped.clone().wait();
        server
            .tasks
            .spawn(async move { directory.run_refresh(refresh).await }.in_current_span());
        for channel in &settings.channels {
            server.add(channel, settings, &mut listeners, &stopped)?;
        }
        server.install_p2p(timeouts.connect)?;
        info!(channels = settings.channels.len(), "hyper server running");
        server.ready.set(true);
        Ok(server)
    }

    fn add(
        &mut self,
        channel: &ChannelSettings,
        settings: &HyperSettings,
        listeners: &mut Listeners,
        stop: &Shutdown,
    ) -> Result<(), HyperServerError> {
        let (name, timeouts, broker) = (settings.name.as_str(), settings.timeouts, &self.broker);
        let directory: Arc<dyn DirectorySource> = self.directory.clone();
        match &channel.kind {
            ChannelKind::GrpcServer(s) => {
                let listener = listeners
                    .grpc
                    .take()
                    .ok_or(HyperServerError::MissingListener("grpc_server"))?;
                let handle = GrpcServer::start(
                    self.serving_metrics.clone(),
                    s,
                    name,
                    &timeouts,
                    directory,
                    broker.clone(),
                    listener,
                    stop.clone().wait(),
                )?;
                broker.add_channel(handle.reverse.clone())?;
                self.live_tls.add("grpc_server", handle.tls.clone());
                let task = handle.task;
                self.tasks.spawn(async move {
                    let _ = task.await;
                });
                let parts = GrpcServerParts {
                    reverse: handle.reverse,
                    inject: handle.inject,
                    local_addr: handle.local_addr,
                };
                self.grpc_server = Some(parts);
            }
            ChannelKind::GrpcClient(s) => {
                let refused = self.refusals.endpoints.clone();
                let dialer = BrokerProxyDialer::new(broker, timeouts.connect, refused);
                let client = GrpcClient::proxied(s, name, timeouts, directory, dialer)?;
                if let Some(registry) = self.registry.as_mut() {
                    client.register_metrics(registry);
                }
                broker.add_channel(client.clone())?;
                let reverse = client.start_reverse_streams(broker.clone(), stop.clone().wait());
                self.tasks.spawn(async move {
                    let _ = reverse.await;
                });
                self.grpc_client = Some(client);
            }
            ChannelKind::JsonRpcServer(s) => {
                let listener = listeners
                    .jsonrpc
                    .take()
                    .ok_or(HyperServerError::MissingListener("jsonrpc_server"))?;
                broker.add_channel(Arc::new(InboundOnly("jsonrpc_server")))?;
                self.jsonrpc_addr = listener.local_addr().ok();
                let (serving, tls) = gateway::serve_gateway(
                    s,
                    broker.clone(),
                    timeouts.call,
                    self.refusals.gateway.clone(),
                    self.serving_metrics.clone(),
                    listener,
                    stop.clone().wait(),
                )?;
                if let Some(tls) = tls {
                    self.live_tls.add("jsonrpc_server", tls);
                }
                self.tasks.spawn(serving.in_current_span());
            }
            ChannelKind::JsonRpcClient(s) => {
                let pending = broker.pending().clone();
                broker.add_channel(Arc::new(JsonRpcClientChannel::new(
                    name,
                    s,
                    timeouts.call,
                    pending,
                )?))?;
            }
            ChannelKind::Stdout => broker.add_channel(Arc::new(StdoutChannel::new(name)))?,
        }
        Ok(())
    }

    /// The accepting end of brokered P2P connections (SPEC §4.5): `_connectionRequest` hands proxy
    /// sockets to the `grpc_server`. (The dialing end, `<proxy>.requestConnection`, is the
    /// `grpc_client`'s dialer, given to it when it is built.)
    fn install_p2p(&self, connect_timeout: std::time::Duration) -> Result<(), HyperServerError> {
        let refused = self.refusals.endpoints.clone();
        if let Some(server) = &self.grpc_server {
            let handler =
                GrpcConnectionHandler::new(server.inject.clone(), connect_timeout, refused);
            self.broker.add_connection_handler(handler)?;
        }
        Ok(())
    }

    /// The reloader of this server's TLS configs and log level, reading settings from `source`.
    pub fn reloader(&self, source: HyperSettingsSource) -> tandem_net::reload::Reloader {
        let live = self.live_tls.clone();
        let reload: tandem_net::reload::ReloadFn =
            Arc::new(move || live.apply(reload::prepare(source()?)?));
        tandem_net::reload::Reloader::new(reload, self.reload_metrics.clone())
    }

    /// Reloads on every `SIGHUP` until [`HyperServer::shutdown`].
    pub fn reload_on_sighup(&mut self, source: HyperSettingsSource) {
        let reloader = self.reloader(source);
        let stopped = self.stop.subscribe();
        self.tasks.spawn(reloader.on_sighup(stopped));
    }

    /// Serves `/metrics`, `/healthz` and `/readyz` on `listener` until [`HyperServer::shutdown`]
    /// (ready while the server runs, not ready while it stops). A second call is ignored.
    pub fn serve_metrics(&mut self, listener: impl Into<ListenerGroup>) {
        if let Some(registry) = self.registry.take() {
            self.metrics = Some(tandem_net::metrics::MetricsServer::spawn(
                listener,
                registry,
                self.ready.clone(),
            ));
        }
    }

    /// Stops every task and waits for them (each bounded by its own grace period).
    pub async fn shutdown(mut self) {
        info!(operator = %self.broker.name(), "hyper server stopping");
        self.ready.set(false);
        self.stop.trigger();
        while self.tasks.join_next().await.is_some() {}
        if let Some(metrics) = self.metrics.take() {
            metrics.stop().await;
        }
        info!(operator = %self.broker.name(), "hyper server stopped");
    }
}
