//! The directory service: the datastore, the verified best chain, and the submission path.
//!
//! Locking (fixing the original, which held one mutex across datastore I/O for readers too):
//! - `writer` (async mutex) serialises this process's submissions and refreshes: catch up → check →
//!   compare-and-append → apply. Only writers and the refresher take it.
//! - `ledger` (std `RwLock`) guards the in-memory chain; it is held only for in-memory work, never
//!   across an `.await`, so readers never wait on the datastore.
//!
//! Several `sd` processes on one Redis list (see `docs/operating.md`): a submission is appended
//! with [`Datastore::append_at`], which writes only when the list still ends where this process
//! has read it; so of several submissions on one parent, in any processes, exactly one is stored.
//! A loser reads what won and checks again (it is then stale). [`DirectoryService::refresh`] (run
//! every [`REFRESH_INTERVAL`] by `run` on a Redis store) makes records appended by other processes
//! visible to this one's readers; every [`FULL_READ_EVERY`]th refresh reads the whole list again
//! and rebuilds when it differs (a rewritten list is also noticed at every read).
//!
//! A submission is checked against the current chain before it waits for the writer lock: a
//! flood of submissions that do not verify is refused without touching the lock or the store,
//! so it cannot hold back a valid submission.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, RwLock, RwLockReadGuard};

use rand::RngCore;
use tracing::{info, warn};

use super::error::SdError;
use super::metrics::{OutcomeLabel, SdMetrics};
use tandem_datastore::{AppendAt, Cursor, DataEntry, Datastore};
use tandem_directory::SignedChangeRecord;
use tandem_directory::entry::DirectoryEntry;
use tandem_directory::ledger::{AppendError, Ledger};
use tandem_directory::verify::Verifier;

/// The datastore entry type of a signed change record (the original's `DataEntry{Type: 1}`).
pub const RECORD_ENTRY_TYPE: u8 = 1;

/// Compare-and-append attempts of one submission: 4. Each lost attempt means another process
/// appended meanwhile; after catching up the submission is checked again, which refuses it as
/// stale unless it was a reset (a new root), so more than two attempts are rare.
pub const MAX_APPEND_ATTEMPTS: usize = 4;

/// How often `run` reads what other processes appended to a shared (Redis) store: 1 s, the
/// bound on how long a record appended through another `sd` stays invisible here.
pub const REFRESH_INTERVAL: std::time::Duration = std::time::Duration::from_secs(1);

/// Every 60th refresh (once a minute at [`REFRESH_INTERVAL`]) reads the whole store again.
pub const FULL_READ_EVERY: u32 = 60;

/// What the writer keeps between submissions.
struct WriterState {
    /// Position in the datastore up to which entries are reflected in the ledger.
    cursor: Cursor,
    /// Every record read from or written to the store, for a rebuild when another process appended.
    stored: Vec<SignedChangeRecord>,
}

/// The service behind the `sd` JSON-RPC methods.
pub struct DirectoryService {
    store: Datastore,
    verifier: Arc<Verifier>,
    writer: tokio::sync::Mutex<WriterState>,
    ledger: RwLock<Ledger>,
    /// `limits.max_records_per_submit`; a reload may change it.
    max_records_per_submit: AtomicUsize,
    metrics: SdMetrics,
}

impl DirectoryService {
    /// Opens the service: reads every stored record and selects the best chain.
    pub async fn open(
        store: Datastore,
        verifier: Arc<Verifier>,
        max_records_per_submit: usize,
        metrics: SdMetrics,
    ) -> Result<Self, SdError> {
        let mut cursor = Cursor::default();
        let stored = decode_records(store.read_new(&mut cursor).await?);
        let ledger = Ledger::rebuild(stored.clone(), &verifier)?;
        info!(
            stored = stored.len(),
            chain = ledger.chain().len(),
            "directory loaded"
        );
        Ok(Self {
            store,
            verifier,
            writer: tokio::sync::Mutex::new(WriterState { cursor, stored }),
            ledger: RwLock::new(ledger),
            max_records_per_submit: AtomicUsize::new(max_records_per_submit),
            metrics,
        })
    }

    /// Validates a batch against the current chain, makes it durable, then applies it. Nothing is
    /// stored unless the whole batch is valid.
    pub async fn submit(&self, records: Vec<SignedChangeRecord>) -> Result<(), SdError> {
        let result = self.submit_inner(records).await;
        let outcome = match &result {
            Ok(()) => "ok",
            Err(e) => e.kind(),
        };
        self.metrics
            .submissions
            .get_or_create(&OutcomeLabel { outcome })
            .inc();
        self.observe_ledger();
        result
    }

    /// Sets the most records one submission may carry (a reload of `limits`).
    pub fn set_max_records_per_submit(&self, max: usize) {
        self.max_records_per_submit.store(max, Ordering::Relaxed);
    }

    /// Publishes the chain and entry counts to the metrics.
    pub fn observe_ledger(&self) {
        let ledger = self.read_ledger();
        self.metrics
            .chain_records
            .set(i64::try_from(ledger.chain().len()).unwrap_or(i64::MAX));
        self.metrics
            .entries
            .set(i64::try_from(ledger.entries().len()).unwrap_or(i64::MAX));
    }

    async fn submit_inner(&self, records: Vec<SignedChangeRecord>) -> Result<(), SdError> {
        let max = self.max_records_per_submit.load(Ordering::Relaxed);
        if records.len() > max {
            return Err(SdError::TooManyRecords {
                got: records.len(),
                max,
            });
        }
        // Before the lock: a record that does not verify against the chain it extends is refused
        // here (a stale view only turns a stale submission's answer into this refusal).
        if let Err(e @ AppendError::Rejected { .. }) =
            self.read_ledger().check_append(&records, &self.verifier)
        {
            return Err(e.into());
        }
        let entries: Vec<DataEntry> = records.iter().map(record_entry).collect();
        let mut writer = self.writer.lock().await;
        for _ in 0..MAX_APPEND_ATTEMPTS {
            self.catch_up(&mut writer).await?;
            let checked = self.read_ledger().check_append(&records, &self.verifier)?;
            let started = std::time::Instant::now();
            let appended = match self.store.append_at(&mut writer.cursor, &entries).await {
                Ok(outcome) => outcome,
                Err(e) if e.is_rewritten() => {
                    self.reload(&mut writer).await?;
                    continue;
                }
                Err(e) => return Err(e.into()),
            };
            if appended == AppendAt::Behind {
                continue;
            }
            self.metrics
                .append_seconds
                .observe(started.elapsed().as_secs_f64());
            writer.stored.extend(records);
            self.write_ledger().apply(checked)?;
            return Ok(());
        }
        Err(AppendError::Stale.into())
    }

    /// Reads what other processes appended to a shared datastore since we last looked; reads
    /// everything again when the store was rewritten.
    async fn catch_up(&self, writer: &mut WriterState) -> Result<(), SdError> {
        let new = match self.store.read_new(&mut writer.cursor).await {
            Ok(new) => decode_records(new),
            Err(e) if e.is_rewritten() => {
                warn!(error = %e, "the datastore was rewritten; reading it again");
                return self.reload(writer).await;
            }
            Err(e) => return Err(e.into()),
        };
        if !new.is_empty() {
            info!(
                new = new.len(),
                "datastore has records from another writer; rebuilding the chain"
            );
            writer.stored.extend(new);
            let ledger = Ledger::rebuild(writer.stored.clone(), &self.verifier)?;
            *self.write_ledger() = ledger;
        }
        Ok(())
    }

    /// Reads the whole store from the start and rebuilds the chain from it.
    async fn reload(&self, writer: &mut WriterState) -> Result<(), SdError> {
        let mut cursor = Cursor::default();
        let stored = decode_records(self.store.read_new(&mut cursor).await?);
        let ledger = Ledger::rebuild(stored.clone(), &self.verifier)?;
        *writer = WriterState { cursor, stored };
        *self.write_ledger() = ledger;
        self.metrics.store_reloads.inc();
        Ok(())
    }

    /// Makes what other processes appended visible to this one's readers; with `full`, reads the
    /// whole store and rebuilds when it differs from what this process holds.
    pub async fn refresh(&self, full: bool) -> Result<(), SdError> {
        let mut writer = self.writer.lock().await;
        if full {
            let mut cursor = Cursor::default();
            let stored = decode_records(self.store.read_new(&mut cursor).await?);
            let same = stored.len() == writer.stored.len()
                && stored
                    .iter()
                    .zip(&writer.stored)
                    .all(|(a, b)| a.hash == b.hash);
            if !same {
                warn!(
                    stored = stored.len(),
                    held = writer.stored.len(),
                    "a full read found a different store; rebuilding the chain"
                );
                let ledger = Ledger::rebuild(stored.clone(), &self.verifier)?;
                *writer = WriterState { cursor, stored };
                *self.write_ledger() = ledger;
                self.metrics.store_reloads.inc();
            }
        } else {
            self.catch_up(&mut writer).await?;
        }
        drop(writer);
        self.observe_ledger();
        Ok(())
    }

    /// Refreshes every [`REFRESH_INTERVAL`] (a full read every [`FULL_READ_EVERY`]th time) until
    /// `stop` turns true. Failures are logged; the next refresh tries again.
    pub async fn refresh_until(&self, mut stop: tokio::sync::watch::Receiver<bool>) {
        let mut ticks = tokio::time::interval(REFRESH_INTERVAL);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut n: u32 = 0;
        loop {
            tokio::select! {
                _ = ticks.tick() => {}
                _ = stop.wait_for(|s| *s) => return,
            }
            n = n.wrapping_add(1);
            // A refresh retrying through a failover does not hold up a shutdown.
            tokio::select! {
                r = self.refresh(n.is_multiple_of(FULL_READ_EVERY)) => {
                    if let Err(e) = r {
                        self.metrics.refresh_failures.inc();
                        warn!(kind = e.kind(), error = %e, "reading the shared datastore failed");
                    }
                }
                _ = stop.wait_for(|s| *s) => return,
            }
        }
    }

    /// The last record of the best chain.
    pub fn tip(&self) -> Option<SignedChangeRecord> {
        self.read_ledger().tip().cloned()
    }

    /// The records strictly after `after` (the whole chain when `after` is empty or unknown).
    pub fn records_after(&self, after: &str) -> Vec<SignedChangeRecord> {
        self.read_ledger().records_after(after).to_vec()
    }

    /// Every entry of the directory.
    pub fn entries(&self) -> Vec<DirectoryEntry> {
        self.read_ledger().entries().values().cloned().collect()
    }

    /// One entry by operator name.
    pub fn entry(&self, name: &str) -> Option<DirectoryEntry> {
        self.read_ledger().entry(name).cloned()
    }

    fn read_ledger(&self) -> RwLockReadGuard<'_, Ledger> {
        // A poisoned lock means a panic while applying in-memory state; the data is still the last
        // consistent ledger (apply and rebuild replace it whole), so keep serving it.
        self.ledger.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write_ledger(&self) -> std::sync::RwLockWriteGuard<'_, Ledger> {
        self.ledger.write().unwrap_or_else(|p| p.into_inner())
    }
}

/// The datastore entry of a record: type 1, a random 16-byte id, the record's JSON.
fn record_entry(record: &SignedChangeRecord) -> DataEntry {
    let mut id = vec![0u8; 16];
    rand::rng().fill_bytes(&mut id);
    DataEntry {
        type_: RECORD_ENTRY_TYPE,
        id,
        data: record.to_json(),
    }
}

/// Decodes stored records; entries that are not records or do not parse are logged and skipped
/// (the chain selection then ignores whatever depended on them).
fn decode_records(entries: Vec<DataEntry>) -> Vec<SignedChangeRecord> {
    entries
        .into_iter()
        .filter(|e| e.type_ == RECORD_ENTRY_TYPE)
        .filter_map(|e| match SignedChangeRecord::from_json(&e.data) {
            Ok(r) => Some(r),
            Err(err) => {
                warn!(error = %err, "skipping a stored entry that is not a record");
                None
            }
        })
        .collect()
}
