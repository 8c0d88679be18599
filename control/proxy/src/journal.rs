//! An announcement table's datastore, for both proxies: opened with one bounded read that
//! replays every record into the table, appended to as the table changes, and compacted
//! (replaced by a snapshot of the table) so that a restart reads what is live, not the history.
//!
//! Bounds: opening reads the store once, in pages (`datastore::READ_PAGE_BYTES` /
//! `READ_PAGE_ENTRIES`), into a table that holds at most `MAX_ANNOUNCEMENTS`. The store is
//! compacted when it holds more than `2 × held + COMPACT_SLACK` records (at open, after a write,
//! and at a clean shutdown when it holds any record that is not a held entry), so it stays within
//! `2 × held + COMPACT_SLACK + one call's records`, and a restart after a clean shutdown reads
//! exactly the held entries.
//!
//! A Redis list may be shared with another writer (several proxies on one key): a compaction
//! happens only when the list holds exactly the records this journal read and wrote; otherwise
//! compaction stops for this process's lifetime (logged), and the list keeps growing as before.

use serde::Serialize;
use serde::de::DeserializeOwned;
use tracing::{info, warn};

use super::announcements::{Announcement, Table};
use super::error::CallError;
use super::store::random_id;
use tandem_datastore::{DataEntry, Datastore, DatastoreError, EntryVisitor};
use tandem_settings::datastore::DatastoreSettings;

/// Records beyond twice the held entries that a store may hold before it is compacted: 1,024
/// (~200 KiB of history), so small tables are not rewritten for every few changes.
pub const COMPACT_SLACK: u64 = 1024;

/// A table records are replayed into at open.
pub(crate) trait Replay: Send + 'static {
    /// The stored record.
    type Record: DeserializeOwned;
    /// Replays one record; `false` when the table was full and skipped it.
    fn replay_one(&mut self, record: Self::Record) -> bool;
}

impl<A: Announcement + DeserializeOwned> Replay for Table<A> {
    type Record = A;

    fn replay_one(&mut self, record: A) -> bool {
        self.replay(std::iter::once(record)) == 0
    }
}

/// The visitor of the opening read: decodes and replays, counting what it skipped.
struct Loader<T> {
    table: T,
    entry_type: u8,
    records: u64,
    other_type: u64,
    unreadable: u64,
    full: u64,
}

impl<T: Replay> EntryVisitor for Loader<T> {
    fn visit(&mut self, entry: DataEntry) {
        self.records += 1;
        if entry.type_ != self.entry_type {
            self.other_type += 1;
            return;
        }
        match serde_json::from_slice::<T::Record>(&entry.data) {
            Ok(record) => {
                if !self.table.replay_one(record) {
                    self.full += 1;
                }
            }
            Err(_) => self.unreadable += 1,
        }
    }
}

/// The datastore of one announcement table. Callers serialise its use (one writer at a time).
#[derive(Debug)]
pub(crate) struct Journal {
    store: Datastore,
    entry_type: u8,
    /// Records the store holds (read at open, then written); `None` once unknown (another writer
    /// or a failed compaction): no more compaction.
    records: Option<u64>,
}

impl Journal {
    /// Opens the store and replays it into `table` with one bounded read.
    pub(crate) async fn open<T: Replay>(
        settings: &DatastoreSettings,
        entry_type: u8,
        table: T,
    ) -> Result<(Self, T), DatastoreError> {
        let loader = Loader {
            table,
            entry_type,
            records: 0,
            other_type: 0,
            unreadable: 0,
            full: 0,
        };
        let (store, _, loader) = Datastore::open_and_read(settings, loader).await?;
        if loader.other_type + loader.unreadable + loader.full > 0 {
            warn!(
                other_type = loader.other_type,
                unreadable = loader.unreadable,
                table_full = loader.full,
                "skipped stored announcements while loading"
            );
        }
        info!(
            records = loader.records,
            store = store.kind(),
            "announcements loaded"
        );
        let journal = Self {
            store,
            entry_type,
            records: Some(loader.records),
        };
        Ok((journal, loader.table))
    }

    /// Releases or takes again the store's lock (binary upgrade; the caller holds the journal,
    /// so nothing is written meanwhile).
    pub(crate) fn set_locked(&self, locked: bool) -> Result<(), DatastoreError> {
        self.store.set_locked(locked)
    }

    /// The entries (our type, a fresh 16-byte id each) of `records`.
    fn encode<'a, R: Serialize + 'a>(
        &self,
        records: impl IntoIterator<Item = &'a R>,
    ) -> Result<Vec<DataEntry>, CallError> {
        records
            .into_iter()
            .map(|r| {
                let data =
                    serde_json::to_vec(r).map_err(|e| CallError::InvalidParams(e.to_string()))?;
                Ok(DataEntry {
                    type_: self.entry_type,
                    id: random_id(),
                    data,
                })
            })
            .collect()
    }

    /// Records the store holds, when known.
    #[cfg(test)]
    pub(crate) fn records(&self) -> Option<u64> {
        self.records
    }

    /// Appends `records` as one durable batch.
    pub(crate) async fn append<'a, R: Serialize + 'a>(
        &mut self,
        records: impl IntoIterator<Item = &'a R>,
    ) -> Result<(), CallError> {
        let entries = self.encode(records)?;
        if entries.is_empty() {
            return Ok(());
        }
        self.store.append(&entries).await?;
        if let Some(n) = &mut self.records {
            *n += entries.len() as u64;
        }
        Ok(())
    }

    /// Whether the store holds enough history beyond `held` entries to compact now.
    pub(crate) fn due(&self, held: usize) -> bool {
        self.records
            .is_some_and(|n| n > 2 * held as u64 + COMPACT_SLACK)
    }

    /// Whether the store holds any record beyond `held` entries (compact at a clean shutdown).
    pub(crate) fn has_history(&self, held: usize) -> bool {
        self.records.is_some_and(|n| n > held as u64)
    }

    /// Replaces the store with `snapshot` (the table's entries as held in memory). `Ok(true)`
    /// when replaced: the caller marks its entries durable.
    pub(crate) async fn compact<R: Serialize>(
        &mut self,
        snapshot: &[R],
    ) -> Result<bool, CallError> {
        let Some(expected) = self.records else {
            return Ok(false);
        };
        let entries = self.encode(snapshot)?;
        match self.store.replace_all(expected, &entries).await {
            Ok(true) => {
                info!(
                    before = expected,
                    after = entries.len(),
                    "announcement store compacted"
                );
                self.records = Some(entries.len() as u64);
                Ok(true)
            }
            Ok(false) => {
                warn!(
                    expected,
                    "announcement store was written by another writer: not compacting it while this process runs"
                );
                self.records = None;
                Ok(false)
            }
            Err(e) => {
                warn!(kind = e.kind(), error = %e, "announcement store compaction failed: not compacting it while this process runs");
                self.records = None;
                Err(e.into())
            }
        }
    }
}
