//! The gRPC server's connections: TCP accepted from the listener (per-IP rate limited) or injected
//! (proxy sockets, SPEC §4.5), TLS-accepted with a deadline, and mapped to an operator identity
//! before tonic sees them. A peer without an identity is closed.

use std::io;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::ServerConfig;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, mpsc, watch};
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;
use tracing::{Instrument, debug, debug_span, warn};

use super::HANDSHAKE_TIMEOUT;
use super::conn::TlsConn;
use super::identity::{PeerIdentity, identify};
use crate::broker::types::DirectorySource;
use crate::http::{RateLimit, RateLimiter};
use crate::settings::listeners::TcpRateLimit;
use crate::tls::peer_leaf;

/// Connections served at once (accepted or injected); past it new ones are closed at once.
pub const MAX_CONNECTIONS: usize = 1024;
/// TLS handshakes in progress at once; past it new connections are closed (slow-handshake floods).
pub const MAX_HANDSHAKES: usize = 256;
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
    /// Accepts until `stop` turns true; handshakes run concurrently (bounded) and are aborted on stop.
    pub(crate) async fn run(
        self,
        mut injected: mpsc::Receiver<TcpStream>,
        ready: ReadyTx,
        mut stop: watch::Receiver<bool>,
    ) {
        let acceptor = TlsAcceptor::from(self.tls.clone());
        let connections = Arc::new(Semaphore::new(MAX_CONNECTIONS));
        let handshakes = Arc::new(Semaphore::new(MAX_HANDSHAKES));
        let mut limiter = RateLimiter::new(
            self.rate_limits
                .iter()
                .map(|l| RateLimit {
                    window: l.period.duration(),
                    limit: l.limit.get(),
                })
                .collect(),
        );
        let mut tasks = JoinSet::new();
        loop {
            let stream = tokio::select! {
                () = super::stopped(&mut stop) => break,
                Some(_) = tasks.join_next(), if !tasks.is_empty() => continue,
                accepted = self.listener.accept() => match accepted {
                    Ok((stream, addr)) if limiter.check(addr.ip(), Instant::now()) => stream,
                    Ok((_, addr)) => {
                        debug!(peer = %addr, "gRPC connection over the rate limit; closed");
                        continue;
                    }
                    Err(e) => {
                        warn!(error = %e, "gRPC accept failed; backing off");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                },
                Some(stream) = injected.recv() => stream,
            };
            let addr = stream.peer_addr().ok();
            let (Ok(slot), Ok(handshake)) = (
                connections.clone().try_acquire_owned(),
                handshakes.clone().try_acquire_owned(),
            ) else {
                debug!(peer = ?addr, "gRPC connection or handshake limit reached; closed");
                continue;
            };
            let (acceptor, directory, ready) =
                (acceptor.clone(), self.directory.clone(), ready.clone());
            let span = debug_span!("grpc_connection", peer = ?addr);
            tasks.spawn(
                async move {
                    let result = handshake_peer(acceptor, stream, &*directory).await;
                    drop(handshake);
                    match result {
                        Ok((tls, clients)) => {
                            let identity = PeerIdentity {
                                addr,
                                clients: Arc::new(clients),
                            };
                            debug!(operator = identity.primary(), "gRPC peer identified");
                            let peer = TlsConn::new(tls, identity, slot);
                            // A closed receiver means the server is stopping: the stream is dropped.
                            let _ = ready.send(Ok(peer)).await;
                        }
                        Err(reason) => debug!(%reason, "gRPC connection refused"),
                    }
                }
                .instrument(span),
            );
        }
        tasks.abort_all();
        while tasks.join_next().await.is_some() {}
    }
}

/// TLS handshake with a deadline, then the directory identity of the client certificate.
async fn handshake_peer(
    acceptor: TlsAcceptor,
    stream: TcpStream,
    directory: &dyn DirectorySource,
) -> Result<(TlsStream<TcpStream>, Vec<crate::broker::types::ClientInfo>), String> {
    let tls = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
        Err(_) => return Err("TLS handshake timed out".into()),
        Ok(Err(e)) => return Err(format!("TLS handshake failed: {e}")),
        Ok(Ok(tls)) => tls,
    };
    let leaf = peer_leaf(tls.get_ref().1);
    let clients = identify(leaf.as_deref(), directory)
        .await
        .map_err(|e| format!("peer identity: {e}"))?;
    Ok((tls, clients))
}
