//! `hyper server run` as a library (SPEC §2): the directory client, the message broker and the
//! channels in settings order, the gRPC server and client, and the local JSON-RPC gateway.
//!
//! The binary calls [`Listeners::bind`] then [`run`]; tests bind `127.0.0.1:0` themselves.

mod gateway;

use std::future::Future;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tracing::{Instrument, info, info_span};

pub use gateway::{InboundOnly, MAX_GATEWAY_BODY_BYTES, ROUTE_TIMEOUT_MARGIN};

use crate::broker::{
    BrokerError, JsonRpcClientChannel, JsonRpcClientError, MessageBroker, StdoutChannel,
};
use crate::dirclient::{DirClientError, DirectoryClient};
use crate::grpc::{GrpcClient, GrpcError, GrpcServer};
use crate::settings::HyperSettings;
use crate::settings::hyper::ChannelKind;

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum HyperServerError {
    /// Binding or reading a listener failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A channel that listens has no listener (see [`Listeners`]).
    #[error("the {0} channel needs a listener")]
    MissingListener(&'static str),
    /// The directory client could not be built.
    #[error(transparent)]
    Directory(#[from] DirClientError),
    /// The broker refused a channel.
    #[error(transparent)]
    Broker(#[from] BrokerError),
    /// TLS settings are unusable.
    #[error(transparent)]
    Tls(#[from] crate::tls::TlsError),
    /// The gRPC transport could not start.
    #[error(transparent)]
    Grpc(#[from] GrpcError),
    /// The `jsonrpc_client` channel could not be built.
    #[error(transparent)]
    JsonRpcClient(#[from] JsonRpcClientError),
}

impl HyperServerError {
    /// A stable label for logs and metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Io { .. } => "io",
            Self::MissingListener(_) => "missing_listener",
            Self::Directory(e) => e.kind(),
            Self::Broker(e) => e.kind(),
            Self::Tls(e) => e.kind(),
            Self::Grpc(e) => e.kind(),
            Self::JsonRpcClient(e) => e.kind(),
        }
    }
}

/// Pre-bound listeners for the channels that listen.
#[derive(Debug, Default)]
pub struct Listeners {
    /// For the `grpc_server` channel.
    pub grpc: Option<TcpListener>,
    /// For the `jsonrpc_server` channel (the local gateway).
    pub jsonrpc: Option<TcpListener>,
}

impl Listeners {
    /// Binds the `bind_address` of the configured `grpc_server` and `jsonrpc_server` channels.
    pub async fn bind(settings: &HyperSettings) -> Result<Self, HyperServerError> {
        let mut listeners = Self::default();
        for channel in &settings.channels {
            let (slot, address) = match &channel.kind {
                ChannelKind::GrpcServer(s) => (&mut listeners.grpc, &s.bind_address),
                ChannelKind::JsonRpcServer(s) => (&mut listeners.jsonrpc, &s.bind_address),
                _ => continue,
            };
            let io = |context: String| move |source| HyperServerError::Io { context, source };
            let addrs = address
                .resolve()
                .map_err(io(format!("resolving {address}")))?;
            *slot = Some(
                TcpListener::bind(addrs.as_slice())
                    .await
                    .map_err(io(format!("binding {address}")))?,
            );
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
    let span = info_span!("hyper_server", operator = %settings.name);
    async move {
        let (stop_tx, stop_rx) = watch::channel(false);
        let mut tasks = start(settings, listeners, &stop_rx)?;
        info!(channels = settings.channels.len(), "hyper server running");
        shutdown.await;
        info!("hyper server stopping");
        let _ = stop_tx.send(true);
        while tasks.join_next().await.is_some() {}
        info!("hyper server stopped");
        Ok(())
    }
    .instrument(span)
    .await
}

/// A future that resolves when `stop` turns true (or its sender is dropped).
fn stop_signal(stop: &watch::Receiver<bool>) -> impl Future<Output = ()> + Send + 'static {
    let mut stop = stop.clone();
    async move {
        let _ = stop.wait_for(|s| *s).await;
    }
}

/// Builds the directory client, the broker and the channels in settings order, and starts their
/// tasks. On error, the tasks already started stop when `stop` is dropped by the caller.
fn start(
    settings: &HyperSettings,
    mut listeners: Listeners,
    stop: &watch::Receiver<bool>,
) -> Result<JoinSet<()>, HyperServerError> {
    let mut tasks = JoinSet::new();
    let name = settings.name.as_str();
    let timeouts = settings.timeouts;
    let directory = Arc::new(DirectoryClient::from_settings(settings)?);
    let broker = Arc::new(MessageBroker::new(name, directory.clone(), timeouts.call));
    tasks.spawn({
        let (directory, stop) = (directory.clone(), stop_signal(stop));
        async move { directory.run_refresh(stop).await }
    });
    for channel in &settings.channels {
        match &channel.kind {
            ChannelKind::GrpcServer(s) => {
                let listener = listeners
                    .grpc
                    .take()
                    .ok_or(HyperServerError::MissingListener("grpc_server"))?;
                let handle = GrpcServer::start(
                    s,
                    name,
                    &timeouts,
                    directory.clone(),
                    broker.clone(),
                    listener,
                    stop_signal(stop),
                )?;
                broker.add_channel(handle.reverse.clone())?;
                tasks.spawn(async move {
                    let _ = handle.task.await;
                });
            }
            ChannelKind::GrpcClient(s) => {
                let client = GrpcClient::new(s, name, timeouts, directory.clone())?;
                broker.add_channel(client.clone())?;
                let reverse = client.start_reverse_streams(broker.clone(), stop_signal(stop));
                tasks.spawn(async move {
                    let _ = reverse.await;
                });
            }
            ChannelKind::JsonRpcServer(s) => {
                let listener = listeners
                    .jsonrpc
                    .take()
                    .ok_or(HyperServerError::MissingListener("jsonrpc_server"))?;
                broker.add_channel(Arc::new(InboundOnly("jsonrpc_server")))?;
                tasks.spawn(gateway::serve_gateway(
                    s,
                    broker.clone(),
                    timeouts.call,
                    listener,
                    stop_signal(stop),
                )?);
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
    }
    Ok(tasks)
}
