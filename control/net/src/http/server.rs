//! An HTTP/1.1 + HTTP/2 server for axum routers over plain TCP or rustls, served by the serving kit
//! ([`tandem_serving`]): admission per source and overall, handshake / first-request / idle
//! deadlines, header and HTTP/2 limits, graceful shutdown. Every connection task is tracked.
//!
//! Stopping: the listener stops accepting (what is not accepted waits in the socket's backlog for
//! the next process); every request already received or arriving on an accepted connection is
//! served, over HTTP/1.1 with `Connection: close`, over HTTP/2 after a GOAWAY; an idle HTTP/1
//! keep-alive is closed at once (by the kit, [`tandem_serving::CutReason::Draining`]); whatever is
//! still open after the grace is cut.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use http::HeaderValue;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use hyper_util::service::TowerToHyperService;
use rustls::ServerConfig;
use rustls_pki_types::CertificateDer;
use tokio::io::{AsyncRead, AsyncWrite};
use tower::ServiceExt;
use tracing::debug;

use crate::tls::ServerTls;
use tandem_serving::{
    Admission, Handshake, ServingConfig, ServingMetrics, Slot, serve_connections,
};
use tandem_settings::listeners::JsonRpcServerSettings;

/// How one HTTP server is served.
#[derive(Debug, Clone)]
pub struct ServerLimits {
    /// The listener's name in logs and metrics (`sd`, `gateway`, `public_proxy`, ...).
    pub name: &'static str,
    /// Admission, deadlines and HTTP/2 limits.
    pub serving: ServingConfig,
    /// After shutdown starts, how long open connections may finish before they are cut.
    pub grace: Duration,
    /// Where admissions, refusals and cuts are counted.
    pub metrics: ServingMetrics,
}

/// Default shutdown grace of an HTTP server.
pub const DEFAULT_GRACE: Duration = Duration::from_secs(5);

impl Default for ServerLimits {
    fn default() -> Self {
        Self {
            name: "http",
            serving: ServingConfig::default(),
            grace: DEFAULT_GRACE,
            metrics: ServingMetrics::default(),
        }
    }
}

impl ServerLimits {
    /// The defaults for the listener called `name`, counting into `metrics`.
    pub fn named(name: &'static str, serving: ServingConfig, metrics: ServingMetrics) -> Self {
        Self {
            name,
            serving,
            metrics,
            ..Self::default()
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

/// The rustls config of a `jsonrpc_server` block (ALPN `h2`, `http/1.1`); `None` serves plain
/// HTTP.
pub fn server_tls(
    server: &JsonRpcServerSettings,
) -> Result<Option<Arc<ServerConfig>>, crate::tls::TlsError> {
    server
        .tls
        .as_ref()
        .map(|t| crate::tls::server_config(t, super::HTTP_ALPN))
        .transpose()
}

/// Serves `router` on `listener` until `shutdown` resolves, then lets open connections finish
/// within `limits.grace`. Each TLS connection is handshaken with the config `tls` holds when it is
/// accepted (a reload replaces it for later connections).
pub async fn serve(
    listener: impl Into<tandem_serving::ListenerGroup>,
    tls: Option<ServerTls>,
    router: Router,
    limits: ServerLimits,
    shutdown: impl Future<Output = ()>,
) {
    let admission = Admission::new(limits.name, limits.serving.clone(), limits.metrics.clone());
    let handshake = if tls.is_some() {
        Handshake::Tls
    } else {
        Handshake::None
    };
    let serving = limits.serving.clone();
    serve_connections(
        listener,
        admission,
        handshake,
        limits.grace,
        shutdown,
        move |io, addr, slot| {
            // The config current now: the connection keeps it whatever a reload installs later.
            let acceptor = tls.as_ref().map(ServerTls::acceptor);
            let (router, serving) = (router.clone(), serving.clone());
            async move {
                let Some(acceptor) = acceptor else {
                    let peer = PeerInfo { addr, leaf: None };
                    return serve_stream(io, peer, router, slot, &serving).await;
                };
                match crate::tls::accept(&acceptor, io, &slot).await {
                    Ok(tls) => {
                        if tls.get_ref().1.alpn_protocol() == Some(b"h2") {
                            slot.multiplexed();
                        }
                        let leaf = tls
                            .get_ref()
                            .1
                            .peer_certificates()
                            .and_then(|c| c.first())
                            .map(|c| c.clone().into_owned());
                        let peer = PeerInfo { addr, leaf };
                        serve_stream(tls, peer, router, slot, &serving).await;
                    }
                    Err(e) => {
                        debug!(error = %e, "TLS handshake failed");
                    }
                }
            }
        },
    )
    .await;
}

/// Serves HTTP on one connection; every request holds the connection's slot busy until answered.
/// When the server stops, the connection drains (see the module docs).
async fn serve_stream<S>(
    stream: S,
    peer: PeerInfo,
    router: Router,
    slot: Slot,
    serving: &ServingConfig,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let conn_slot = slot.clone();
    let service = tower::service_fn(move |mut req: hyper::Request<hyper::body::Incoming>| {
        req.extensions_mut().insert(peer.clone());
        if req.version() == http::Version::HTTP_2 {
            slot.multiplexed();
        }
        let http1 = req.version() < http::Version::HTTP_2;
        let busy = slot.request();
        let (router, slot) = (router.clone(), slot.clone());
        async move {
            let mut response = router.oneshot(req).await;
            if http1 && slot.is_draining() {
                // hyper closes the connection once this response is written.
                if let Ok(response) = response.as_mut() {
                    response
                        .headers_mut()
                        .insert(http::header::CONNECTION, HeaderValue::from_static("close"));
                }
            }
            drop(busy);
            response
        }
    });
    let builder = builder(serving);
    let conn = builder.serve_connection(TokioIo::new(stream), TowerToHyperService::new(service));
    tokio::pin!(conn);
    let result = tokio::select! {
        result = conn.as_mut() => result,
        () = conn_slot.draining() => {
            // HTTP/2: GOAWAY, the streams in flight finish. HTTP/1 is not told (hyper would close
            // a connection whose first request is still on its way): the kit closes it if idle,
            // and the response in flight carries `Connection: close`.
            if conn_slot.is_multiplexed() {
                conn.as_mut().graceful_shutdown();
            }
            conn.await
        }
    };
    if let Err(e) = result {
        debug!(error = %e, "connection ended with an error");
    }
}

/// The HTTP/1 + HTTP/2 connection builder with the listener's limits.
fn builder(serving: &ServingConfig) -> Builder<TokioExecutor> {
    let limits = &serving.http2;
    let mut builder = Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(serving.deadlines.header)
        .max_buf_size(limits.h1_max_buf_bytes);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(limits.max_concurrent_streams)
        .max_header_list_size(limits.max_header_list_bytes)
        .max_pending_accept_reset_streams(limits.max_pending_resets)
        .keep_alive_interval(limits.keepalive_interval)
        .keep_alive_timeout(limits.keepalive_timeout);
    builder
}
