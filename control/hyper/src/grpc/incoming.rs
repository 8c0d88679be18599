//! The gRPC server's connections: TCP accepted from the listener (admitted by the serving kit and
//! the per-IP `tcp_rate_limits`) or injected (proxy sockets, SPEC §4.5, admitted apart so that a
//! flood on the public port never delays a brokered call), TLS-accepted under the kit's handshake
//! deadline, and mapped to an operator identity before tonic sees them. A peer without an identity
//! is closed; an identified one is established (tonic's keepalive and maximum age watch it).

use std::net::SocketAddr;
use std::num::{NonZeroU32, NonZeroUsize};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls_pki_types::CertificateDer;
use tandem_net::tls::ServerTls;
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tracing::debug;

use super::peer_identity::{PeerIdentity, identify};
use crate::broker::types::DirectorySource;
use tandem_net::grpc::{TlsListener, TlsPeers};
use tandem_net::http::{RateLimit, RateLimiter};
use tandem_serving::{Acceptor, Admission, AdmissionConfig, Handshake, ServingConfig, Slot};
use tandem_settings::listeners::TcpRateLimit;

/// Injected (brokered) connections held at once, apart from the listener's own admission.
pub const MAX_INJECTED_CONNECTIONS: usize = 1024;
/// Injected sockets waiting to be picked up (the original's capacity 1, with room for bursts).
const INJECT_QUEUE: usize = 16;
/// Handshaken connections waiting for tonic to pick them up.
const READY_QUEUE: usize = 64;
/// How long [`InjectHandle::inject`] waits for room in the queue (the original's 2 s).
pub const INJECT_TIMEOUT: Duration = Duration::from_secs(2);

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

/// Names a gRPC peer by the directory: the operator names its certificate is bound to. A peer
/// without one is closed; an identified one is established.
#[derive(Clone)]
pub(crate) struct OperatorPeers {
    directory: Arc<dyn DirectorySource>,
}

impl TlsPeers for OperatorPeers {
    type Info = PeerIdentity;

    async fn identify(
        &self,
        leaf: Option<CertificateDer<'static>>,
        addr: SocketAddr,
        slot: &Slot,
    ) -> Option<PeerIdentity> {
        match identify(leaf.as_deref(), &*self.directory).await {
            Ok(clients) => {
                let identity = PeerIdentity {
                    addr: Some(addr),
                    clients: Arc::new(clients),
                };
                debug!(operator = identity.primary(), "gRPC peer identified");
                slot.establish();
                Some(identity)
            }
            Err(e) => {
                debug!(reason = %e, "gRPC connection refused: no peer identity");
                None
            }
        }
    }
}

/// Where the gRPC server's connections come from.
pub(crate) struct Sources {
    pub(crate) listener: tandem_serving::ListenerGroup,
    pub(crate) tls: ServerTls,
    pub(crate) directory: Arc<dyn DirectorySource>,
    /// Per-source limits on new connections to the listener (not on injected sockets).
    pub(crate) rate_limits: Vec<TcpRateLimit>,
    /// The listener's admission.
    pub(crate) admission: Admission,
    /// Injected sockets' admission: all come from the proxy, so no per-source cap or rate.
    pub(crate) injected: Admission,
}

impl Sources {
    /// The listener, filtered by the rate limits, and the sockets of `injected`.
    pub(crate) fn into_listener(
        self,
        injected: mpsc::Receiver<TcpStream>,
    ) -> TlsListener<OperatorPeers> {
        let mut limiter = RateLimiter::new(RateLimit::from_settings(&self.rate_limits));
        let acceptor = Acceptor::new(self.listener, self.admission, Handshake::Tls)
            .filter(move |peer| {
                let allowed = limiter.check(peer.ip(), Instant::now());
                if !allowed {
                    debug!(%peer, "gRPC connection over the rate limit; closed");
                }
                allowed
            })
            .injected(injected, self.injected);
        TlsListener {
            acceptor,
            tls: self.tls,
            peers: OperatorPeers {
                directory: self.directory,
            },
            ready_queue: READY_QUEUE,
        }
    }
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

/// The inject handle with its receiver.
pub(crate) fn inject_channel() -> (InjectHandle, mpsc::Receiver<TcpStream>) {
    let (tx, rx) = mpsc::channel(INJECT_QUEUE);
    (InjectHandle { tx }, rx)
}
