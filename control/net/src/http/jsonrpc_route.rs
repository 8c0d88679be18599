//! Serves a set of JSON-RPC methods on one HTTP path, with body bounds, rate limits and CORS.

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::extract::{Extension, Request, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response as HttpResponse};
use serde_json::{Value, json};
use tracing::{debug, warn};

use super::cors::{self, Cors};
use super::rate_limit::{RateLimit, RateLimiter};
use super::server::PeerInfo;
use crate::jsonrpc::{
    ErrorObject, INTERNAL_ERROR, INVALID_REQUEST, RATE_LIMITED, Request as RpcRequest, Response,
    decode_request,
};
use crate::metrics::RpcMetrics;
use tandem_settings::listeners::JsonRpcServerSettings;

/// A set of JSON-RPC methods (the sd server, the proxies, ...).
pub trait Methods: Send + Sync + 'static {
    /// Runs one call. Errors are returned as the JSON-RPC error object to send.
    fn call(
        &self,
        request: RpcRequest,
        peer: PeerInfo,
    ) -> impl Future<Output = Result<Value, ErrorObject>> + Send;
}

/// How one JSON-RPC endpoint is served.
#[derive(Debug, Clone)]
pub struct RouteConfig {
    /// The only path served (default `/jsonrpc`); others answer 404.
    pub path: String,
    /// The largest request body accepted, in bytes.
    pub max_body_bytes: usize,
    /// Per-client limits (none = unlimited).
    pub rate_limits: Vec<RateLimit>,
    /// How long one call may take before the client gets an error.
    pub call_timeout: Duration,
    /// How long the whole request body may take to arrive (slow-drip bodies); see
    /// [`tandem_serving::DEFAULT_BODY_TIMEOUT`].
    pub body_timeout: Duration,
    /// CORS policy, if configured.
    pub cors: Option<Cors>,
}

impl RouteConfig {
    /// The route of a `jsonrpc_server` block (its path, `tcp_rate_limits`, body deadline and
    /// CORS) with the role's own body bound and call timeout.
    pub fn for_server(
        server: &JsonRpcServerSettings,
        max_body_bytes: usize,
        call_timeout: Duration,
    ) -> Self {
        Self {
            path: server.path.clone(),
            max_body_bytes,
            rate_limits: RateLimit::from_settings(&server.tcp_rate_limits),
            call_timeout,
            body_timeout: server.serving.deadlines.body,
            cors: server.cors.as_ref().map(Cors::from),
        }
    }
}

struct RouteState<M> {
    methods: Arc<M>,
    limiter: Mutex<RateLimiter>,
    max_body_bytes: usize,
    call_timeout: Duration,
    body_timeout: Duration,
    metrics: Option<RpcMetrics>,
}

/// Builds the router for `methods`.
pub fn jsonrpc_router<M: Methods>(methods: Arc<M>, config: RouteConfig) -> Router {
    jsonrpc_router_observed(methods, config, None)
}

/// Builds the router for `methods`, counting and timing every call in `metrics`.
pub fn jsonrpc_router_observed<M: Methods>(
    methods: Arc<M>,
    config: RouteConfig,
    metrics: Option<RpcMetrics>,
) -> Router {
    let state = Arc::new(RouteState {
        methods,
        limiter: Mutex::new(RateLimiter::new(config.rate_limits)),
        max_body_bytes: config.max_body_bytes,
        call_timeout: config.call_timeout,
        body_timeout: config.body_timeout,
        metrics,
    });
    let mut router = Router::new()
        .route(&config.path, axum::routing::any(handle::<M>))
        .fallback(|| async {
            (
                StatusCode::NOT_FOUND,
                axum::Json(json!({"message": "not found"})),
            )
        })
        .with_state(state);
    if let Some(cors) = config.cors {
        let cors = Arc::new(cors);
        router = router.layer(axum::middleware::from_fn(move |req, next| {
            cors::apply(cors.clone(), req, next)
        }));
    }
    router
}

async fn handle<M: Methods>(
    State(state): State<Arc<RouteState<M>>>,
    Extension(peer): Extension<PeerInfo>,
    request: Request,
) -> HttpResponse {
    let allowed = match state.limiter.lock() {
        Ok(mut limiter) => limiter.check(peer.addr.ip(), Instant::now()),
        Err(_) => false,
    };
    if !allowed {
        debug!(peer = %peer.addr, "rate limited");
        let error = ErrorObject::new(RATE_LIMITED, "too many requests");
        return respond(StatusCode::TOO_MANY_REQUESTS, &Response::error(None, error));
    }
    let content_type = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let body = axum::body::to_bytes(request.into_body(), state.max_body_bytes);
    let body = match tokio::time::timeout(state.body_timeout, body).await {
        Ok(Ok(b)) => b,
        Ok(Err(_)) => {
            let error = ErrorObject::new(INVALID_REQUEST, "request body too large or unreadable");
            return respond(StatusCode::PAYLOAD_TOO_LARGE, &Response::error(None, error));
        }
        Err(_) => {
            debug!(peer = %peer.addr, timeout = ?state.body_timeout, "request body too slow");
            let error = ErrorObject::new(INVALID_REQUEST, "request body not received in time");
            return respond(StatusCode::REQUEST_TIMEOUT, &Response::error(None, error));
        }
    };
    let rpc = match decode_request(content_type.as_deref(), &body) {
        Ok(r) => r,
        Err(error) => {
            debug!(peer = %peer.addr, code = error.code, message = %error.message, "bad request");
            return respond(StatusCode::BAD_REQUEST, &Response::error(None, error));
        }
    };
    let id = Some(rpc.id.clone());
    let method = rpc.method.clone();
    let started = Instant::now();
    let call = tokio::time::timeout(state.call_timeout, state.methods.call(rpc, peer));
    let response = match call.await {
        Ok(Ok(result)) => Response::result(id, result),
        Err(_) => {
            warn!(%method, timeout = ?state.call_timeout, "call timed out");
            Response::error(id, ErrorObject::new(INTERNAL_ERROR, "request timed out"))
        }
        Ok(Err(error)) => {
            debug!(%method, code = error.code, message = %error.message, "call failed");
            Response::error(id, error)
        }
    };
    if let Some(metrics) = &state.metrics {
        let outcome = response
            .error
            .as_ref()
            .map_or_else(|| "ok".to_owned(), |e| e.code.to_string());
        metrics.observe(&method, &outcome, started.elapsed());
    }
    let status = StatusCode::from_u16(response.http_status()).unwrap_or(StatusCode::BAD_REQUEST);
    respond(status, &response)
}

fn respond(status: StatusCode, response: &Response) -> HttpResponse {
    match serde_json::to_vec(response) {
        Ok(bytes) => (
            status,
            [(header::CONTENT_TYPE, "application/json; charset=utf-8")],
            Body::from(bytes),
        )
            .into_response(),
        Err(e) => {
            warn!(error = %e, "response could not be serialised");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}
