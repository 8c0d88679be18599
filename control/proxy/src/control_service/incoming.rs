//! The ControlService's connections: TCP from the listener admitted by the serving kit, a rustls
//! handshake under the kit's deadline (client certificates verified against our CA by the
//! `ServerConfig`), then the admin check of the client certificate, once per connection. The
//! result rides along as tonic's connect info; every call checks it, so a non-admin gets
//! `PermissionDenied` on each call and each refusal is counted. An admin's connection is
//! established (tonic's keepalive and maximum age watch it); a non-admin's never is: it stays
//! evictable and the kit cuts it at the first-request deadline, so valid non-admin certificates
//! cannot hold the port.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;

use rustls::ServerConfig;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;
use tracing::{Instrument, debug, debug_span, info, warn};

use super::metrics::Metrics;
use super::policy::{AdminPolicy, Denied};
use tandem_net::grpc::TlsConn;
use tandem_net::tls::peer_leaf;
use tandem_serving::{ACCEPT_BACKOFF, Admission};

/// Handshaken connections waiting for tonic to pick them up.
const READY_QUEUE: usize = 16;

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
    pub(crate) admission: Admission,
}

impl Acceptor {
    /// Accepts until `stop` turns true; handshakes run concurrently (bounded), aborted on stop.
    pub(crate) async fn run(self, ready: ReadyTx, mut stop: watch::Receiver<bool>) {
        let acceptor = TlsAcceptor::from(self.tls.clone());
        let mut tasks = JoinSet::new();
        loop {
            let (stream, addr) = tokio::select! {
                () = tandem_net::grpc::stopped(&mut stop) => break,
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
            let Some((io, slot)) = self.admission.admit(stream, addr) else {
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
                    let tls = match acceptor.accept(io).await {
                        Ok(tls) => tls,
                        Err(e) => {
                            slot.count_failed_handshake();
                            let why = match slot.cut_reason() {
                                Some(reason) => reason.as_str().to_owned(),
                                None => format!("TLS handshake failed: {e}"),
                            };
                            return metrics.handshake_failed(&why);
                        }
                    };
                    slot.handshaken();
                    let leaf = peer_leaf(tls.get_ref().1);
                    let admin = policy.authorize(leaf.as_deref()).await;
                    match &admin {
                        Ok(name) => {
                            slot.establish();
                            debug!(admin = %name, "control client identified");
                        }
                        Err(d) => {
                            info!(reason = d.kind(), detail = %d, "control client is not an admin")
                        }
                    }
                    let caller = Caller {
                        addr: Some(addr),
                        admin,
                    };
                    let stream = TlsConn::new(tls, caller);
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
