//! Datastores: where the service directory (and later the proxy) keeps its append-only entries.
//!
//! Two backends with the original's byte layouts, behind one enum ([`Datastore`]):
//! - [`FileDatastore`]: the embedded default, an append-only file of chunks, `fsync`ed before an
//!   append returns, crash-safe per batch (each batch is marked in its chunk ids; a batch torn by
//!   a crash is never read, and opening truncates it whole).
//! - [`RedisDatastore`]: a Redis list, shared by several servers (optionally through Sentinel).
//!
//! Callers keep a [`Cursor`] per store and call [`Datastore::read_new`] to get only what was
//! appended since; a fresh `Cursor::default()` reads everything. Several processes sharing one
//! Redis list write with [`Datastore::append_at`] (compare-and-append at the cursor): a write
//! decided on what a process read lands only if nothing was appended since, and a list rewritten
//! under a reader (compaction, a failover's lost tail) is reported as
//! [`DatastoreError::Rewritten`] so that it reads the store again.
//!
//! Reads return everything new in one `Vec`: the caller (the directory) keeps all entries in
//! memory anyway, so a read holds at most the store's entries, each at most [`MAX_ENTRY_LEN`]
//! bytes; the file store reads its file in 64 KiB blocks besides.

mod batch;
mod chunk;
mod chunked;
mod data_entry;
mod error;
mod file;
mod reassemble;
mod redis;
mod stream;

pub use self::batch::MAX_BATCH_LEN;
pub use self::data_entry::{DataEntry, ENTRY_VERSION, EntryError, MAX_ENTRY_LEN};
pub use self::error::DatastoreError;
pub use self::file::FileDatastore;
/// Bytes of file one read step holds (opening and reading walk the file in blocks this size).
pub const READ_PAGE_BYTES: usize = self::stream::BLOCK_LEN;
pub use self::redis::{
    FAILOVER_RETRY_PAUSE, MAX_SCRIPT_ARGS, READ_PAGE_ENTRIES, REDIS_OPEN_TIMEOUT, REDIS_TIMEOUT,
    RedisDatastore,
};

use self::chunked::Decoder;
use tandem_settings::datastore::DatastoreSettings;

/// How far a reader has read one store. Belongs to the store it was used with.
///
/// For a file store: the byte offset after the last whole chunk read, plus the entries whose
/// chunks, or whose batch, have only partly arrived. For Redis: the number of list elements read
/// and the last one of them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Cursor {
    position: u64,
    pending: Decoder<DataEntry>,
    /// Redis: the raw list element at `position - 1`, checked at every read and conditional
    /// append so that a rewritten list (compaction, a failover that lost a tail) is noticed
    /// (at most `MAX_ENTRY_LEN` + header bytes).
    last: Option<Vec<u8>>,
}

/// What [`Datastore::append_at`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use]
pub enum AppendAt {
    /// The entries are durable, right after what the cursor had read; the cursor is past them.
    Appended,
    /// The store holds entries the cursor has not read: nothing was written, the cursor is
    /// unchanged. Read them ([`Datastore::read_new`]) and decide again.
    Behind,
}

impl Cursor {
    /// File offset, or Redis list index, of the next unread data.
    pub fn position(&self) -> u64 {
        self.position
    }
}

/// Receives the entries of [`Datastore::open_and_read`], in append order. Closures
/// `FnMut(DataEntry)` are visitors; a struct visitor keeps what it gathered when it is returned.
pub trait EntryVisitor: Send + 'static {
    /// One stored entry.
    fn visit(&mut self, entry: DataEntry);
}

impl<F: FnMut(DataEntry) + Send + 'static> EntryVisitor for F {
    fn visit(&mut self, entry: DataEntry) {
        self(entry)
    }
}

/// An open datastore of either kind. Cheap to clone (clones share the store).
#[derive(Debug, Clone)]
pub enum Datastore {
    /// The embedded append-only file.
    File(FileDatastore),
    /// A Redis list.
    Redis(RedisDatastore),
}

impl Datastore {
    /// Opens the store the settings describe: creates/locks/recovers the file, or connects to
    /// Redis and checks it with `PING`.
    pub async fn open(settings: &DatastoreSettings) -> Result<Self, DatastoreError> {
        Ok(match settings {
            DatastoreSettings::File(s) => Self::File(FileDatastore::open(s).await?),
            DatastoreSettings::Redis(s) => Self::Redis(RedisDatastore::open(s).await?),
        })
    }

    /// Releases or takes again a file store's lock (see [`FileDatastore::set_locked`]); Redis
    /// has no lock (several writers may share a list).
    pub fn set_locked(&self, locked: bool) -> Result<(), DatastoreError> {
        match self {
            Self::File(f) => f.set_locked(locked),
            Self::Redis(_) => Ok(()),
        }
    }

    /// [`Datastore::open`] and one read of everything stored, in bounded pages
    /// ([`READ_PAGE_BYTES`] of file, [`READ_PAGE_ENTRIES`] Redis elements), each entry handed to
    /// `visit` in append order: a file is read once (its recovery scan is this read). Returns the
    /// store, a cursor at the end of what was read, and the visitor.
    pub async fn open_and_read<V>(
        settings: &DatastoreSettings,
        visit: V,
    ) -> Result<(Self, Cursor, V), DatastoreError>
    where
        V: EntryVisitor,
    {
        Ok(match settings {
            DatastoreSettings::File(s) => {
                let (store, cursor, visit) = FileDatastore::open_and_read(s, visit).await?;
                (Self::File(store), cursor, visit)
            }
            DatastoreSettings::Redis(s) => {
                let (store, cursor, visit) = RedisDatastore::open_and_read(s, visit).await?;
                (Self::Redis(store), cursor, visit)
            }
        })
    }

    /// Replaces everything stored with `snapshot` (compaction), only when the store holds exactly
    /// `expected` entries (those the caller read or appended; for a file, entries appended through
    /// any handle of this store). `Ok(true)`: replaced atomically (file: synced and renamed
    /// over; Redis: one script). `Ok(false)`: another writer appended, nothing changed. `Err`:
    /// the file is unchanged; for Redis the outcome is unknown. Cursors of earlier reads are
    /// invalid after a replacement: use this only on a store whose one reader is the caller.
    pub async fn replace_all(
        &self,
        expected: u64,
        snapshot: &[DataEntry],
    ) -> Result<bool, DatastoreError> {
        match self {
            Self::File(s) => s.replace_all(expected, snapshot).await,
            Self::Redis(s) => s.replace_all(expected, snapshot).await,
        }
    }

    /// Appends `entries` as one batch. When this returns `Ok` the entries are durable (file:
    /// written and `fdatasync`ed; Redis: `RPUSH` acknowledged, and confirmed by `wait_replicas`
    /// replicas when set). Not retried through a failover (a retry could store the batch twice):
    /// shared stores use [`Datastore::append_at`]. Readers, in this process or after
    /// a crash and reopen, see the batch whole or not at all. On `Err` none of them is
    /// acknowledged (the batch may still land, whole). The file store refuses batches over
    /// [`MAX_BATCH_LEN`] encoded bytes.
    pub async fn append(&self, entries: &[DataEntry]) -> Result<(), DatastoreError> {
        match self {
            Self::File(s) => s.append(entries).await,
            Self::Redis(s) => s.append(entries).await,
        }
    }

    /// Compare-and-append: appends `entries` as one batch only when the store ends exactly where
    /// `cursor` has read (so a decision taken on what the cursor read still holds); across
    /// processes sharing a Redis list exactly one of several appends at the same position wins.
    /// Durability as [`Datastore::append`]. Redis: one Lua script (length and last element
    /// checked, then `RPUSH`), retried through a failover within `failover_timeout` (a retry
    /// whose earlier attempt landed finds its own entries and reports `Appended`). File: the
    /// store has one appender process (its lock); the caller serialises its own appends.
    /// `Err(Rewritten)`: the store no longer holds what the cursor read.
    pub async fn append_at(
        &self,
        cursor: &mut Cursor,
        entries: &[DataEntry],
    ) -> Result<AppendAt, DatastoreError> {
        match self {
            Self::File(s) => {
                let mut probe = cursor.clone();
                if !s.read_new(&mut probe).await?.is_empty() {
                    return Ok(AppendAt::Behind);
                }
                s.append(entries).await?;
                s.read_new(cursor).await?;
                Ok(AppendAt::Appended)
            }
            // Boxed: the retrying Redis call is a deep future type, kept out of callers' types.
            Self::Redis(s) => Box::pin(s.append_at(cursor, entries)).await,
        }
    }

    /// Returns the entries appended since `cursor` (in append order) and advances it. On `Err` the
    /// cursor is unchanged.
    pub async fn read_new(&self, cursor: &mut Cursor) -> Result<Vec<DataEntry>, DatastoreError> {
        match self {
            Self::File(s) => s.read_new(cursor).await,
            // Boxed: the retrying Redis call is a deep future type, kept out of callers' types.
            Self::Redis(s) => Box::pin(s.read_new(cursor)).await,
        }
    }

    /// `"file"` or `"redis"`, for logs and metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::File(_) => "file",
            Self::Redis(_) => "redis",
        }
    }
}
