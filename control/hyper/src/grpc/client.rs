//! The `grpc_client` channel (SPEC §2.6 outbound): one reused tonic channel per node of a peer
//! (lazily connected, reconnected by tonic after a failure), keepalive, bounded concurrent calls per
//! node and a deadline on every call. Proxied peers are reached through a [`ProxyDialer`]. A peer
//! whose entry lists several `grpc_server` channels (the nodes of a proxy operator) is served by
//! whichever node [`super::nodes`] picks; see `client_nodes.rs`.

use crate::broker::ChannelError;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use prometheus_client::metrics::counter::Counter;
use prometheus_client::registry::Registry;
use rustls::ClientConfig;
use tandem_proto::codec::{Encoded, HyperCodec};
use tandem_proto::hyper::hyper_client::HyperClient;
use tandem_proto::{CALL_PATH, MAX_MESSAGE_BYTES};
use tokio::net::TcpStream;
use tokio::sync::Semaphore;
use tonic::transport::{Channel as TonicChannel, Endpoint};

use super::connector::{Connector, Route};
use super::nodes::{Health, NodeView};
use super::peer_identity::PeerIdentity;
use super::peer_server::GrpcServerEntry;
use super::{ALPN_H2, GrpcError};
use crate::broker::types::{
    Address, BoxFuture, Channel, ClientInfo, DeliveryError, DirectorySource, HyperRequest,
    HyperResponse,
};
use tandem_directory::entry::DirectoryEntry;
use tandem_net::tls::client_config;
use tandem_settings::hyper::{GrpcClientSettings, Timeouts};

/// Cached channels (one per node of a peer); past it the least recently used one is dropped.
pub const MAX_PEERS: usize = 1024;
/// Calls in flight to one peer; further calls wait for a slot within their deadline.
pub const MAX_CALLS_PER_PEER: usize = 256;
/// Client keepalive (SPEC §1.1): ping every 30 s, give up after 20 s without an answer.
const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(30);
const KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(20);

/// Connects to an operator reachable only through its proxy (the proxy issue implements it).
pub trait ProxyDialer: Send + Sync + 'static {
    /// A TCP socket that leads to `operator`'s gRPC server through `proxy` (token already sent).
    /// The TLS handshake and identity check happen on top of it.
    fn dial<'a>(
        &'a self,
        operator: &'a str,
        proxy: &'a str,
    ) -> BoxFuture<'a, Result<TcpStream, DeliveryError>>;
}

/// One node's cached channel (a peer has one node per `grpc_server` channel of its entry).
pub(crate) struct Peer {
    pub(crate) name: String,
    pub(crate) route: Route,
    pub(crate) channel: TonicChannel,
    pub(crate) calls: Semaphore,
    /// The server's identity at the last handshake (for reverse streams).
    pub(crate) server: Arc<Mutex<Option<PeerIdentity>>>,
    last_used: Mutex<Instant>,
    /// Up, or down with its back-off (held only for the state change, never across an await).
    health: Mutex<Health>,
}

impl Peer {
    pub(crate) fn server_identity(&self) -> Option<PeerIdentity> {
        lock(&self.server).clone()
    }

    /// What the node choice needs: calls in flight and health.
    pub(crate) fn view(&self) -> NodeView {
        NodeView {
            in_flight: MAX_CALLS_PER_PEER.saturating_sub(self.calls.available_permits()),
            health: *lock(&self.health),
        }
    }

    /// Applies a health transition.
    pub(crate) fn update_health(&self, change: impl FnOnce(Health) -> Health) {
        let mut health = lock(&self.health);
        *health = change(*health);
    }
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// The `grpc_client` channel.
pub struct GrpcClient {
    pub(crate) own_name: String,
    use_proxy: bool,
    tls: Arc<ClientConfig>,
    pub(crate) timeouts: Timeouts,
    pub(crate) directory: Arc<dyn DirectorySource>,
    /// How proxied peers are dialed (`None`: only direct peers are reached).
    dialer: Option<Arc<dyn ProxyDialer>>,
    /// Cached channels by (operator, route): one per node.
    peers: Mutex<HashMap<(String, Route), Arc<Peer>>>,
    /// Calls sent again after a never-sent failure (`hyper_grpc_transparent_retries_total`).
    pub(crate) retries: Counter,
}

impl std::fmt::Debug for GrpcClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GrpcClient")
            .field("own_name", &self.own_name)
            .field("use_proxy", &self.use_proxy)
            .field("peers", &lock(&self.peers).len())
            .finish()
    }
}

impl GrpcClient {
    /// The channel of operator `own_name` (its `clientName`), with the client certificate of
    /// `settings.tls` (its `server_name` is ignored: each peer is verified against its operator
    /// name). It reaches direct peers only; see [`GrpcClient::proxied`].
    pub fn new(
        settings: &GrpcClientSettings,
        own_name: &str,
        timeouts: Timeouts,
        directory: Arc<dyn DirectorySource>,
    ) -> Result<Arc<Self>, GrpcError> {
        Self::build(settings, own_name, timeouts, directory, None)
    }

    /// [`GrpcClient::new`] that also reaches peers behind a proxy operator through `dialer`
    /// (which holds the broker weakly: the broker owns this channel).
    pub fn proxied(
        settings: &GrpcClientSettings,
        own_name: &str,
        timeouts: Timeouts,
        directory: Arc<dyn DirectorySource>,
        dialer: Arc<dyn ProxyDialer>,
    ) -> Result<Arc<Self>, GrpcError> {
        Self::build(settings, own_name, timeouts, directory, Some(dialer))
    }

    fn build(
        settings: &GrpcClientSettings,
        own_name: &str,
        timeouts: Timeouts,
        directory: Arc<dyn DirectorySource>,
        dialer: Option<Arc<dyn ProxyDialer>>,
    ) -> Result<Arc<Self>, GrpcError> {
        Ok(Arc::new(Self {
            own_name: own_name.to_owned(),
            use_proxy: settings.use_proxy,
            tls: client_config(&settings.tls, &[ALPN_H2])?,
            timeouts,
            directory,
            dialer,
            peers: Mutex::new(HashMap::new()),
            retries: Counter::default(),
        }))
    }

    /// Calls sent again on the same node because the first try never reached the server (see
    /// [`super::convert::never_sent`]), since start.
    pub fn transparent_retries(&self) -> u64 {
        self.retries.get()
    }

    /// Registers the client's counters (`hyper_grpc_transparent_retries_total`) in `registry`.
    pub fn register_metrics(&self, registry: &mut Registry) {
        registry.register(
            "hyper_grpc_transparent_retries",
            "gRPC calls sent again on the same node because the try never reached the peer",
            self.retries.clone(),
        );
    }

    /// Peers with a cached channel (sorted, each once however many of its nodes are cached).
    pub fn cached_peers(&self) -> Vec<String> {
        let mut names: Vec<_> = lock(&self.peers).keys().map(|(n, _)| n.clone()).collect();
        names.sort();
        names.dedup();
        names
    }

    pub(crate) fn route(&self, server: &GrpcServerEntry) -> Result<Route, DeliveryError> {
        if server.proxy.is_empty() {
            return Ok(Route::Direct(server.address.clone()));
        }
        if !self.use_proxy {
            return Err(ChannelError::ProxyDisabled.into());
        }
        if self.dialer.is_none() {
            return Err(ChannelError::NoProxyDialer {
                proxy: server.proxy.clone(),
            }
            .into());
        }
        Ok(Route::Proxy(server.proxy.clone()))
    }

    /// The cached channel to `name`'s node at `route`, created (lazily connected) when missing.
    pub(crate) fn peer(&self, name: &str, route: Route) -> Arc<Peer> {
        let mut peers = lock(&self.peers);
        let key = (name.to_owned(), route);
        if let Some(peer) = peers.get(&key) {
            *lock(&peer.last_used) = Instant::now();
            return peer.clone();
        }
        if peers.len() >= MAX_PEERS {
            let oldest = peers
                .iter()
                .min_by_key(|(_, p)| *lock(&p.last_used))
                .map(|(k, _)| k.clone());
            if let Some(oldest) = oldest {
                peers.remove(&oldest);
            }
        }
        let peer = Arc::new(self.new_peer(name, key.1.clone()));
        peers.insert(key, peer.clone());
        peer
    }

    fn new_peer(&self, name: &str, route: Route) -> Peer {
        let server = Arc::new(Mutex::new(None));
        let connector = Arc::new(Connector {
            operator: name.to_owned(),
            route: route.clone(),
            tls: self.tls.clone(),
            connect_timeout: self.timeouts.connect,
            directory: self.directory.clone(),
            dialer: self.dialer.clone(),
            server: server.clone(),
        });
        // The URI only names the peer (`:authority`); the connector decides where to connect.
        let endpoint = Endpoint::from_shared(format!("http://{name}"))
            .unwrap_or_else(|_| Endpoint::from_static("http://peer.invalid"))
            .http2_keep_alive_interval(KEEPALIVE_INTERVAL)
            .keep_alive_timeout(KEEPALIVE_TIMEOUT)
            .keep_alive_while_idle(true);
        let channel =
            endpoint.connect_with_connector_lazy(tower::service_fn(move |_: http::Uri| {
                connector.clone().connect()
            }));
        Peer {
            name: name.to_owned(),
            route,
            channel,
            calls: Semaphore::new(MAX_CALLS_PER_PEER),
            server,
            last_used: Mutex::new(Instant::now()),
            health: Mutex::new(Health::Up),
        }
    }

    /// A gRPC client on `peer`'s channel with Tandem's message bounds.
    pub(crate) fn grpc(peer: &Peer) -> HyperClient<TonicChannel> {
        HyperClient::new(peer.channel.clone())
            .max_decoding_message_size(MAX_MESSAGE_BYTES)
            .max_encoding_message_size(MAX_MESSAGE_BYTES)
    }

    /// One `Hyper.Call` of an already encoded request on `peer`'s channel, as the generated
    /// client sends it (same path, method extension, codec and message bounds).
    pub(crate) async fn send(
        peer: &Peer,
        request: tonic::Request<Encoded>,
    ) -> Result<tandem_proto::Response, tonic::Status> {
        let mut grpc = tonic::client::Grpc::new(peer.channel.clone())
            .max_decoding_message_size(MAX_MESSAGE_BYTES)
            .max_encoding_message_size(MAX_MESSAGE_BYTES);
        grpc.ready()
            .await
            .map_err(|e| tonic::Status::unknown(format!("Service was not ready: {e}")))?;
        let mut request = request;
        request
            .extensions_mut()
            .insert(tonic::GrpcMethod::new("Hyper", "Call"));
        let codec = HyperCodec::<Encoded, tandem_proto::Response>::default();
        let path = http::uri::PathAndQuery::from_static(CALL_PATH);
        grpc.unary(request, path, codec)
            .await
            .map(tonic::Response::into_inner)
    }

    /// One call, all of it (directory lookup, connect, slot, answer) within `timeouts.call`.
    async fn call(&self, request: HyperRequest) -> Result<HyperResponse, DeliveryError> {
        let started = Instant::now();
        let deadline = self.timeouts.call;
        let address = Address::parse(&request.id).ok_or(DeliveryError::BadAddress)?;
        let timeout = || DeliveryError::Timeout {
            peer: address.operator.clone(),
            seconds: deadline.as_secs_f64(),
        };
        match tokio::time::timeout(deadline, self.exchange(&address, request, started)).await {
            // tonic enforces the same deadline (the request's grpc-timeout) and may fire first:
            // either way the caller sees one kind of error, a timeout.
            // (10 ms of slack for timer rounding between the two clocks.)
            Ok(Err(DeliveryError::Channel(_)))
                if started.elapsed() + Duration::from_millis(10) >= deadline =>
            {
                Err(timeout())
            }
            Ok(result) => result,
            Err(_) => Err(timeout()),
        }
    }
}

impl Channel for GrpcClient {
    fn type_name(&self) -> &'static str {
        "grpc_client"
    }

    fn can_deliver_to(&self, address: &Address, recipient: &DirectoryEntry) -> bool {
        address.operator != self.own_name
            && GrpcServerEntry::all(recipient)
                .iter()
                .any(|s| !s.internal && s.proxy != self.own_name)
    }

    fn deliver(
        &self,
        request: HyperRequest,
        _client: ClientInfo,
    ) -> BoxFuture<'_, Result<HyperResponse, DeliveryError>> {
        Box::pin(self.call(request))
    }
}
