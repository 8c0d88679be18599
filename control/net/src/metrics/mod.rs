//! Prometheus metrics (`prometheus-client`) and the `/metrics`, `/healthz`, `/readyz` endpoint every
//! process serves when its settings name a `metrics.bind_address`.

pub mod collect;
mod directory;
mod endpoint;
mod refusals;
mod rpc;
mod server;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

pub use directory::{DirectoryMetrics, RefreshOutcome, RefusalReason};
pub use endpoint::{METRICS_SOCKET, MetricsServer, bind};
pub use prometheus_client::registry::Registry;
pub use refusals::{ReasonLabel, Refusals};
pub use rpc::{RpcLabels, RpcMetrics};
pub use server::serve;

/// Whether the process is ready to take traffic (`/readyz`); `/healthz` only says it is alive.
#[derive(Debug, Default)]
pub struct Readiness(AtomicBool);

impl Readiness {
    /// A not-yet-ready flag.
    pub fn new() -> Arc<Self> {
        Arc::new(Self(AtomicBool::new(false)))
    }

    /// Marks the process ready (or not, while draining).
    pub fn set(&self, ready: bool) {
        self.0.store(ready, Ordering::Release);
    }

    /// Whether the process is ready.
    pub fn get(&self) -> bool {
        self.0.load(Ordering::Acquire)
    }
}

/// Renders `registry` in the Prometheus text format.
pub fn render(registry: &Registry) -> String {
    let mut out = String::new();
    // Writing into a String cannot fail; an encoding error would mean a bug in a metric's name.
    if let Err(e) = prometheus_client::encoding::text::encode(&mut out, registry) {
        tracing::error!(error = %e, "metrics could not be encoded");
    }
    out
}
