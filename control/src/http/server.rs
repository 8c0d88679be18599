//! An HTTP/1.1 + HTTP/2 server for axum routers over plain TCP or rustls, with bounded connections,
//! handshake and header deadlines, and graceful shutdown. Every spawned connection task is tracked.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use hyper_util::service::TowerToHyperService;
use rustls::ServerConfig;
use rustls_pki_types::CertificateDer;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt;
use tracing::{Instrument, debug, info_span, warn};

/// Bounds of one server.
#[derive(Debug, Clone)]
pub struct ServerLimits {
    /// Connections served at once; further connections are closed at accept (back-pressure).
    pub max_connections: usize,
    /// Time allowed for the TLS handshake.
    pub handshake_timeout: Duration,
    /// Time allowed for a request's headers to arrive (slow-header clients are cut).
    pub header_timeout: Duration,
    /// After shutdown starts, how long open connections may finish before they are cut.
    pub grace: Duration,
}

impl Default for ServerLimits {
    fn default() -> Self {
        Self {
            max_connections: 1024,
            handshake_timeout: Duration::from_secs(10),
            header_timeout: Duration::from_secs(10),
            grace: Duration::from_secs(5),
        }
    }
}

/// Who is on the other end of a request: inserted into every request's extensions.
#[derive(Debug, Clone)]
pub struct PeerInfo {
    /// The client's address.
    pub addr: SocketAddr,
    /// The client's verified leaf certificate, when it presented one over TLS.
    pub leaf: Option<CertificateDer<'static>>,
}

/// Serves `router` on `listener` until `shutdown` resolves, then lets open connections finish
/// within `limits.grace`.
pub async fn serve(
    listener: TcpListener,
    tls: Option<Arc<ServerConfig>>,
    router: Router,
    limits: ServerLimits,
    shutdown: impl Future<Output = ()>,
) {
    let acceptor = tls.map(TlsAcceptor::from);
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let mut connections = JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            accepted = listener.accept() => {
                let (stream, addr) = match accepted {
                    Ok(a) => a,
                    Err(e) => {
                        // EMFILE and friends: back off instead of spinning, never stop serving.
                        warn!(error = %e, "accept failed; backing off");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let Ok(permit) = slots.clone().try_acquire_owned() else {
                    debug!(%addr, "connection limit reached; closing");
                    continue;
                };
                let (acceptor, router, limits) = (acceptor.clone(), router.clone(), limits.clone());
                let span = info_span!("http_connection", peer = %addr);
                connections.spawn(
                    async move {
                        let _permit = permit;
                        let _ = stream.set_nodelay(true);
                        match acceptor {
                            None => serve_stream(stream, PeerInfo { addr, leaf: None }, router, &limits).await,
                            Some(acceptor) => {
                                let handshake = tokio::time::timeout(limits.handshake_timeout, acceptor.accept(stream));
                                match handshake.await {
                                    Ok(Ok(tls)) => {
                                        let leaf = tls.get_ref().1.peer_certificates()
                                            .and_then(|c| c.first()).map(|c| c.clone().into_owned());
                                        serve_stream(tls, PeerInfo { addr, leaf }, router, &limits).await;
                                    }
                                    Ok(Err(e)) => debug!(error = %e, "TLS handshake failed"),
                                    Err(_) => debug!("TLS handshake timed out"),
                                }
                            }
                        }
                    }
                    .instrument(span),
                );
            }
        }
    }
    drop(listener);
    let drained = tokio::time::timeout(limits.grace, async {
        while connections.join_next().await.is_some() {}
    });
    if drained.await.is_err() {
        connections.abort_all();
        while connections.join_next().await.is_some() {}
    }
}

async fn serve_stream<S>(stream: S, peer: PeerInfo, router: Router, limits: &ServerLimits)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let service = router.map_request(move |mut req: hyper::Request<hyper::body::Incoming>| {
        req.extensions_mut().insert(peer.clone());
        req
    });
    let mut builder = Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(64);
    if let Err(e) = builder
        .serve_connection(TokioIo::new(stream), TowerToHyperService::new(service))
        .await
    {
        debug!(error = %e, "connection ended with an error");
    }
}
