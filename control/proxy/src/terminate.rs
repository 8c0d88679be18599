//! TerminateTLS (SPEC §4.7): a one-shot HTTP/1.1 TLS server on the paired socket. Its single
//! request goes to `http://<address><path>?<query>` (plain HTTP, headers copied) or, with
//! `internal_endpoint.jsonrpc_client`, to that JSON-RPC endpoint (only on `jsonrpc_path`).
//! Upstream failure → 502. The connection closes after the first response or after
//! `internal_endpoint.timeout`, whichever comes first.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Request, Response, StatusCode, Uri, header};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_rustls::{FixedServerNameResolver, HttpsConnector, HttpsConnectorBuilder};
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use rustls::ClientConfig;
use rustls_pki_types::ServerName;
use tokio::net::TcpStream;
use tokio_rustls::TlsAcceptor;
use tracing::debug;

use super::error::ProxyError;
use crate::settings::InternalEndpointSettings;
use tandem_net::http::Outbound;
use tandem_net::tls::TlsError;

/// Largest request or response body relayed, in bytes (held in memory for one request).
pub const MAX_BODY_BYTES: usize = 16 * 1024 * 1024;

/// Hop-by-hop headers (RFC 9110 §7.6.1) plus `host`, which the upstream URL sets.
const HOP_BY_HOP: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "host",
    "content-length",
];

/// Why one terminated connection ended with an error.
#[derive(Debug, thiserror::Error)]
pub enum TerminateError {
    /// The client's TLS handshake failed.
    #[error("{0}")]
    Handshake(std::io::Error),
    /// Serving the HTTP request failed.
    #[error("{0}")]
    Http(hyper::Error),
    /// The connection outlived the endpoint's timeout.
    #[error("timed out")]
    Timeout,
}

impl TerminateError {
    /// A stable label for logs and metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Handshake(_) => "handshake",
            Self::Http(_) => "http",
            Self::Timeout => "timeout",
        }
    }
}

/// Where requests go.
#[derive(Clone, Debug)]
enum Upstream {
    /// `http://<address>` + the request's path and query.
    Http(String),
    /// The JSON-RPC endpoint; only `path` is served.
    JsonRpc { endpoint: Uri, path: String },
}

/// The TerminateTLS server of a private proxy.
#[derive(Clone)]
pub struct Terminator {
    acceptor: TlsAcceptor,
    upstream: Upstream,
    client: Client<HttpsConnector<Outbound>, Full<Bytes>>,
    timeout: Duration,
}

impl Terminator {
    /// `None` when `internal_endpoint.tls` is unset (ForwardTLS mode).
    pub fn new(settings: &InternalEndpointSettings) -> Result<Option<Self>, ProxyError> {
        let Some(tls) = &settings.tls else {
            return Ok(None);
        };
        let server = tandem_net::tls::server_config(tls, &[b"http/1.1"])?;
        let forward = settings
            .jsonrpc_client
            .as_ref()
            .and_then(|c| c.proxy_url.as_ref());
        let outbound = Outbound::new(forward)?;
        let (upstream, client_tls) = match &settings.jsonrpc_client {
            Some(c) => {
                let endpoint: Uri = c.endpoint.parse().map_err(|e| {
                    ProxyError::Settings(format!("internal_endpoint.jsonrpc_client.endpoint: {e}"))
                })?;
                let upstream = Upstream::JsonRpc {
                    endpoint,
                    path: settings.jsonrpc_path.clone(),
                };
                (upstream, c.tls.as_ref())
            }
            None => (Upstream::Http(settings.address.to_string()), None),
        };
        let config = match client_tls {
            Some(t) => (*tandem_net::tls::client_config(t, &[])?).clone(),
            None => plain_config()?,
        };
        let builder = HttpsConnectorBuilder::new()
            .with_tls_config(config)
            .https_or_http();
        let server_name = client_tls.and_then(|t| t.server_name.clone());
        let connector = match server_name {
            Some(name) => {
                let name = ServerName::try_from(name.clone())
                    .map_err(|_| ProxyError::Tls(TlsError::ServerName(name)))?;
                builder
                    .with_server_name_resolver(FixedServerNameResolver::new(name))
                    .enable_http1()
                    .wrap_connector(outbound)
            }
            // TCP_NODELAY and keepalive on the dial (Outbound), as every HTTP client of ours.
            None => builder.enable_http1().wrap_connector(outbound),
        };
        let client = Client::builder(TokioExecutor::new()).build(connector);
        Ok(Some(Self {
            acceptor: TlsAcceptor::from(server),
            upstream,
            client,
            timeout: settings.timeout,
        }))
    }

    /// Serves one request on `paired` (TLS handshake included) within the timeout.
    pub async fn serve(&self, paired: TcpStream) -> Result<(), TerminateError> {
        let this = Arc::new(self.clone());
        let run = async move {
            let tls = this
                .acceptor
                .accept(paired)
                .await
                .map_err(TerminateError::Handshake)?;
            let handler = this.clone();
            let service = service_fn(move |req| {
                let handler = handler.clone();
                async move { Ok::<_, Infallible>(handler.handle(req).await) }
            });
            hyper::server::conn::http1::Builder::new()
                .keep_alive(false)
                .timer(TokioTimer::new())
                .header_read_timeout(this.timeout)
                .serve_connection(TokioIo::new(tls), service)
                .await
                .map_err(TerminateError::Http)
        };
        tokio::time::timeout(self.timeout, run)
            .await
            .map_err(|_| TerminateError::Timeout)?
    }

    async fn handle(&self, req: Request<Incoming>) -> Response<Full<Bytes>> {
        let (parts, body) = req.into_parts();
        let (method, uri) = match &self.upstream {
            Upstream::Http(address) => {
                let pq = parts.uri.path_and_query().map_or("/", |p| p.as_str());
                match format!("http://{address}{pq}").parse::<Uri>() {
                    Ok(uri) => (parts.method.clone(), uri),
                    Err(_) => return status(StatusCode::BAD_REQUEST),
                }
            }
            Upstream::JsonRpc { endpoint, path } => {
                if parts.uri.path() != path {
                    return status(StatusCode::NOT_FOUND);
                }
                (http::Method::POST, endpoint.clone())
            }
        };
        let body = match Limited::new(body, MAX_BODY_BYTES).collect().await {
            Ok(b) => b.to_bytes(),
            Err(_) => return status(StatusCode::PAYLOAD_TOO_LARGE),
        };
        let mut upstream = Request::new(Full::new(body));
        *upstream.method_mut() = method;
        *upstream.uri_mut() = uri;
        copy_headers(&parts.headers, upstream.headers_mut());
        match tokio::time::timeout(self.timeout, self.exchange(upstream)).await {
            Ok(Ok(response)) => response,
            Ok(Err(e)) => {
                debug!(error = %e, "upstream failed");
                status(StatusCode::BAD_GATEWAY)
            }
            Err(_) => status(StatusCode::BAD_GATEWAY),
        }
    }

    async fn exchange(
        &self,
        request: Request<Full<Bytes>>,
    ) -> Result<Response<Full<Bytes>>, String> {
        let response = self
            .client
            .request(request)
            .await
            .map_err(|e| e.to_string())?;
        let (parts, body) = response.into_parts();
        let body = Limited::new(body, MAX_BODY_BYTES)
            .collect()
            .await
            .map_err(|e| e.to_string())?
            .to_bytes();
        let mut out = Response::new(Full::new(body));
        *out.status_mut() = parts.status;
        copy_headers(&parts.headers, out.headers_mut());
        Ok(out)
    }
}

fn copy_headers(from: &HeaderMap, to: &mut HeaderMap) {
    for (name, value) in from {
        if !HOP_BY_HOP.contains(&name.as_str()) {
            to.append(name.clone(), value.clone());
        }
    }
}

fn status(code: StatusCode) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::new()));
    *r.status_mut() = code;
    r.headers_mut().insert(
        header::CONTENT_LENGTH,
        header::HeaderValue::from_static("0"),
    );
    r
}

/// The TLS config of a client that only speaks plain HTTP (hyper-rustls wants one regardless).
fn plain_config() -> Result<ClientConfig, ProxyError> {
    Ok(
        ClientConfig::builder_with_provider(tandem_net::tls::provider())
            .with_safe_default_protocol_versions()
            .map_err(|source| TlsError::Rustls {
                context: "protocol versions".into(),
                source,
            })?
            .with_root_certificates(rustls::RootCertStore::empty())
            .with_no_client_auth(),
    )
}
