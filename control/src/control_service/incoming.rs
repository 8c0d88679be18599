//! The ControlService's connections: TCP from the listener, a rustls handshake under
//! [`HANDSHAKE_TIMEOUT`](crate::grpc::HANDSHAKE_TIMEOUT) (client certificates verified against our
//! CA by the `ServerConfig`), then the admin check of the client certificate, once per
//! connection. The result rides along as tonic's connect info; every call checks it, so a
//! non-admin gets `PermissionDenied` on each call and each refusal is counted.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use rustls::ServerConfig;
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, mpsc, watch};
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;
use tracing::{Instrument, debug, debug_span, info, warn};

use super::metrics::Metrics;
use super::policy::{AdminPolicy, Denied};
use crate::grpc::HANDSHAKE_TIMEOUT;
use crate::grpc::conn::TlsConn;
use crate::tls::peer_leaf;

/// Control connections served at once (operators, scripts and load-harness workers; each keeps
/// one HTTP/2 connection); past it new ones are closed at once.
pub const MAX_CONTROL_CONNECTIONS: usize = 256;
/// TLS handshakes in progress at once; past it new connections are closed (slow-handshake floods).
const MAX_HANDSHAKES: usize = 64;
/// Handshaken connections waiting for tonic to pick them up.
const READY_QUEUE: usize = 16;
/// Back-off after an accept error such as EMFILE.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

/// Who is calling: tonic's connect info, attached to every request of the connection.
#[derive(Debug, Clone)]
pub struct Caller {
    /// The peer's TCP address.
    pub addr: Option<SocketAddr>,
    /// The admin name the certificate maps to, or why it does not.
    pub admin: Result<String, Denied>,
}

/// A TLS connection with its admin check (tonic's connect info).
pub(crate) type AdminStream = TlsConn<Caller>;

/// Handshaken connections on their way to tonic.
pub(crate) type ReadyTx = mpsc::Sender<io::Result<AdminStream>>;
/// tonic's end of [`ReadyTx`].
pub(crate) type ReadyRx = mpsc::Receiver<io::Result<AdminStream>>;

/// The ready-connection channel.
pub(crate) fn ready_channel() -> (ReadyTx, ReadyRx) {
    mpsc::channel(READY_QUEUE)
}

/// Everything the accept loop needs.
pub(crate) struct Acceptor {
    pub(crate) listener: TcpListener,
    pub(crate) tls: Arc<ServerConfig>,
    pub(crate) policy: AdminPolicy,
    pub(crate) metrics: Arc<Metrics>,
}

impl Acceptor {
    /// Accepts until `stop` turns true; handshakes run concurrently (bounded), aborted on stop.
    pub(crate) async fn run(self, ready: ReadyTx, mut stop: watch::Receiver<bool>) {
        let acceptor = TlsAcceptor::from(self.tls.clone());
        let connections = Arc::new(Semaphore::new(MAX_CONTROL_CONNECTIONS));
        let handshakes = Arc::new(Semaphore::new(MAX_HANDSHAKES));
        let mut tasks = JoinSet::new();
        loop {
            let (stream, addr) = tokio::select! {
                () = crate::grpc::stopped(&mut stop) => break,
                Some(_) = tasks.join_next(), if !tasks.is_empty() => continue,
                accepted = self.listener.accept() => match accepted {
                    Ok(s) => s,
                    Err(e) => {
                        warn!(error = %e, "control accept failed; backing off");
                        tokio::time::sleep(ACCEPT_BACKOFF).await;
                        continue;
                    }
                },
            };
            let (Ok(slot), Ok(handshake)) = (
                connections.clone().try_acquire_owned(),
                handshakes.clone().try_acquire_owned(),
            ) else {
                debug!(peer = %addr, "control connection or handshake limit reached; closed");
                continue;
            };
            let (acceptor, policy, metrics, ready) = (
                acceptor.clone(),
                self.policy.clone(),
                self.metrics.clone(),
                ready.clone(),
            );
            let span = debug_span!("control_connection", peer = %addr);
            tasks.spawn(
                async move {
                    let tls = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream))
                        .await
                    {
                        Ok(Ok(tls)) => tls,
                        Ok(Err(e)) => {
                            return metrics.handshake_failed(&format!("TLS handshake failed: {e}"));
                        }
                        Err(_) => return metrics.handshake_failed("TLS handshake timed out"),
                    };
                    drop(handshake);
                    let leaf = peer_leaf(tls.get_ref().1);
                    let admin = policy.authorize(leaf.as_deref()).await;
                    match &admin {
                        Ok(name) => debug!(admin = %name, "control client identified"),
                        Err(d) => {
                            info!(reason = d.kind(), detail = %d, "control client is not an admin")
                        }
                    }
                    let caller = Caller {
                        addr: Some(addr),
                        admin,
                    };
                    let stream = TlsConn::new(tls, caller, slot);
                    // A closed receiver means the server is stopping: the stream is dropped.
                    let _ = ready.send(Ok(stream)).await;
                }
                .instrument(span),
            );
        }
        tasks.abort_all();
        while tasks.join_next().await.is_some() {}
    }
}
