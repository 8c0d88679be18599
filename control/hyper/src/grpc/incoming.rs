//! The gRPC server's connections: TCP accepted from the listener (admitted by the serving kit and
//! the per-IP `tcp_rate_limits`) or injected (proxy sockets, SPEC §4.5, admitted apart so that a
//! flood on the public port never delays a brokered call), TLS-accepted under the kit's handshake
//! deadline, and mapped to an operator identity before tonic sees them. A peer without an identity
//! is closed; an identified one is established (tonic's keepalive and maximum age watch it).

use std::io;
use std::num::{NonZeroU32, NonZeroUsize};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::ServerConfig;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;
use tracing::{Instrument, debug, debug_span, warn};

use super::identity::{PeerIdentity, identify};
use crate::broker::types::DirectorySource;
use tandem_net::grpc::TlsConn;
use tandem_net::http::{RateLimit, RateLimiter};
use tandem_net::tls::peer_leaf;
use tandem_serving::{ACCEPT_BACKOFF, Admission, AdmissionConfig, Guarded, ServingConfig, Slot};
use tandem_settings::listeners::TcpRateLimit;

/// Injected (brokered) connections held at once, apart from the listener's own admission.
pub const MAX_INJECTED_CONNECTIONS: usize = 1024;
/// Injected sockets waiting to be picked up (the original's capacity 1, with room for bursts).
const INJECT_QUEUE: usize = 16;
/// Handshaken connections waiting for tonic to pick them up.
const READY_QUEUE: usize = 64;
/// How long [`InjectHandle::inject`] waits for room in the queue (the original's 2 s).
pub const INJECT_TIMEOUT: Duration = Duration::from_secs(2);

/// A TLS connection with its peer's operator identity (tonic's connect info).
pub(crate) type PeerStream = TlsConn<PeerIdentity>;

/// Hands already-connected sockets to the gRPC server, which TLS-accepts them like any other
/// (the proxy path's `_connectionRequest`). Cheap to clone.
#[derive(Debug, Clone)]
pub struct InjectHandle {
    tx: mpsc::Sender<TcpStream>,
}

/// Why a socket could not be injected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InjectError {
    /// The queue stayed full for [`INJECT_TIMEOUT`].
    #[error("timeout injecting the connection into the gRPC server")]
    Timeout,
    /// The server has stopped.
    #[error("the gRPC server is not running")]
    Stopped,
}

impl InjectError {
    /// A stable label for logs and metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Timeout => "timeout",
            Self::Stopped => "stopped",
        }
    }
}

impl InjectHandle {
    /// Queues `stream` for a TLS server handshake, waiting at most [`INJECT_TIMEOUT`].
    pub async fn inject(&self, stream: TcpStream) -> Result<(), InjectError> {
        match self.tx.send_timeout(stream, INJECT_TIMEOUT).await {
            Ok(()) => Ok(()),
            Err(mpsc::error::SendTimeoutError::Timeout(_)) => Err(InjectError::Timeout),
            Err(mpsc::error::SendTimeoutError::Closed(_)) => Err(InjectError::Stopped),
        }
    }
}

/// Everything the accept loop needs.
pub(crate) struct Acceptor {
    pub(crate) listener: TcpListener,
    pub(crate) tls: Arc<ServerConfig>,
    pub(crate) directory: Arc<dyn DirectorySource>,
    pub(crate) rate_limits: Vec<TcpRateLimit>,
    /// The listener's admission.
    pub(crate) admission: Admission,
    /// Injected sockets' admission: all come from the proxy, so no per-source cap or rate.
    pub(crate) injected: Admission,
}

/// The admission of injected sockets under `serving`'s deadlines.
pub(crate) fn injected_admission(
    serving: &ServingConfig,
    metrics: tandem_serving::ServingMetrics,
) -> Admission {
    let cap = NonZeroUsize::new(MAX_INJECTED_CONNECTIONS).unwrap_or(NonZeroUsize::MIN);
    let config = ServingConfig {
        admission: AdmissionConfig {
            max_connections: cap,
            per_source_connections: NonZeroU32::new(u32::try_from(cap.get()).unwrap_or(u32::MAX))
                .unwrap_or(NonZeroU32::MIN),
            per_source_rate: None,
            ..AdmissionConfig::default()
        },
        ..serving.clone()
    };
    Admission::new("grpc_injected", config, metrics)
}

/// Handshaken connections on their way to tonic.
pub(crate) type ReadyTx = mpsc::Sender<io::Result<PeerStream>>;
/// tonic's end of [`ReadyTx`].
pub(crate) type ReadyRx = mpsc::Receiver<io::Result<PeerStream>>;

/// The inject handle with its receiver, and the ready-connection channel.
pub(crate) fn channels() -> (InjectHandle, mpsc::Receiver<TcpStream>, ReadyTx, ReadyRx) {
    let (inject_tx, inject_rx) = mpsc::channel(INJECT_QUEUE);
    let (ready_tx, ready_rx) = mpsc::channel(READY_QUEUE);
    (
        InjectHandle { tx: inject_tx },
        inject_rx,
        ready_tx,
        ready_rx,
    )
}

impl Acceptor {
    /// Accepts until `stop` turns true; handshakes run concurrently (each under the kit's
    /// deadline) and are aborted on stop.
    pub(crate) async fn run(
        self,
        mut injected: mpsc::Receiver<TcpStream>,
        ready: ReadyTx,
        mut stop: watch::Receiver<bool>,
    ) {
        let acceptor = TlsAcceptor::from(self.tls.clone());
        let mut limiter = RateLimiter::new(RateLimit::from_settings(&self.rate_limits));
        let mut tasks = JoinSet::new();
        loop {
            let admitted = tokio::select! {
                () = super::stopped(&mut stop) => break,
                Some(_) = tasks.join_next(), if !tasks.is_empty() => continue,
                accepted = self.listener.accept() => match accepted {
                    Ok((stream, addr)) if limiter.check(addr.ip(), Instant::now()) => {
                        self.admission.admit(stream, addr)
                    }
                    Ok((_, addr)) => {
                        debug!(peer = %addr, "gRPC connection over the rate limit; closed");
                        continue;
                    }
                    Err(e) => {
                        warn!(error = %e, "gRPC accept failed; backing off");
                        tokio::time::sleep(ACCEPT_BACKOFF).await;
                        continue;
                    }
                },
                Some(stream) = injected.recv() => match stream.peer_addr() {
                    Ok(addr) => self.injected.admit(stream, addr),
                    Err(e) => {
                        debug!(error = %e, "injected socket already closed");
                        continue;
                    }
                },
            };
            let Some((io, slot)) = admitted else { continue };
            let addr = io.get_ref().peer_addr().ok();
            let (acceptor, directory, ready) =
                (acceptor.clone(), self.directory.clone(), ready.clone());
            let span = debug_span!("grpc_connection", peer = ?addr);
            tasks.spawn(
                async move {
                    match handshake_peer(acceptor, io, &slot, &*directory).await {
                        Ok((tls, clients)) => {
                            let identity = PeerIdentity {
                                addr,
                                clients: Arc::new(clients),
                            };
                            debug!(operator = identity.primary(), "gRPC peer identified");
                            slot.establish();
                            let peer = TlsConn::new(tls, identity);
                            // A closed receiver means the server is stopping: the stream is dropped.
                            let _ = ready.send(Ok(peer)).await;
                        }
                        Err(reason) => {
                            slot.count_failed_handshake();
                            debug!(%reason, "gRPC connection refused");
                        }
                    }
                }
                .instrument(span),
            );
        }
        tasks.abort_all();
        while tasks.join_next().await.is_some() {}
    }
}

/// The TLS handshake (the kit's deadline cuts a silent or slow one), then the directory identity
/// of the client certificate.
async fn handshake_peer(
    acceptor: TlsAcceptor,
    io: Guarded<TcpStream>,
    slot: &Slot,
    directory: &dyn DirectorySource,
) -> Result<
    (
        TlsStream<Guarded<TcpStream>>,
        Vec<crate::broker::types::ClientInfo>,
    ),
    String,
> {
    let tls = acceptor
        .accept(io)
        .await
        .map_err(|e| format!("TLS handshake failed: {e}"))?;
    slot.handshaken();
    let leaf = peer_leaf(tls.get_ref().1);
    let clients = identify(leaf.as_deref(), directory)
        .await
        .map_err(|e| format!("peer identity: {e}"))?;
    Ok((tls, clients))
}
