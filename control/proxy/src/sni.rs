//! The TLS passthrough bridge (SPEC §4.7, public side). The engine calls [`SniRouter::resolve`]
//! on a core thread for every ClientHello: it looks the name up in memory, creates an `Sni` pair
//! and queues the notification of the private side, without blocking. A tokio task takes the
//! queued jobs with bounded concurrency: it first counts the pair against the quotas of the
//! domain's owner (live pairs, pairs per minute, waiting pairs; the same counter as
//! `requestConnection`, so a Redis counter counts it fleet-wide), cancelling the pair when a
//! quota is reached (the TLS connection is closed); then it sends
//! `<operator>.incomingConnection` with a deadline and cancels the pair if that call fails.
//! The engine's pair events release the quota as for any pair.

use std::net::SocketAddr;
use std::sync::{Arc, OnceLock, RwLock};
use std::time::{Duration, SystemTime};

use chrono::Utc;
use tandem_contracts::private_proxy::IncomingConnection;
use tandem_engine::{ClientHelloInfo, EngineHandle, PairId, PairKind, SniResolver, Token};
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tracing::{debug, info, warn};

use super::announcements::PublicTable;
use super::hyper_link::HyperLink;
use super::stats::ProxyCounters;
use super::store::read;
use crate::quota::Quotas;

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

/// What the notification tasks share.
#[derive(Clone)]
pub struct Notifier {
    /// Where `incomingConnection` goes.
    pub hyper: HyperLink,
    /// The engine whose pairs are notified (and cancelled on a refusal or a failed call).
    pub engine: EngineHandle,
    /// The pairing endpoint the private side dials.
    pub endpoint: String,
    /// The proxy's counters.
    pub counters: Arc<ProxyCounters>,
    /// The per-operator quotas the pairs count against.
    pub quotas: Arc<Quotas>,
    /// The pairs' token lifetime (`accept_timeout`): when an unpaired pair's quota lapses.
    pub pair_ttl: Duration,
}

impl std::fmt::Debug for Notifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Notifier")
            .field("endpoint", &self.endpoint)
            .field("pair_ttl", &self.pair_ttl)
            .finish_non_exhaustive()
    }
}

/// Sends queued notifications until `stop`; every call task is joined before return.
pub async fn dispatch(
    mut jobs: mpsc::Receiver<SniJob>,
    notifier: Notifier,
    mut stop: tandem_serving::Shutdown,
) {
    let mut calls = JoinSet::new();
    loop {
        tokio::select! {
            () = stop.triggered() => break,
            Some(_) = calls.join_next(), if !calls.is_empty() => {}
            job = jobs.recv(), if calls.len() < MAX_INFLIGHT_NOTIFICATIONS => {
                let Some(job) = job else { break };
                calls.spawn(notify(job, notifier.clone()));
            }
        }
    }
    calls.abort_all();
    while calls.join_next().await.is_some() {}
}

/// Counts the pair of `job` against its domain's owner: true when admitted (its quota is held
/// until the engine reports the pair's end); false when a quota is reached: the pair is
/// cancelled (the engine closes the TLS connection) and the refusal counted and logged.
pub(crate) async fn admit_sni(
    quotas: &Quotas,
    engine: &EngineHandle,
    job: &SniJob,
    pair_ttl: Duration,
) -> bool {
    let now = SystemTime::now();
    match quotas.admit(&job.operator, now).await {
        Ok(admitted) => {
            quotas.issued(admitted, job.pair, now + pair_ttl);
            true
        }
        Err(e) => {
            let _ = engine.cancel_pair(job.pair);
            warn!(pair = %job.pair, operator = %job.operator, domain = %job.domain, quota = e.kind(), client = %job.source, "TLS connection refused by quota");
            false
        }
    }
}

async fn notify(job: SniJob, n: Notifier) {
    let Notifier {
        hyper,
        engine,
        endpoint,
        counters,
        quotas,
        pair_ttl,
    } = n;
    if !admit_sni(&quotas, &engine, &job, pair_ttl).await {
        ProxyCounters::inc(&counters.pairs_cancelled);
        return;
    }
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

#[cfg(test)]
#[path = "sni_tests.rs"]
mod tests;
