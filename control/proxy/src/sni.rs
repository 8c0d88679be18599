//! The TLS passthrough bridge (SPEC §4.7, public side). The engine calls [`SniRouter::resolve`]
//! on a core thread for every ClientHello: it looks the name up in memory, creates an `Sni` pair
//! and queues the notification of the private side, without blocking. A tokio task sends the
//! queued `<operator>.incomingConnection` calls with bounded concurrency and a deadline each,
//! and cancels the pair of every call that fails.

use std::net::SocketAddr;
use std::sync::{Arc, OnceLock, RwLock};

use chrono::Utc;
use tandem_contracts::private_proxy::IncomingConnection;
use tandem_engine::{ClientHelloInfo, EngineHandle, PairId, PairKind, SniResolver, Token};
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tracing::{debug, info};

use super::announcements::PublicTable;
use super::hyper_link::HyperLink;
use super::stats::ProxyCounters;
use super::store::read;

/// Notifications waiting to be sent (jobs): when full, new ClientHellos are refused rather than
/// queued without end. 1024 × ~200 B.
pub const SNI_QUEUE: usize = 1024;
/// `incomingConnection` calls in flight at once (each holds an HTTP request to our Hyper node).
pub const MAX_INFLIGHT_NOTIFICATIONS: usize = 256;

/// One private side to notify.
#[derive(Debug)]
pub struct SniJob {
    operator: String,
    domain: String,
    pair: PairId,
    pairing_token: Token,
    /// The TLS client's address (after a PROXY header): passed on to the private proxy.
    source: SocketAddr,
}

/// The engine's resolver.
pub struct SniRouter {
    table: Arc<RwLock<PublicTable>>,
    engine: Arc<OnceLock<EngineHandle>>,
    jobs: mpsc::Sender<SniJob>,
    counters: Arc<ProxyCounters>,
}

impl SniRouter {
    /// A resolver over `table`; its engine is set through [`SniRouter::engine_cell`] once the
    /// engine it serves has started (until then every hello is refused).
    pub fn new(
        table: Arc<RwLock<PublicTable>>,
        jobs: mpsc::Sender<SniJob>,
        counters: Arc<ProxyCounters>,
    ) -> Self {
        Self {
            table,
            engine: Arc::new(OnceLock::new()),
            jobs,
            counters,
        }
    }

    /// Where the engine handle goes after `Engine::start`.
    pub fn engine_cell(&self) -> Arc<OnceLock<EngineHandle>> {
        self.engine.clone()
    }

    fn refuse(&self, reason: &'static str, peer: SocketAddr) -> Option<Token> {
        debug!(%peer, reason, "ClientHello refused");
        ProxyCounters::inc(&self.counters.sni_refused);
        None
    }
}

impl SniResolver for SniRouter {
    fn resolve(&self, hello: &ClientHelloInfo, peer: SocketAddr) -> Option<Token> {
        let Some(domain) = hello.sni.as_deref() else {
            return self.refuse("no server name", peer);
        };
        let operator = match read(&self.table).route(domain, Utc::now()) {
            Some(a) => a.operator.clone(),
            None => return self.refuse("no live announcement", peer),
        };
        let Some(engine) = self.engine.get() else {
            return self.refuse("engine starting", peer);
        };
        let Ok(ticket) = engine.create_pair(PairKind::Sni) else {
            return self.refuse("engine refused the pair", peer);
        };
        let job = SniJob {
            operator,
            domain: domain.to_owned(),
            pair: ticket.id,
            pairing_token: ticket.side_b,
            source: peer,
        };
        if self.jobs.try_send(job).is_err() {
            let _ = engine.cancel_pair(ticket.id);
            return self.refuse("notification queue full", peer);
        }
        ProxyCounters::inc(&self.counters.sni_resolved);
        Some(ticket.side_a)
    }
}

/// Sends queued notifications until `stop`; every call task is joined before return.
pub async fn dispatch(
    mut jobs: mpsc::Receiver<SniJob>,
    hyper: HyperLink,
    engine: EngineHandle,
    endpoint: String,
    counters: Arc<ProxyCounters>,
    mut stop: tandem_serving::Shutdown,
) {
    let mut calls = JoinSet::new();
    loop {
        tokio::select! {
            () = stop.triggered() => break,
            Some(_) = calls.join_next(), if !calls.is_empty() => {}
            job = jobs.recv(), if calls.len() < MAX_INFLIGHT_NOTIFICATIONS => {
                let Some(job) = job else { break };
                let (hyper, engine, endpoint, counters) =
                    (hyper.clone(), engine.clone(), endpoint.clone(), counters.clone());
                calls.spawn(notify(job, hyper, engine, endpoint, counters));
            }
        }
    }
    calls.abort_all();
    while calls.join_next().await.is_some() {}
}

async fn notify(
    job: SniJob,
    hyper: HyperLink,
    engine: EngineHandle,
    endpoint: String,
    counters: Arc<ProxyCounters>,
) {
    let call = IncomingConnection {
        domain: job.domain,
        token: job.pairing_token,
        endpoint,
        source: Some(job.source),
    };
    if let Err(e) = hyper.call(&job.operator, &call).await {
        let _ = engine.cancel_pair(job.pair);
        ProxyCounters::inc(&counters.sni_notify_failed);
        ProxyCounters::inc(&counters.pairs_cancelled);
        info!(pair = %job.pair, operator = %job.operator, kind = e.kind(), error = %e, "incomingConnection failed; pair cancelled");
    }
}
