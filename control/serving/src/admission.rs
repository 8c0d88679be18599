//! One listener's admission: the sans-IO [`AdmissionTable`] behind a mutex (never held across an
//! `.await`), turning its decisions into refused sockets, cut connections and metrics.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use tokio::net::TcpStream;
use tracing::debug;

use super::conn::{ConnState, CutReason, Phase, Slot};
use super::guarded::Guarded;
use super::metrics::ServingMetrics;
use super::table::{AdmissionTable, ConnId, Eviction};
use tandem_types::serving_config::ServingConfig;

/// Admission for one listener. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Admission(Arc<Inner>);

#[derive(Debug)]
struct Inner {
    name: &'static str,
    config: ServingConfig,
    table: Mutex<AdmissionTable<Arc<ConnState>>>,
    metrics: ServingMetrics,
}

impl Admission {
    /// Admission for the listener called `name` (a metric label) under `config`.
    pub fn new(name: &'static str, config: ServingConfig, metrics: ServingMetrics) -> Self {
        Self(Arc::new(Inner {
            name,
            table: Mutex::new(AdmissionTable::new(config.admission.clone())),
            config,
            metrics,
        }))
    }

    /// The listener's name.
    pub fn name(&self) -> &'static str {
        self.0.name
    }

    /// The policy.
    pub fn config(&self) -> &ServingConfig {
        &self.0.config
    }

    /// The metrics it counts into.
    pub fn metrics(&self) -> &ServingMetrics {
        &self.0.metrics
    }

    /// Connections holding a slot now.
    pub fn open(&self) -> usize {
        self.table().len()
    }

    fn table(&self) -> MutexGuard<'_, AdmissionTable<Arc<ConnState>>> {
        // A panic while holding the lock cannot leave the table half-updated in a way that
        // matters more than refusing service: keep serving with what is there.
        self.0.table.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Admits an accepted TCP connection that will run a TLS handshake (or none, for
    /// `Phase::AwaitingRequest` servers: see [`Self::admit_plain`]). `None`: refused and closed.
    pub fn admit(&self, stream: TcpStream, peer: SocketAddr) -> Option<(Guarded<TcpStream>, Slot)> {
        self.admit_in(stream, peer, Phase::Handshake)
    }

    /// Admits an accepted TCP connection that has no handshake (plain HTTP).
    pub fn admit_plain(
        &self,
        stream: TcpStream,
        peer: SocketAddr,
    ) -> Option<(Guarded<TcpStream>, Slot)> {
        self.admit_in(stream, peer, Phase::AwaitingRequest)
    }

    fn admit_in(
        &self,
        stream: TcpStream,
        peer: SocketAddr,
        phase: Phase,
    ) -> Option<(Guarded<TcpStream>, Slot)> {
        let now = Instant::now();
        let state = ConnState::new(now, phase);
        let admitted = {
            let mut table = self.table();
            let result = table.admit(peer.ip(), now, state.clone());
            self.0.metrics.set_open(self.0.name, table.len());
            result
        };
        let admitted = match admitted {
            Ok(a) => a,
            Err(refusal) => {
                debug!(listener = self.0.name, %peer, reason = refusal.as_str(), "connection refused");
                self.0.metrics.count(self.0.name, refusal.as_str());
                return None;
            }
        };
        for (victim, why) in admitted.evicted {
            let reason = match why {
                Eviction::SourceFull => CutReason::EvictedSourceFull,
                Eviction::Full => CutReason::EvictedFull,
            };
            if victim.cut(reason) {
                self.0.metrics.count(self.0.name, reason.as_str());
            }
        }
        self.0.metrics.count(self.0.name, "admitted");
        tune(&stream);
        let slot = Slot::new(admitted.id, state, self.clone());
        let guarded = Guarded::new(stream, slot.clone(), self.0.config.deadlines);
        Some((guarded, slot))
    }

    pub(crate) fn prove(&self, id: ConnId) {
        self.table().prove(id);
    }

    pub(crate) fn release(&self, id: ConnId) {
        let mut table = self.table();
        table.release(id, Instant::now());
        self.0.metrics.set_open(self.0.name, table.len());
    }

    /// Counts a cut the connection's I/O made (deadlines).
    pub(crate) fn count_cut(&self, reason: CutReason) {
        self.0.metrics.count(self.0.name, reason.as_str());
    }

    /// Counts a failed handshake (bad TLS, unknown peer).
    pub fn count_handshake_failed(&self) {
        self.0.metrics.count(self.0.name, "handshake_failed");
    }
}

/// TCP keepalive: idle time before the first probe, and between probes (dead peers free their
/// slot in about a minute and a half instead of the kernel's two hours).
const KEEPALIVE_IDLE: std::time::Duration = std::time::Duration::from_secs(60);
const KEEPALIVE_INTERVAL: std::time::Duration = std::time::Duration::from_secs(10);
const KEEPALIVE_RETRIES: u32 = 3;

/// `TCP_NODELAY` (request/response traffic must not wait out Nagle and the delayed ACK) and keepalive
/// on every accepted socket. A failure only costs latency or liveness detection, never the connection.
fn tune(stream: &TcpStream) {
    if let Err(e) = stream.set_nodelay(true) {
        debug!(error = %e, "TCP_NODELAY not set");
    }
    let keepalive = socket2::TcpKeepalive::new()
        .with_time(KEEPALIVE_IDLE)
        .with_interval(KEEPALIVE_INTERVAL)
        .with_retries(KEEPALIVE_RETRIES);
    if let Err(e) = socket2::SockRef::from(stream).set_tcp_keepalive(&keepalive) {
        debug!(error = %e, "TCP keepalive not set");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn accepted_sockets_get_nodelay_and_keepalive() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let _client = TcpStream::connect(addr).await.unwrap();
        let (stream, peer) = listener.accept().await.unwrap();
        let admission = Admission::new("t", ServingConfig::default(), ServingMetrics::default());
        let (io, _slot) = admission.admit(stream, peer).unwrap();
        let sock = socket2::SockRef::from(io.get_ref());
        assert!(sock.tcp_nodelay().unwrap());
        assert!(sock.keepalive().unwrap());
        assert_eq!(sock.tcp_keepalive_time().unwrap(), KEEPALIVE_IDLE);
        assert_eq!(admission.open(), 1);
        assert_eq!(admission.metrics().get("t", "admitted"), 1);
    }
}
