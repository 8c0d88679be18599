//! The public announcement table with its datastore: writers are serialised (plan → durable
//! append → apply), readers (the SNI resolver on engine cores) take a short read lock on the
//! in-memory table only, never across I/O.

use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

use chrono::{DateTime, Utc};
use rand::RngCore;
use tracing::warn;

use super::announcements::{PUBLIC_ANNOUNCEMENT_TYPE, Plan, PublicAnnouncement, PublicTable};
use super::error::CallError;
use crate::datastore::{Cursor, DataEntry, Datastore, DatastoreError};

/// Announcements of the public proxy.
#[derive(Debug)]
pub struct PublicStore {
    table: Arc<RwLock<PublicTable>>,
    writer: tokio::sync::Mutex<()>,
    store: Datastore,
}

impl PublicStore {
    /// Loads every stored announcement (last write per domain wins) and prunes expired ones.
    pub async fn open(store: Datastore, now: DateTime<Utc>) -> Result<Self, DatastoreError> {
        let entries = store.read_new(&mut Cursor::default()).await?;
        let records = entries.into_iter().filter_map(|e| {
            if e.type_ != PUBLIC_ANNOUNCEMENT_TYPE {
                warn!(
                    entry_type = e.type_,
                    "skipping a stored entry of another type"
                );
                return None;
            }
            serde_json::from_slice::<PublicAnnouncement>(&e.data)
                .map_err(|err| warn!(error = %err, "skipping an unreadable announcement"))
                .ok()
        });
        let mut table = PublicTable::default();
        let skipped = table.replay(records);
        if skipped > 0 {
            warn!(skipped, "announcement table full while loading");
        }
        table.prune(now);
        Ok(Self {
            table: Arc::new(RwLock::new(table)),
            writer: tokio::sync::Mutex::new(()),
            store,
        })
    }

    /// The shared table (for the SNI resolver).
    pub fn table(&self) -> Arc<RwLock<PublicTable>> {
        self.table.clone()
    }

    /// Plans `operator`'s announcements, persists the changes, then applies them.
    pub async fn announce(
        &self,
        operator: &str,
        allowed: &[String],
        requested: &[(String, Option<DateTime<Utc>>)],
        now: DateTime<Utc>,
    ) -> Result<Plan, CallError> {
        let _writer = self.writer.lock().await;
        let mut plan = read(&self.table).plan(operator, allowed, requested, now);
        if !plan.writes.is_empty() {
            let entries = plan
                .writes
                .iter()
                .map(entry)
                .collect::<Result<Vec<_>, _>>()?;
            self.store.append(&entries).await?;
            write(&self.table).apply(std::mem::take(&mut plan.writes));
        }
        Ok(plan)
    }

    /// Live announcements.
    pub fn live(&self, now: DateTime<Utc>) -> Vec<PublicAnnouncement> {
        read(&self.table).live(now)
    }

    /// Drops expired announcements from memory (they stay in the append-only store and are
    /// dropped again at the next load); returns how many.
    pub fn prune(&self, now: DateTime<Utc>) -> usize {
        write(&self.table).prune(now)
    }
}

fn entry(a: &PublicAnnouncement) -> Result<DataEntry, CallError> {
    let data = serde_json::to_vec(a).map_err(|e| CallError::InvalidParams(e.to_string()))?;
    Ok(DataEntry {
        type_: PUBLIC_ANNOUNCEMENT_TYPE,
        id: random_id(),
        data,
    })
}

/// 16 random bytes, the original's entry id.
pub(crate) fn random_id() -> Vec<u8> {
    let mut id = vec![0u8; 16];
    rand::rng().fill_bytes(&mut id);
    id
}

/// A read guard; a poisoned lock still holds the last consistent table (apply replaces whole
/// entries), so keep serving it.
pub(crate) fn read<T>(lock: &RwLock<T>) -> RwLockReadGuard<'_, T> {
    lock.read().unwrap_or_else(|p| p.into_inner())
}

/// A write guard; see [`read`].
pub(crate) fn write<T>(lock: &RwLock<T>) -> RwLockWriteGuard<'_, T> {
    lock.write().unwrap_or_else(|p| p.into_inner())
}
