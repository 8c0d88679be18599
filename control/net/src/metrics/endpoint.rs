//! Binding and running the metrics endpoint as a background task that a role starts after its
//! listeners are bound and stops after it has drained.

use std::sync::{Arc, RwLock};

use prometheus_client::registry::Registry;
use tokio::task::JoinHandle;
use tracing::info;

use super::{Readiness, serve};
use tandem_serving::{BindError, ListenerGroup, ShutdownTrigger};
use tandem_settings::MetricsSettings;

/// The name a supervisor gives the metrics socket it passes (`FileDescriptorName=`).
pub const METRICS_SOCKET: &str = "metrics";

/// Adopts the metrics socket a supervisor passed as [`METRICS_SOCKET`], else binds the configured
/// `metrics.bind_address`.
pub async fn bind(settings: &MetricsSettings) -> Result<ListenerGroup, BindError> {
    tandem_serving::bind_named(METRICS_SOCKET, &settings.bind_address).await
}

/// A running metrics endpoint; [`MetricsServer::stop`] ends it (so does dropping it, without
/// waiting).
#[derive(Debug)]
pub struct MetricsServer {
    stop: ShutdownTrigger,
    task: JoinHandle<()>,
}

impl MetricsServer {
    /// Serves `/metrics`, `/healthz` and `/readyz` on `listener` in a tokio task (logs
    /// `metrics listening` with the bound address, which tests and operators read).
    pub fn spawn(
        listener: impl Into<ListenerGroup>,
        registry: Registry,
        ready: Arc<Readiness>,
    ) -> Self {
        let listener = listener.into();
        if let (Ok(addr), Ok(addrs)) = (listener.local_addr(), listener.local_addrs()) {
            info!(address = %addr, addresses = ?addrs, "metrics listening");
        }
        let (stop, stopped) = tandem_serving::shutdown();
        let registry = Arc::new(RwLock::new(registry));
        let task = tokio::spawn(serve(listener, registry, ready, stopped.wait()));
        Self { stop, task }
    }

    /// Stops serving and waits for the task (the HTTP server's own grace bounds the wait).
    pub async fn stop(self) {
        self.stop.trigger();
        let _ = self.task.await;
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    async fn get(addr: std::net::SocketAddr, path: &str) -> String {
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        let request = format!("GET {path} HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n");
        s.write_all(request.as_bytes()).await.unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).await.unwrap();
        out
    }

    #[tokio::test]
    async fn readyz_follows_readiness_and_stop_closes_the_port() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let ready = Readiness::new();
        let server = MetricsServer::spawn(listener, Registry::default(), ready.clone());
        assert!(get(addr, "/readyz").await.starts_with("HTTP/1.1 503"));
        assert!(get(addr, "/healthz").await.starts_with("HTTP/1.1 200"));
        ready.set(true);
        assert!(get(addr, "/readyz").await.starts_with("HTTP/1.1 200"));
        ready.set(false);
        assert!(
            get(addr, "/readyz").await.starts_with("HTTP/1.1 503"),
            "not ready while draining"
        );
        let metrics = get(addr, "/metrics").await;
        assert!(metrics.starts_with("HTTP/1.1 200"), "{metrics}");
        assert!(metrics.contains("# EOF"), "{metrics}");
        server.stop().await;
        assert!(tokio::net::TcpStream::connect(addr).await.is_err());
    }
}
