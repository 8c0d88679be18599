//! The Redis datastore: entries are the elements of one list (`RPUSH key <entry bytes>`), read
//! incrementally with `LRANGE key <next> -1`, exactly as the original stores them.
//!
//! - A batch is one `RPUSH` with several values, so it is atomic; `append` returns once Redis has
//!   acknowledged it (durable when the server runs with `appendfsync always`). `append_at`
//!   ([`append`]) appends only when the list ends where the caller's cursor read it.
//! - Every read also fetches the element before the cursor and compares it with the one the
//!   cursor read there: a rewritten list is [`DatastoreError::Rewritten`], never silently mixed.
//! - Every call is bounded by [`REDIS_TIMEOUT`]; the connection is a `ConnectionManager`, which
//!   reconnects in the background after a failure, so calls fail fast while Redis is down and
//!   succeed again once it is back. An append that timed out may still have been applied
//!   (at-least-once): entries carry their own ids, and the directory deduplicates by hash.
//! - With `master_name` set, the addresses are Sentinels: the master is resolved at open and
//!   resolved again after every failure that means it may have moved (a connection failure, or
//!   the server answering as a replica: `READONLY`, `MASTERDOWN`, `NOREPLICAS`, `LOADING`).
//!   Idempotent calls (reads, compare-and-appends) retry, resolving again before each attempt,
//!   for up to `failover_timeout`, [`FAILOVER_RETRY_PAUSE`] apart ([`failover`]).
//! - With `wait_replicas` > 0 every append is followed by `WAIT wait_replicas wait_timeout` and is
//!   acknowledged only when that many replicas confirmed it ([`DatastoreError::NotReplicated`]
//!   otherwise).
//! - The password is sent at connect and never logged.
//! - [`RedisDatastore::open_and_read`] reads the list in pages of [`READ_PAGE_ENTRIES`];
//!   [`RedisDatastore::replace_all`] (compaction) swaps the whole list in one Lua script, only when
//!   it still holds exactly the entries the caller knows of (no other writer appended).

use std::sync::{Arc, RwLock};
use std::time::Duration;

use redis::aio::ConnectionManager;
use redis::sentinel::SentinelClient;

use super::Cursor;
use super::data_entry::DataEntry;
use super::error::DatastoreError;
use tandem_settings::datastore::RedisDatastoreSettings;

/// Bound on one Redis command, including waiting for a reconnect: 1 s, the original's read and
/// write timeouts.
pub const REDIS_TIMEOUT: Duration = Duration::from_secs(1);

/// Bound on opening the store (first connection with its retries, and the `PING`): 5 s.
pub const REDIS_OPEN_TIMEOUT: Duration = Duration::from_secs(5);

/// Retries of a failed (re)connection attempt: 1. The client waits 1–2 s (its minimum backoff,
/// jittered) before a retry, so one retry keeps a reconnect cycle near [`REDIS_TIMEOUT`]-scale;
/// the next call after a failed cycle starts a fresh one.
const RECONNECT_RETRIES: usize = 1;

mod append;
mod client;
mod failover;
mod pages;
mod script;
use client::{connect, response_timeout};
use client::{direct_client, sentinel_client};
pub use failover::FAILOVER_RETRY_PAUSE;
pub use pages::READ_PAGE_ENTRIES;
pub use script::MAX_SCRIPT_ARGS;

/// An open Redis store. Cheap to clone (clones share the connection).
#[derive(Clone)]
pub struct RedisDatastore {
    key: String,
    manager: Arc<RwLock<ConnectionManager>>,
    sentinel: Option<Arc<tokio::sync::Mutex<SentinelClient>>>,
    /// `WAIT` after an append: replicas required (0: none) and how long to wait.
    wait_replicas: u8,
    wait_timeout: Duration,
    /// How long an idempotent call retries through a failover.
    failover_timeout: Duration,
    /// The client's response timeout: [`REDIS_TIMEOUT`], or longer to cover a `WAIT`.
    response_timeout: Duration,
}

impl std::fmt::Debug for RedisDatastore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisDatastore")
            .field("key", &self.key)
            .field("sentinel", &self.sentinel.is_some())
            .finish()
    }
}

async fn bounded<T>(
    op: &'static str,
    after: Duration,
    fut: impl Future<Output = redis::RedisResult<T>>,
) -> Result<T, DatastoreError> {
    match tokio::time::timeout(after, fut).await {
        Ok(result) => result.map_err(|source| DatastoreError::Redis { op, source }),
        Err(_) => Err(DatastoreError::Timeout { op, after }),
    }
}

impl RedisDatastore {
    /// Connects (through Sentinel when `master_name` is set) and checks the server with `PING`.
    pub async fn open(settings: &RedisDatastoreSettings) -> Result<Self, DatastoreError> {
        let (client, sentinel) = if settings.master_name.is_empty() {
            (direct_client(settings)?, None)
        } else {
            let mut sentinel = sentinel_client(settings)?;
            let client =
                bounded("sentinel", REDIS_OPEN_TIMEOUT, sentinel.async_get_client()).await?;
            (client, Some(Arc::new(tokio::sync::Mutex::new(sentinel))))
        };
        let response_timeout = response_timeout(settings);
        // A plain server fails fast while it is down (its connection reconnects by itself).
        let failover_timeout = if sentinel.is_some() {
            settings.failover_timeout
        } else {
            Duration::ZERO
        };
        let manager = connect(client, response_timeout).await?;
        tracing::info!(key = %settings.key, database = settings.database, sentinel = sentinel.is_some(), wait_replicas = settings.wait_replicas, "redis datastore open");
        Ok(Self {
            key: settings.key.clone(),
            manager: Arc::new(RwLock::new(manager)),
            sentinel,
            wait_replicas: settings.wait_replicas,
            wait_timeout: settings.wait_timeout,
            // A plain server fails fast while it is down (its connection reconnects by itself).
            failover_timeout,
            response_timeout,
        })
    }

    /// The list key.
    pub fn key(&self) -> &str {
        &self.key
    }

    fn manager(&self) -> ConnectionManager {
        match self.manager.read() {
            Ok(m) => m.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// `LRANGE key start stop` (inclusive, as Redis counts) under the call deadline.
    async fn lrange(&self, start: isize, stop: isize) -> Result<Vec<Vec<u8>>, DatastoreError> {
        let mut manager = self.manager();
        bounded(
            "LRANGE",
            REDIS_TIMEOUT,
            redis::cmd("LRANGE")
                .arg(&self.key)
                .arg(start)
                .arg(stop)
                .query_async::<Vec<Vec<u8>>>(&mut manager),
        )
        .await
    }

    /// Appends `entries` with one `RPUSH` and returns once Redis acknowledged it.
    pub async fn append(&self, entries: &[DataEntry]) -> Result<(), DatastoreError> {
        if entries.is_empty() {
            return Ok(());
        }
        let mut cmd = redis::cmd("RPUSH");
        cmd.arg(&self.key);
        for entry in entries {
            cmd.arg(entry.encode()?);
        }
        let mut manager = self.manager();
        let result = bounded("RPUSH", REDIS_TIMEOUT, cmd.query_async::<u64>(&mut manager)).await;
        self.after(result).await?;
        self.wait_for_replicas(&mut manager).await
    }

    /// Returns the list elements after `cursor` and advances it; `Err(Rewritten)` when the list no
    /// longer holds, at the cursor's last position, the element it read there. Retries through a
    /// failover within `failover_timeout`.
    pub async fn read_new(&self, cursor: &mut Cursor) -> Result<Vec<DataEntry>, DatastoreError> {
        let (len, tip, raw) = self
            .retrying("LRANGE", || self.read_from(cursor.position))
            .await?;
        if len < cursor.position {
            return Err(DatastoreError::CursorAhead {
                position: cursor.position,
                len,
            });
        }
        if tip != cursor.last {
            return Err(DatastoreError::Rewritten {
                position: cursor.position,
            });
        }
        let entries = decode_all(&raw, cursor.position)?;
        cursor.position += entries.len() as u64;
        if let Some(last) = raw.into_iter().last() {
            cursor.last = Some(last);
        }
        Ok(entries)
    }

    /// One atomic read of the list's length, the element at `position - 1` and those after it.
    async fn read_from(
        &self,
        position: u64,
    ) -> Result<(u64, Option<Vec<u8>>, Vec<Vec<u8>>), DatastoreError> {
        let start = isize::try_from(position)
            .map_err(|_| DatastoreError::CursorAhead { position, len: 0 })?;
        let mut manager = self.manager();
        let mut query = redis::pipe();
        query.atomic().llen(&self.key);
        if start > 0 {
            query.lindex(&self.key, start - 1);
        }
        query.lrange(&self.key, start, -1);
        if start > 0 {
            bounded(
                "LRANGE",
                REDIS_TIMEOUT,
                query.query_async::<(u64, Option<Vec<u8>>, Vec<Vec<u8>>)>(&mut manager),
            )
            .await
        } else {
            bounded(
                "LRANGE",
                REDIS_TIMEOUT,
                query.query_async::<(u64, Vec<Vec<u8>>)>(&mut manager),
            )
            .await
            .map(|(len, raw)| (len, None, raw))
        }
    }
}

/// Decodes list elements read from index `first`.
fn decode_all(raw: &[Vec<u8>], first: u64) -> Result<Vec<DataEntry>, DatastoreError> {
    raw.iter()
        .enumerate()
        .map(|(i, bytes)| {
            DataEntry::decode(bytes).map_err(|e| DatastoreError::Corrupt {
                at: first + i as u64,
                reason: e.to_string(),
            })
        })
        .collect()
}
