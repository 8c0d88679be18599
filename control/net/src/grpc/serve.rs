//! One gRPC server shape for every tonic service of ours (the operators' `Hyper` service, the
//! proxy's `ControlService`): the serving kit's [`Acceptor`] admits TCP (and injected sockets),
//! the TLS handshake runs under the kit's deadline, the listener's [`TlsPeers`] names the peer
//! from its client certificate, and tonic serves the named connections until shutdown: handshakes
//! under way then finish and are served, then every connection gets a GOAWAY and
//! [`SHUTDOWN_GRACE`] for its calls in flight.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use rustls_pki_types::CertificateDer;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::Server;
use tonic::transport::server::Router;
use tracing::{debug, warn};

use super::{SHUTDOWN_GRACE, TlsConn};
use crate::tls::{ServerTls, peer_leaf};
use tandem_serving::{Acceptor, Http2Limits, Shutdown, Slot};

/// What a gRPC listener learns about a peer from its verified client certificate; it rides
/// along as tonic's connect info on every request of the connection.
pub trait TlsPeers: Clone + Send + Sync + 'static {
    /// The connect info.
    type Info: Clone + Send + Sync + Unpin + 'static;

    /// Names the peer at `addr` whose leaf certificate is `leaf`; `None` closes the connection
    /// (counted as a failed handshake). Call `slot.establish()` for a peer whose connection no
    /// longer needs the first-request deadline.
    fn identify(
        &self,
        leaf: Option<CertificateDer<'static>>,
        addr: SocketAddr,
        slot: &Slot,
    ) -> impl Future<Output = Option<Self::Info>> + Send;

    /// A TLS handshake failed (already counted by the kit); `error` is rustls' or the cut's.
    fn handshake_failed(&self, slot: &Slot, error: &io::Error) {
        let _ = slot;
        debug!(%error, "TLS handshake failed");
    }
}

/// The connection policy of one tonic server.
#[derive(Debug, Clone, Copy)]
pub struct TonicLimits {
    /// Streams (calls) one connection may have open at once.
    pub max_streams: u32,
    /// HTTP/2 header and reset limits, from the listener's serving settings.
    pub h2: Http2Limits,
    /// Ping an idle connection this often ...
    pub keepalive_interval: Duration,
    /// ... and drop it after this long without an answer.
    pub keepalive_timeout: Duration,
    /// Connections are recycled after this long ...
    pub max_connection_age: Duration,
    /// ... with this much grace for the calls in flight.
    pub max_connection_age_grace: Duration,
}

impl TonicLimits {
    /// A tonic server builder with these limits; add the service to it.
    pub fn builder(&self) -> Server {
        Server::builder()
            .max_concurrent_streams(self.max_streams)
            .http2_max_header_list_size(self.h2.max_header_list_bytes)
            .http2_max_pending_accept_reset_streams(Some(self.h2.max_pending_resets))
            .http2_keepalive_interval(Some(self.keepalive_interval))
            .http2_keepalive_timeout(Some(self.keepalive_timeout))
            .max_connection_age(self.max_connection_age)
            .max_connection_age_grace(self.max_connection_age_grace)
    }
}

/// One TLS gRPC listener: where connections come from and how they are named.
#[derive(Debug)]
pub struct TlsListener<P> {
    /// The kit's accept loop (listener, admission, filters, injected sockets).
    pub acceptor: Acceptor,
    /// The server config (ALPN `h2`; client certificates as the listener requires them); a
    /// reload replaces it for connections accepted later.
    pub tls: ServerTls,
    /// Names each handshaken peer.
    pub peers: P,
    /// Named connections waiting for tonic to pick them up.
    pub ready_queue: usize,
}

/// Serves `router` over the connections of `listener` until `shutdown`; connections accepted
/// before it finish their handshakes (within the acceptor's grace) and are served, then every
/// connection gets a GOAWAY and [`SHUTDOWN_GRACE`] for its calls in flight before this returns.
pub async fn serve_tls<P: TlsPeers>(listener: TlsListener<P>, router: Router, shutdown: Shutdown) {
    let TlsListener {
        acceptor,
        tls,
        peers,
        ready_queue,
    } = listener;
    let (ready, ready_rx) = mpsc::channel::<io::Result<TlsConn<P::Info>>>(ready_queue.max(1));
    // Handshakes under way at the stop finish (bounded by their own deadline and this grace).
    let accept = acceptor.grace(SHUTDOWN_GRACE);
    let accept = accept.serve(shutdown.clone().wait(), move |io, addr, slot| {
        // The config current now: the connection keeps it whatever a reload installs later.
        let tls = tls.acceptor();
        let (peers, ready) = (peers.clone(), ready.clone());
        async move {
            let stream = match crate::tls::accept(&tls, io, &slot).await {
                Ok(stream) => stream,
                Err(e) => return peers.handshake_failed(&slot, &e),
            };
            let leaf = peer_leaf(stream.get_ref().1);
            let Some(info) = peers.identify(leaf, addr, &slot).await else {
                slot.count_failed_handshake();
                return;
            };
            // A closed receiver means the server is stopping: the stream is dropped.
            let _ = ready.send(Ok(TlsConn::new(stream, info))).await;
        }
    });
    // tonic stops when its incoming stream ends: once the accept loop has stopped and every
    // connection it accepted before the stop has finished its handshake and been handed over
    // (stopping tonic on the signal itself would drop those). It then sends GOAWAY on every
    // connection and lets the calls in flight finish.
    let server = router
        .serve_with_incoming_shutdown(ReceiverStream::new(ready_rx), std::future::pending::<()>());
    let (accepted_all, all_accepted) = tokio::sync::oneshot::channel::<()>();
    let accept = async move {
        accept.await;
        let _ = accepted_all.send(());
    };
    let serve = async move {
        tokio::pin!(server);
        let bounded_after_stop = async {
            shutdown.wait().await;
            // The accept loop itself is bounded by its grace.
            let _ = all_accepted.await;
            tokio::time::sleep(SHUTDOWN_GRACE).await;
        };
        tokio::select! {
            result = &mut server => if let Err(e) = result {
                warn!(error = %e, "gRPC server failed");
            },
            () = bounded_after_stop => warn!("gRPC connections still open after the shutdown grace; leaving them"),
        }
    };
    tokio::join!(accept, serve);
}
