//! The directory service: the datastore, the verified best chain, and the submission path.
//!
//! Locking (fixing the original, which held one mutex across datastore I/O for readers too):
//! - `writer` (async mutex) serialises submissions: check → durable append → apply. Holding it across
//!   the append is what makes "exactly one submission wins per parent" true; only writers take it.
//! - `ledger` (std `RwLock`) guards the in-memory chain; it is held only for in-memory work, never
//!   across an `.await`, so readers never wait on the datastore.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, RwLock, RwLockReadGuard};

use rand::RngCore;
use tracing::{info, warn};

use super::error::SdError;
use super::metrics::{OutcomeLabel, SdMetrics};
use tandem_datastore::{Cursor, DataEntry, Datastore};
use tandem_directory::SignedChangeRecord;
use tandem_directory::entry::DirectoryEntry;
use tandem_directory::ledger::Ledger;
use tandem_directory::verify::Verifier;

/// The datastore entry type of a signed change record (the original's `DataEntry{Type: 1}`).
pub const RECORD_ENTRY_TYPE: u8 = 1;

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
        let mut writer = self.writer.lock().await;
        self.catch_up(&mut writer).await?;
        let checked = self.read_ledger().check_append(&records, &self.verifier)?;
        let entries: Vec<DataEntry> = records.iter().map(record_entry).collect();
        let started = std::time::Instant::now();
        self.store.append(&entries).await?;
        self.metrics
            .append_seconds
            .observe(started.elapsed().as_secs_f64());
        // Advance the cursor past what we just wrote; anything else that appeared meanwhile comes from
        // another process sharing the datastore, and forces a rebuild.
        let seen = decode_records(self.store.read_new(&mut writer.cursor).await?);
        let only_ours =
            seen.len() == records.len() && seen.iter().zip(&records).all(|(a, b)| a.hash == b.hash);
        writer.stored.extend(seen);
        if only_ours {
            self.write_ledger().apply(checked)?;
        } else {
            warn!("datastore holds records from another writer; rebuilding the chain");
            let ledger = Ledger::rebuild(writer.stored.clone(), &self.verifier)?;
            *self.write_ledger() = ledger;
        }
        Ok(())
    }

    /// Reads what other processes appended to a shared datastore since we last looked.
    async fn catch_up(&self, writer: &mut WriterState) -> Result<(), SdError> {
        let new = decode_records(self.store.read_new(&mut writer.cursor).await?);
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
