//! The metrics endpoint: `/metrics` (Prometheus text), `/healthz` (alive), `/readyz` (ready).

use std::future::Future;
use std::sync::{Arc, RwLock};

use axum::Router;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use prometheus_client::registry::Registry;
use tandem_serving::ListenerGroup;

use super::{Readiness, render};
use crate::http::{ServerLimits, serve as serve_http};

/// Serves the endpoint on `listener` (plain HTTP: keep it on a management address) until `shutdown`.
pub async fn serve(
    listener: ListenerGroup,
    registry: Arc<RwLock<Registry>>,
    ready: Arc<Readiness>,
    shutdown: impl Future<Output = ()>,
) {
    let metrics = move || {
        let registry = registry.clone();
        async move {
            let text = match registry.read() {
                Ok(r) => render(&r),
                Err(p) => render(&p.into_inner()),
            };
            (
                [(
                    header::CONTENT_TYPE,
                    "text/plain; version=0.0.4; charset=utf-8",
                )],
                text,
            )
        }
    };
    let readyz = move || {
        let ready = ready.clone();
        async move {
            if ready.get() {
                (StatusCode::OK, "ready\n").into_response()
            } else {
                (StatusCode::SERVICE_UNAVAILABLE, "not ready\n").into_response()
            }
        }
    };
    let router = Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz));
    let limits = ServerLimits {
        name: "metrics",
        ..ServerLimits::default()
    };
    serve_http(listener, None, router, limits, shutdown).await;
}
