//! The `api` directory (SPEC §3.7): entries from the signed service directory, cached and refreshed
//! incrementally (`getRecords {after: <local tip>}`) by one background task that owns the ledger.
//!
//! Callers read the last published snapshot without waiting. Only when it is older than twice
//! `cache_entries_for` (or was never fetched) do they wake the refresher and wait for it, at most
//! `timeouts.connect`, and then fail with a clear "unreachable" error.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use tokio::sync::{Mutex, Notify, watch};
use tokio::time::Instant;
use tracing::{debug, info, warn};

use crate::broker::types::{Entries, SourceError};
use crate::sdclient::SdClient;
use tandem_directory::ledger::Ledger;
use tandem_directory::verify::Verifier;
use tandem_net::metrics::DirectoryMetrics;

fn gauge(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// What the refresher last published.
#[derive(Debug, Clone, Default)]
pub(super) struct Snapshot {
    pub entries: Entries,
    /// When the last refresh succeeded.
    pub updated: Option<Instant>,
    /// Why the last refresh failed (cleared by a success).
    pub error: Option<String>,
    /// The tip hash of the local chain.
    pub tip: Option<String>,
    /// Records in the local chain.
    pub chain_len: usize,
    /// Records verified since start (each record once).
    pub verified: u64,
}

/// The refresher's own state: only the task running [`ApiDirectory::run`] touches it.
struct Refresher {
    client: SdClient,
    verifier: Verifier,
    ledger: Ledger,
}

pub(super) struct ApiDirectory {
    endpoint: String,
    period: Duration,
    wait_bound: Duration,
    // std RwLock: held only to copy or replace the snapshot, never across an await.
    snapshot: RwLock<Snapshot>,
    kick: Notify,
    /// Tickets of callers waiting for a fresh refresh (the last one handed out).
    requested: AtomicU64,
    /// The highest ticket that a finished refresh served: a refresh serves the tickets handed out
    /// before it started, so a caller never takes the outcome of a fetch older than its request.
    published: watch::Sender<u64>,
    // Held by the single running refresh loop for its whole life (a second `run` waits).
    refresher: Mutex<Refresher>,
    metrics: DirectoryMetrics,
}

impl ApiDirectory {
    pub(super) fn new(
        endpoint: String,
        client: SdClient,
        verifier: Verifier,
        period: Duration,
        wait_bound: Duration,
    ) -> Self {
        Self {
            endpoint,
            period,
            wait_bound,
            snapshot: RwLock::new(Snapshot::default()),
            kick: Notify::new(),
            requested: AtomicU64::new(0),
            published: watch::Sender::new(0),
            refresher: Mutex::new(Refresher {
                client,
                verifier,
                ledger: Ledger::new(),
            }),
            metrics: DirectoryMetrics::default(),
        }
    }

    pub(super) fn snapshot(&self) -> Snapshot {
        self.snapshot
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// The cached entries; waits (bounded) for a refresh only when the cache is too old.
    pub(super) async fn entries(&self) -> Result<Entries, SourceError> {
        let now = Instant::now();
        let current = self.snapshot();
        if current
            .updated
            .is_some_and(|t| now.duration_since(t) <= self.period * 2)
        {
            return Ok(current.entries);
        }
        let ticket = self.requested.fetch_add(1, Ordering::SeqCst) + 1;
        let mut published = self.published.subscribe();
        self.kick.notify_one();
        let served = published.wait_for(|served| *served >= ticket);
        if !matches!(
            tokio::time::timeout(self.wait_bound, served).await,
            Ok(Ok(_))
        ) {
            return Err(self.unreachable(&format!(
                "no answer within {:.1}s",
                self.wait_bound.as_secs_f64()
            )));
        }
        let after = self.snapshot();
        match after.updated {
            Some(t) if t >= now => Ok(after.entries),
            _ => Err(self.unreachable(after.error.as_deref().unwrap_or("the refresh failed"))),
        }
    }

    fn unreachable(&self, reason: &str) -> SourceError {
        SourceError::Unreachable {
            directory: format!("the service directory at {}", self.endpoint),
            reason: reason.to_owned(),
        }
    }

    /// The refresh loop: refreshes now, then every `cache_entries_for` and whenever a caller asks,
    /// until `shutdown` resolves.
    pub(super) async fn run(&self, shutdown: impl Future<Output = ()>) {
        tokio::pin!(shutdown);
        let mut refresher = tokio::select! {
            () = &mut shutdown => return,
            guard = self.refresher.lock() => guard,
        };
        loop {
            tokio::select! {
                () = &mut shutdown => return,
                () = self.refresh(&mut refresher) => {}
            }
            let periodic = !self.period.is_zero();
            tokio::select! {
                () = &mut shutdown => return,
                () = self.kick.notified() => {}
                () = tokio::time::sleep(self.period), if periodic => {}
            }
        }
    }

    async fn refresh(&self, refresher: &mut Refresher) {
        let started = Instant::now();
        let serves = self.requested.load(Ordering::SeqCst);
        let after = refresher
            .ledger
            .tip()
            .map(|t| t.hash.clone())
            .unwrap_or_default();
        // Err: the refusal kind (None: the fetch itself failed) and the reason.
        let outcome = match refresher.client.records_after(&after).await {
            Ok(records) => {
                let count = records.len();
                match refresher.ledger.apply_remote(records, &refresher.verifier) {
                    Ok(()) => Ok(count),
                    // The local chain is unchanged: the sd served a chain that breaks the rules.
                    Err(e) => {
                        self.metrics.refused(e.kind());
                        Err((Some(e.kind()), format!("refused the served records: {e}")))
                    }
                }
            }
            Err(e) => Err((None, e.to_string())),
        };
        self.metrics
            .refreshed(outcome.is_ok(), started.elapsed().as_secs_f64());
        let mut snapshot = self
            .snapshot
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        match outcome {
            Ok(count) => {
                if count > 0 || snapshot.updated.is_none() {
                    snapshot.entries = Arc::new(refresher.ledger.entries().clone());
                    snapshot.tip = refresher.ledger.tip().map(|t| t.hash.clone());
                    snapshot.chain_len = refresher.ledger.chain().len();
                    snapshot.verified += count as u64;
                }
                if count > 0 {
                    info!(
                        records = count,
                        chain = snapshot.chain_len,
                        "directory updated"
                    );
                } else {
                    debug!("directory unchanged");
                }
                snapshot.updated = Some(Instant::now());
                snapshot.error = None;
                self.metrics.records.set(gauge(snapshot.chain_len));
                self.metrics.entries.set(gauge(snapshot.entries.len()));
            }
            Err((refused, reason)) => {
                warn!(endpoint = %self.endpoint, refused, %reason, "directory refresh failed");
                snapshot.error = Some(reason);
            }
        }
        drop(snapshot);
        self.published
            .send_modify(|served| *served = (*served).max(serves));
    }
}

impl super::DirectoryClient {
    /// The refresh metrics of an `api` directory (`None` for `json`, which never refreshes);
    /// register them with [`DirectoryMetrics::register`].
    pub fn metrics(&self) -> Option<DirectoryMetrics> {
        match &self.backend {
            super::Backend::Api(api) => Some(api.metrics.clone()),
            super::Backend::Json(_) => None,
        }
    }
}
