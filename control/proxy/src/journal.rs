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
//! A Redis list may be shared by several proxy nodes (one key): every write is a
//! compare-and-append ([`Journal::append_at`]), which lands only when the list ends where this
//! journal has read it, so a node plans on everything the others wrote (owner-only and quota
//! rules hold across nodes: of two nodes racing for one domain, one append wins and the other
//! plans again). [`Journal::catch_up`] replays what other nodes appended (the stores call it
//! before every plan and every [`SHARED_REFRESH_INTERVAL`]); when another node compacted the list
//! (or a failover lost an unacknowledged tail) it reads the whole list and rebuilds the table. A
//! compaction happens only when the list holds exactly the records this journal read and wrote.

use std::sync::RwLock;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tracing::{info, warn};

use super::announcements::{Announcement, Table};
use super::error::CallError;
use super::store::{random_id, write};
use tandem_datastore::{AppendAt, Cursor, DataEntry, Datastore, DatastoreError, EntryVisitor};
use tandem_settings::datastore::DatastoreSettings;

/// How often a proxy on a shared (Redis) store reads what other nodes appended: 1 s, the bound on
/// how long an announcement made through one node stays unknown to another (each node also
/// catches up before every announcement it plans).
pub const SHARED_REFRESH_INTERVAL: Duration = Duration::from_secs(1);

/// Compare-and-append attempts of one announcement call: 8. Each lost attempt means another node
/// appended meanwhile; the call is then planned again on what it wrote.
pub const MAX_APPEND_ATTEMPTS: usize = 8;

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
    /// Records the store holds (read at open, then read or written); `None` once unknown (a
    /// failed compaction): no more compaction.
    records: Option<u64>,
    /// How far this journal has read the store (everything before it is in the table).
    cursor: Cursor,
    /// The store no longer holds what `cursor` read: the next catch-up reads it all again.
    rewritten: bool,
}

/// What [`Journal::catch_up`] did to the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CaughtUp {
    /// Replayed this many records appended by other writers.
    Replayed(usize),
    /// Read the whole (rewritten) store into a new table.
    Reloaded,
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
        let (store, cursor, loader) = Datastore::open_and_read(settings, loader).await?;
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
            cursor,
            rewritten: false,
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

    /// Whether the store may be written by other processes (a Redis list).
    pub(crate) fn shared(&self) -> bool {
        matches!(self.store, Datastore::Redis(_))
    }

    /// Appends `records` as one durable batch right after what this journal has read
    /// ([`Datastore::append_at`]). `Behind`: another writer appended first (or rewrote the
    /// store); nothing was written: catch up and plan again.
    pub(crate) async fn append_at<'a, R: Serialize + 'a>(
        &mut self,
        records: impl IntoIterator<Item = &'a R>,
    ) -> Result<AppendAt, CallError> {
        let entries = self.encode(records)?;
        if entries.is_empty() {
            return Ok(AppendAt::Appended);
        }
        match self.store.append_at(&mut self.cursor, &entries).await {
            Ok(AppendAt::Appended) => {
                if let Some(n) = &mut self.records {
                    *n += entries.len() as u64;
                }
                Ok(AppendAt::Appended)
            }
            Ok(AppendAt::Behind) => Ok(AppendAt::Behind),
            Err(e) if e.is_rewritten() => {
                self.rewritten = true;
                Ok(AppendAt::Behind)
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Brings `table` up to date with the store: replays what other writers appended since this
    /// journal last read, or, when the store was rewritten, reads it all into a new table under
    /// the same rules (pruned at `now`).
    pub(crate) async fn catch_up<A: Announcement + DeserializeOwned>(
        &mut self,
        table: &RwLock<Table<A>>,
        now: DateTime<Utc>,
    ) -> Result<CaughtUp, DatastoreError> {
        if !self.rewritten {
            match self.store.read_new(&mut self.cursor).await {
                Ok(new) => {
                    if let Some(n) = &mut self.records {
                        *n += new.len() as u64;
                    }
                    let records = self.decode::<A>(new);
                    let replayed = records.len();
                    if replayed > 0 {
                        write(table).replay(records);
                    }
                    return Ok(CaughtUp::Replayed(replayed));
                }
                Err(e) if e.is_rewritten() => {
                    warn!(error = %e, "the announcement store was rewritten by another writer; reading it again");
                }
                Err(e) => return Err(e),
            }
        }
        let mut cursor = Cursor::default();
        let all = self.store.read_new(&mut cursor).await?;
        self.records = Some(all.len() as u64);
        self.cursor = cursor;
        self.rewritten = false;
        let rules = *super::store::read(table).rules();
        let mut fresh = Table::new(rules);
        fresh.replay(self.decode::<A>(all));
        fresh.prune(now);
        *write(table) = fresh;
        Ok(CaughtUp::Reloaded)
    }

    /// The records of our type among `entries`; others and unreadable ones are skipped (logged).
    fn decode<A: DeserializeOwned>(&self, entries: Vec<DataEntry>) -> Vec<A> {
        let total = entries.len();
        let records: Vec<A> = entries
            .into_iter()
            .filter(|e| e.type_ == self.entry_type)
            .filter_map(|e| serde_json::from_slice(&e.data).ok())
            .collect();
        if records.len() < total {
            warn!(
                skipped = total - records.len(),
                "skipped stored entries that are not announcements"
            );
        }
        records
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
                // Cursors of the old list are void: read past the snapshot again (a bounded read
                // of what is held); when that fails, or another writer appended meanwhile, the
                // next catch-up reads the store whole.
                let mut cursor = Cursor::default();
                match self.store.read_new(&mut cursor).await {
                    Ok(read) if read.len() == entries.len() => self.cursor = cursor,
                    _ => {
                        self.cursor = Cursor::default();
                        self.rewritten = true;
                    }
                }
                Ok(true)
            }
            Ok(false) => {
                // Another writer appended since this journal last read: the next catch-up reads
                // it, and a later compaction may succeed.
                info!(
                    expected,
                    "announcement store was written by another writer: not compacted now"
                );
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
