//! [`ControlServer`]: the `ControlService` of `control.proto` over the engine, served with tonic
//! over the admin-checked mTLS connections of [`super::incoming`].

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime};

use rustls::ServerConfig;
use tandem_engine::{EngineHandle, PairKind};
use tandem_proto::control as pb;
use tandem_proto::control::control_service_server::{ControlService, ControlServiceServer};
use tokio_stream::wrappers::BroadcastStream;
use tokio_stream::{Stream, StreamExt};
use tonic::{Request, Response, Status};
use tracing::{Instrument, info, info_span};

use super::convert::{self, denied_status, engine_status, quota_status};
use super::hub::EventHub;
use super::incoming::{self, AdminPeers, Caller};
use super::metrics::{Metrics, ServiceCounters};
use super::policy::AdminPolicy;
use super::{ControlError, MAX_DRAIN_GRACE, MAX_PAIR_TTL};
use tandem_net::grpc::{TonicLimits, serve_tls};
use tandem_net::tls::ServerTls;
use tandem_serving::Admission;
use tandem_settings::tls::TlsSettings;

/// Pairs `ListPairs` returns when the request names no limit.
pub const DEFAULT_LIST_LIMIT: usize = 1000;
/// Most pairs one `ListPairs` answer carries (~60 B each on the wire: ~600 KiB, under the 4 MiB
/// message bound).
pub const MAX_LIST_LIMIT: usize = 10_000;
/// Calls one control connection may have open at once (watch streams count).
const MAX_STREAMS_PER_CONNECTION: u32 = 256;
/// A control connection is recycled after an hour (clients reconnect transparently; a
/// `WatchEvents` stream then resumes on the new connection), with a minute of grace.
const MAX_CONNECTION_AGE: Duration = Duration::from_secs(3600);
const MAX_CONNECTION_AGE_GRACE: Duration = Duration::from_secs(60);

struct Inner {
    engine: EngineHandle,
    endpoint: String,
    policy: AdminPolicy,
    hub: EventHub,
    metrics: Arc<Metrics>,
    draining: AtomicBool,
    /// Where `Upgrade` calls go (the public proxy's serve loop), once it takes them.
    upgrades: std::sync::OnceLock<tokio::sync::mpsc::Sender<UpgradeAsk>>,
    /// What `Reload` runs (the proxy's SIGHUP reloader), once the proxy serves.
    reloader: std::sync::OnceLock<tandem_net::reload::Reloader>,
}

/// An `Upgrade` call waiting for its outcome.
pub type UpgradeAsk = tokio::sync::oneshot::Sender<pb::UpgradeResponse>;

/// The proxy's control service. Cheap to clone; clones share counters.
#[derive(Clone)]
pub struct ControlServer {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for ControlServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ControlServer")
            .field("endpoint", &self.inner.endpoint)
            .field("policy", &self.inner.policy)
            .finish()
    }
}

impl ControlServer {
    /// A service creating pairs on `engine`, handing out `endpoint` (`HOST:PORT` of the pairing
    /// port as clients reach it), admitting callers by `authz`, streaming events from `events`.
    pub fn new(
        engine: EngineHandle,
        endpoint: String,
        authz: AdminPolicy,
        events: EventHub,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                engine,
                endpoint,
                policy: authz,
                hub: events,
                metrics: Arc::new(Metrics::default()),
                draining: AtomicBool::new(false),
                upgrades: std::sync::OnceLock::new(),
                reloader: std::sync::OnceLock::new(),
            }),
        }
    }

    /// The mTLS server config for the control port (ALPN `h2`); `settings` should require
    /// verified client certificates (`verify_client: true`).
    pub fn tls_config(settings: &TlsSettings) -> Result<Arc<ServerConfig>, ControlError> {
        Ok(tandem_net::tls::server_config(settings, &[b"h2"])?)
    }

    /// Sends `Upgrade` calls to `asks` (the first call of this wins).
    pub fn accept_upgrades(&self, asks: tokio::sync::mpsc::Sender<UpgradeAsk>) {
        let _ = self.inner.upgrades.set(asks);
    }

    /// Lets `Reload` run `reloader` (set once; later calls are ignored).
    pub fn set_reloader(&self, reloader: tandem_net::reload::Reloader) {
        let _ = self.inner.reloader.set(reloader);
    }

    /// The admin policy (shared with the listener; [`AdminPolicy::set_names`] reaches both).
    pub fn policy(&self) -> &AdminPolicy {
        &self.inner.policy
    }

    /// The service's counters.
    pub fn counters(&self) -> ServiceCounters {
        self.inner.metrics.snapshot()
    }

    /// Serves on `listener` with `tls` under the serving kit's `admission` (from the
    /// `control.serving` settings) until `shutdown` resolves; open connections then get
    /// [`tandem_net::grpc::SHUTDOWN_GRACE`] to finish. Must run inside a tokio runtime.
    pub async fn serve_with(
        self,
        listener: impl Into<tandem_serving::ListenerGroup>,
        tls: impl Into<ServerTls>,
        admission: Admission,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), ControlError> {
        let listener = listener.into();
        let local = listener.local_addr().map_err(ControlError::Listener)?;
        let h2 = admission.config().http2;
        let peers = AdminPeers {
            policy: self.inner.policy.clone(),
            metrics: self.inner.metrics.clone(),
        };
        let listener = incoming::listener(listener, tls.into(), admission, peers);
        let service = ControlServiceServer::new(self)
            .max_decoding_message_size(tandem_proto::MAX_MESSAGE_BYTES)
            .max_encoding_message_size(tandem_proto::MAX_MESSAGE_BYTES);
        let router = TonicLimits {
            max_streams: MAX_STREAMS_PER_CONNECTION,
            h2,
            keepalive_interval: h2.keepalive_interval,
            keepalive_timeout: h2.keepalive_timeout,
            max_connection_age: MAX_CONNECTION_AGE,
            max_connection_age_grace: MAX_CONNECTION_AGE_GRACE,
        }
        .builder()
        .add_service(service);
        let (stop, stopped) = tandem_serving::shutdown();
        let signal = async move {
            shutdown.await;
            stop.trigger();
        };
        let span = info_span!("control_server", addr = %local);
        async move {
            info!("control service listening");
            tokio::join!(signal, serve_tls(listener, router, stopped));
            info!("control service stopped");
        }
        .instrument(span)
        .await;
        Ok(())
    }

    /// The caller's admin name, or the counted refusal.
    fn admit<T>(&self, request: &Request<T>) -> Result<String, Status> {
        let Some(caller) = request.extensions().get::<Caller>() else {
            Metrics::inc(&self.inner.metrics.denied_calls);
            return Err(Status::unauthenticated("no caller information"));
        };
        caller.admin.clone().map_err(|d| {
            Metrics::inc(&self.inner.metrics.denied_calls);
            denied_status(&d)
        })
    }
}

/// The event stream of one watcher.
pub type EventStream = Pin<Box<dyn Stream<Item = Result<pb::PairEvent, Status>> + Send>>;

#[tonic::async_trait]
impl ControlService for ControlServer {
    async fn create_pair(
        &self,
        request: Request<pb::CreatePairRequest>,
    ) -> Result<Response<pb::CreatePairResponse>, Status> {
        let admin = self.admit(&request)?;
        let inner = &self.inner;
        let ttl = match request.get_ref().ttl_ms {
            0 => inner.engine.pair_ttl(),
            ms => Duration::from_millis(ms).min(MAX_PAIR_TTL),
        };
        let now = SystemTime::now();
        // The calling admin is the operator the pair counts against.
        let quotas = inner.hub.quotas();
        let admitted = quotas.admit(&admin, now).await.map_err(|e| {
            Metrics::inc(&inner.metrics.create_failures);
            quota_status(&e)
        })?;
        let bandwidth = admitted.bandwidth();
        let created = inner
            .engine
            .create_pair_limited(PairKind::Direct, ttl, None, bandwidth);
        let expires_at = now + ttl;
        let ticket = match created {
            Ok(t) => {
                quotas.issued(admitted, t.id, expires_at);
                t
            }
            Err(e) => {
                quotas.abandoned(admitted);
                Metrics::inc(&inner.metrics.create_failures);
                return Err(engine_status(&e));
            }
        };
        inner.hub.book().issued(ticket.id, now, expires_at);
        Metrics::inc(&inner.metrics.pairs_created);
        Ok(Response::new(pb::CreatePairResponse {
            id: Some(convert::pair_id(ticket.id)),
            endpoint: inner.endpoint.clone(),
            tokens: vec![
                ticket.side_a.as_bytes().to_vec(),
                ticket.side_b.as_bytes().to_vec(),
            ],
            expires_at: convert::rfc3339(expires_at),
        }))
    }

    async fn list_pairs(
        &self,
        request: Request<pb::ListPairsRequest>,
    ) -> Result<Response<pb::ListPairsResponse>, Status> {
        self.admit(&request)?;
        let limit = match request.get_ref().limit {
            0 => DEFAULT_LIST_LIMIT,
            n => (n as usize).min(MAX_LIST_LIMIT),
        };
        let stats = self.inner.engine.stats();
        let (pairs, truncated) = {
            let mut book = self.inner.hub.book();
            book.prune(SystemTime::now());
            book.list(limit)
        };
        Ok(Response::new(pb::ListPairsResponse {
            cores: stats
                .iter()
                .enumerate()
                .map(|(i, s)| convert::core_counts(i, s))
                .collect(),
            pairs: pairs
                .into_iter()
                .map(|(id, t)| convert::pair_info(id, t))
                .collect(),
            truncated,
            events_dropped: stats.iter().map(|s| s.events_dropped).sum(),
        }))
    }

    async fn stats(
        &self,
        request: Request<pb::StatsRequest>,
    ) -> Result<Response<pb::StatsResponse>, Status> {
        self.admit(&request)?;
        let own = self.counters();
        let hub = self.inner.hub.counters();
        Ok(Response::new(pb::StatsResponse {
            cores: (self.inner.engine.stats().iter().enumerate())
                .map(|(i, s)| convert::core_stats(i, s))
                .collect(),
            service: Some(pb::ServiceStats {
                pairs_created: own.pairs_created,
                create_failures: own.create_failures,
                denied_calls: own.denied_calls,
                handshake_failures: own.handshake_failures,
                events_received: hub.received,
                events_lagged: hub.lagged,
                watchers: hub.watchers,
                draining: self.inner.draining.load(Ordering::Relaxed),
            }),
        }))
    }

    async fn drain(
        &self,
        request: Request<pb::DrainRequest>,
    ) -> Result<Response<pb::DrainResponse>, Status> {
        let admin = self.admit(&request)?;
        let grace = Duration::from_millis(request.get_ref().grace_ms).min(MAX_DRAIN_GRACE);
        self.inner.draining.store(true, Ordering::Relaxed);
        let engine = self.inner.engine.clone();
        let live_at_start = engine.stats().iter().map(|s| s.live_pairs).sum();
        info!(%admin, grace_ms = grace.as_millis() as u64, live_at_start, "drain requested");
        let started = Instant::now();
        tokio::task::spawn_blocking(move || engine.drain(grace))
            .await
            .map_err(|e| Status::internal(format!("drain task: {e}")))?
            .map_err(|e| Status::internal(format!("drain: {e}")))?;
        Ok(Response::new(pb::DrainResponse {
            live_at_start,
            took_ms: started.elapsed().as_millis() as u64,
        }))
    }

    async fn upgrade(
        &self,
        request: Request<pb::UpgradeRequest>,
    ) -> Result<Response<pb::UpgradeResponse>, Status> {
        let admin = self.admit(&request)?;
        let asks = self
            .inner
            .upgrades
            .get()
            .ok_or_else(|| Status::unavailable("this proxy does not upgrade in place"))?;
        let (reply, outcome) = tokio::sync::oneshot::channel();
        asks.try_send(reply)
            .map_err(|_| Status::resource_exhausted("an upgrade is already in progress"))?;
        info!(%admin, "upgrade requested");
        let answer = outcome
            .await
            .map_err(|_| Status::unavailable("the proxy stopped before the upgrade ended"))?;
        Ok(Response::new(answer))
    }

    async fn reload(
        &self,
        request: Request<pb::ReloadRequest>,
    ) -> Result<Response<pb::ReloadResponse>, Status> {
        let admin = self.admit(&request)?;
        let Some(reloader) = self.inner.reloader.get() else {
            return Err(Status::failed_precondition(
                "this proxy was not started from settings files; nothing to reload",
            ));
        };
        info!(%admin, "reload requested");
        match reloader.reload("proxy ctl reload").await {
            Ok(applied) => Ok(Response::new(pb::ReloadResponse { applied })),
            Err(e) => Err(Status::failed_precondition(format!(
                "reload refused, nothing changed: {e}"
            ))),
        }
    }

    async fn quotas(
        &self,
        request: Request<pb::QuotasRequest>,
    ) -> Result<Response<pb::QuotasResponse>, Status> {
        self.admit(&request)?;
        let mut report = self.inner.hub.quotas().report(SystemTime::now());
        let truncated = report.len() > MAX_LIST_LIMIT;
        report.truncate(MAX_LIST_LIMIT);
        Ok(Response::new(pb::QuotasResponse {
            operators: report.iter().map(convert::operator_quotas).collect(),
            truncated,
        }))
    }

    type WatchEventsStream = EventStream;

    async fn watch_events(
        &self,
        request: Request<pb::WatchEventsRequest>,
    ) -> Result<Response<EventStream>, Status> {
        let admin = self.admit(&request)?;
        let hub = self.inner.hub.clone();
        let rx = hub
            .subscribe()
            .ok_or_else(|| Status::unavailable("the event hub has stopped"))?;
        info!(%admin, "event watcher connected");
        let stream = BroadcastStream::new(rx).map(move |item| match item {
            Ok(event) => Ok(convert::event(&event)),
            Err(tokio_stream::wrappers::errors::BroadcastStreamRecvError::Lagged(n)) => {
                hub.count_lagged(n);
                Ok(convert::gap(n))
            }
        });
        Ok(Response::new(Box::pin(stream)))
    }
}
