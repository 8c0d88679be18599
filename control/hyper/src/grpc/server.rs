//! The `Hyper` gRPC service (SPEC §2.6 inbound) and [`GrpcServer::start`], which runs it with tonic
//! over the connections of [`super::incoming`].

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tandem_proto::hyper::hyper_server::{Hyper, HyperServer};
use tandem_proto::{MAX_MESSAGE_BYTES, hyper as pb};
use tokio::task::JoinHandle;
use tonic::{Request, Response, Status, Streaming};
use tracing::{Instrument, debug, info, info_span};

use super::convert::{announced_name, request_from_pb, response_to_pb, status_for};
use super::incoming::{self, InjectHandle, Sources};
use super::peer_identity::PeerIdentity;
use super::reverse::{PushStream, ReverseChannel};
use super::{ALPN_H2, GrpcError};
use crate::broker::types::{DirectorySource, RequestSink};
use tandem_net::grpc::{TonicLimits, serve_tls};
use tandem_net::tls::{ServerTls, server_config};
use tandem_serving::{Admission, Http2Limits, ServingMetrics};
use tandem_settings::hyper::{GrpcServerSettings, Timeouts};

/// Streams (calls) one connection may have open at once.
const MAX_STREAMS_PER_CONNECTION: u32 = 512;
/// How long a reverse client has to send its announcement.
const ANNOUNCE_TIMEOUT: Duration = Duration::from_secs(10);
/// Server keepalive (SPEC §1.1): ping an idle connection every minute, drop it after 30 s silence.
const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(60);
const KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(30);
/// Connections are recycled after a day (SPEC §1.1 MaxConnectionAge), with a minute of grace.
const MAX_CONNECTION_AGE: Duration = Duration::from_secs(24 * 3600);
const MAX_CONNECTION_AGE_GRACE: Duration = Duration::from_secs(60);

/// The tonic limits of the `Hyper` service under the listener's HTTP/2 limits `h2`.
fn limits(h2: Http2Limits) -> TonicLimits {
    TonicLimits {
        max_streams: MAX_STREAMS_PER_CONNECTION,
        h2,
        keepalive_interval: KEEPALIVE_INTERVAL,
        keepalive_timeout: KEEPALIVE_TIMEOUT,
        max_connection_age: MAX_CONNECTION_AGE,
        max_connection_age_grace: MAX_CONNECTION_AGE_GRACE,
    }
}

/// The tonic service.
struct HyperService {
    sink: Arc<dyn RequestSink>,
    reverse: Arc<ReverseChannel>,
}

fn identity<T>(request: &Request<T>) -> Result<PeerIdentity, Status> {
    request
        .extensions()
        .get::<PeerIdentity>()
        .cloned()
        .ok_or_else(|| Status::unauthenticated("cannot determine client info"))
}

#[tonic::async_trait]
impl Hyper for HyperService {
    async fn call(&self, request: Request<pb::Request>) -> Result<Response<pb::Response>, Status> {
        let peer = identity(&request)?;
        let message = request.into_inner();
        let Some(client) = peer.client(&message.client_name).map(|c| c.name.clone()) else {
            debug!(claimed = %message.client_name, operator = peer.primary(), "clientName not bound to the certificate");
            return Err(Status::permission_denied("no matching client"));
        };
        let request = request_from_pb(message);
        let id = request.id.clone();
        let span = info_span!("grpc_call", client = %client, id = %id);
        match self
            .sink
            .deliver_request(request, client)
            .instrument(span)
            .await
        {
            Ok(mut response) => {
                response.id = id;
                Ok(Response::new(response_to_pb(response)))
            }
            Err(e) => Err(status_for(&e)),
        }
    }

    type ServerCallStream = PushStream;

    async fn server_call(
        &self,
        request: Request<Streaming<pb::Response>>,
    ) -> Result<Response<PushStream>, Status> {
        let peer = identity(&request)?;
        let mut inbound = request.into_inner();
        let first = tokio::time::timeout(ANNOUNCE_TIMEOUT, inbound.message())
            .await
            .map_err(|_| Status::deadline_exceeded("no client announcement"))??
            .ok_or_else(|| Status::invalid_argument("invalid client announcement"))?;
        let name = announced_name(&first)
            .ok_or_else(|| Status::invalid_argument("invalid client announcement"))?;
        if !peer.has_name(&name) {
            return Err(Status::permission_denied("invalid client name supplied"));
        }
        info!(operator = %name, "reverse stream opened");
        Ok(Response::new(self.reverse.register(name, inbound)))
    }
}

/// A running gRPC server.
#[derive(Debug)]
pub struct GrpcServerHandle {
    /// The `grpc_server` channel (reverse streams), for the broker.
    pub reverse: Arc<ReverseChannel>,
    /// Hands sockets to the server (the proxy path).
    pub inject: InjectHandle,
    /// The address the listener is bound to.
    pub local_addr: SocketAddr,
    /// The listener's TLS config; a reload replaces it for new connections.
    pub tls: ServerTls,
    /// Ends after shutdown, once connections have closed or [`super::SHUTDOWN_GRACE`] has passed.
    pub task: JoinHandle<()>,
}

/// The gRPC server of an operator.
#[derive(Debug)]
pub struct GrpcServer;

impl GrpcServer {
    /// Starts serving `Hyper` on `listener` (and injected sockets) until `shutdown` resolves,
    /// counting the serving kit's admissions and cuts in `metrics`. `settings.bind_address` is
    /// not used (the caller binds); TLS and rate limits are. Requests go to `sink` (the broker);
    /// reverse-stream calls wait at most `timeouts.call`. Must run inside a tokio runtime.
    #[allow(clippy::too_many_arguments)]
    pub fn start(
        metrics: ServingMetrics,
        settings: &GrpcServerSettings,
        own_name: &str,
        timeouts: &Timeouts,
        directory: Arc<dyn DirectorySource>,
        sink: Arc<dyn RequestSink>,
        listener: impl Into<tandem_serving::ListenerGroup>,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<GrpcServerHandle, GrpcError> {
        let listener = listener.into();
        let tls = ServerTls::new(server_config(&settings.tls, &[ALPN_H2])?);
        let local_addr = listener.local_addr().map_err(GrpcError::Listener)?;
        let reverse = Arc::new(ReverseChannel::new(own_name, timeouts.call));
        let (inject, injected) = incoming::inject_channel();
        let sources = Sources {
            listener,
            tls: tls.clone(),
            directory,
            rate_limits: settings.tcp_rate_limits.clone(),
            admission: Admission::new("grpc", settings.serving.clone(), metrics.clone()),
            injected: incoming::injected_admission(&settings.serving, metrics),
        };
        let h2 = settings.serving.http2;
        let service = HyperServer::new(HyperService {
            sink,
            reverse: reverse.clone(),
        })
        .max_decoding_message_size(MAX_MESSAGE_BYTES)
        .max_encoding_message_size(MAX_MESSAGE_BYTES);
        let router = limits(h2).builder().add_service(service);
        let (stop, stopped) = tandem_serving::shutdown();
        let reverse_for_stop = reverse.clone();
        let span = info_span!("grpc_server", operator = %own_name, addr = %local_addr);
        let task = tokio::spawn(
            async move {
                let signal = async move {
                    shutdown.await;
                    stop.trigger();
                    reverse_for_stop.close_all().await;
                };
                let serve = serve_tls(sources.into_listener(injected), router, stopped);
                tokio::join!(signal, serve);
                info!("gRPC server stopped");
            }
            .instrument(span),
        );
        Ok(GrpcServerHandle {
            reverse,
            inject,
            local_addr,
            tls,
            task,
        })
    }
}
