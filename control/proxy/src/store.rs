//! The public announcement table with its datastore: writers are serialised (catch up → plan →
//! durable compare-and-append → apply, then compaction when due, see [`super::journal`]); readers
//! (the SNI resolver on engine cores) take a short read lock on the in-memory table only, never
//! across I/O. On a store shared by several nodes, [`PublicStore::refresh`] (every
//! `SHARED_REFRESH_INTERVAL`) makes every node's announcements route on this node too.

use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

use chrono::{DateTime, Utc};
use rand::RngCore;

use super::announcements::{
    Expiry, PUBLIC_ANNOUNCEMENT_TYPE, Plan, PublicAnnouncement, PublicTable, Rules,
};
use super::error::CallError;
use super::journal::{CaughtUp, Journal, MAX_APPEND_ATTEMPTS};
use super::stats::ProxyCounters;
use tandem_datastore::{AppendAt, DatastoreError};
use tandem_settings::datastore::DatastoreSettings;

/// Announcements of the public proxy.
#[derive(Debug)]
pub struct PublicStore {
    table: Arc<RwLock<PublicTable>>,
    journal: tokio::sync::Mutex<Journal>,
    counters: Arc<ProxyCounters>,
}

impl PublicStore {
    /// Opens the store, loads it (one bounded read, last write per domain wins), prunes expired
    /// announcements and compacts the store when it holds anything else.
    pub async fn open(
        settings: &DatastoreSettings,
        rules: Rules,
        counters: Arc<ProxyCounters>,
        now: DateTime<Utc>,
    ) -> Result<Self, DatastoreError> {
        let (journal, mut table) =
            Journal::open(settings, PUBLIC_ANNOUNCEMENT_TYPE, PublicTable::new(rules)).await?;
        table.prune(now);
        let store = Self {
            table: Arc::new(RwLock::new(table)),
            journal: tokio::sync::Mutex::new(journal),
            counters,
        };
        store.compact_if(|j, t| j.has_history(t.len()), now).await;
        Ok(store)
    }

    /// The shared table (for the SNI resolver).
    pub fn table(&self) -> Arc<RwLock<PublicTable>> {
        self.table.clone()
    }

    /// The table's admission rules.
    pub fn rules(&self) -> Rules {
        *read(&self.table).rules()
    }

    /// Plans `operator`'s announcements, persists the records that must be written, then applies
    /// the changes; compacts the store when due.
    pub async fn announce(
        &self,
        operator: &str,
        allowed: &[String],
        requested: &[(String, Expiry)],
        now: DateTime<Utc>,
    ) -> Result<Plan, CallError> {
        let mut journal = self.journal.lock().await;
        for _ in 0..MAX_APPEND_ATTEMPTS {
            // Plan on everything any node wrote: the append below lands only if nothing more was.
            journal.catch_up(&self.table, now).await?;
            // Expired entries count against the quota until pruned: prune first when this call
            // could reach it.
            let near = {
                let t = read(&self.table);
                t.held_by(operator) + requested.len() > t.rules().quota
            };
            if near {
                self.prune(now);
            }
            let mut plan = read(&self.table).plan(operator, allowed, requested, now);
            if plan.changes.is_empty() {
                return Ok(plan);
            }
            if journal.append_at(plan.writes()).await? == AppendAt::Behind {
                continue;
            }
            write(&self.table).apply(std::mem::take(&mut plan.changes));
            drop(journal);
            self.compact_if(|j, t| j.due(t.len()), now).await;
            return Ok(plan);
        }
        Err(CallError::Busy("announcement store contention"))
    }

    /// On a shared store: replays what other nodes appended (or reloads a store another node
    /// compacted). Returns what it did; `None` for a store only this process writes.
    pub async fn refresh(&self, now: DateTime<Utc>) -> Result<Option<CaughtUp>, DatastoreError> {
        let mut journal = self.journal.lock().await;
        if !journal.shared() {
            return Ok(None);
        }
        journal.catch_up(&self.table, now).await.map(Some)
    }

    /// Live announcements.
    pub fn live(&self, now: DateTime<Utc>) -> Vec<PublicAnnouncement> {
        read(&self.table).live(now)
    }

    /// Drops expired announcements from memory (the store forgets them at the next
    /// compaction); returns how many.
    pub fn prune(&self, now: DateTime<Utc>) -> usize {
        let n = write(&self.table).prune(now);
        self.counters
            .announcements_pruned
            .fetch_add(n as u64, std::sync::atomic::Ordering::Relaxed);
        n
    }

    /// At a clean shutdown: compacts the store when it holds any history or a deferred renewal,
    /// so the next start reads exactly the held announcements as they are now.
    pub async fn close(&self, now: DateTime<Utc>) {
        self.compact_if(|j, t| j.has_history(t.len()) || t.has_deferred(), now)
            .await;
    }

    /// Binary upgrade: holds the journal (announcements wait; the in-memory table still
    /// serves reads) with the store's lock released until `back` answers: `true` (the upgrade
    /// failed) takes the lock again and lets writes go on; `false` (the next process took
    /// over) keeps writes held until this process exits.
    pub async fn hand_over_store(
        &self,
        released: tokio::sync::oneshot::Sender<Result<(), DatastoreError>>,
        back: tokio::sync::oneshot::Receiver<bool>,
    ) {
        let journal = self.journal.lock().await;
        let _ = released.send(journal.set_locked(false));
        match back.await {
            Ok(true) => {
                if let Err(e) = journal.set_locked(true) {
                    tracing::error!(error = %e, "cannot take the announcement store back after a failed upgrade");
                }
            }
            _ => std::future::pending::<()>().await,
        }
    }

    /// Records in the store, when known.
    #[cfg(test)]
    pub async fn records(&self) -> Option<u64> {
        self.journal.lock().await.records()
    }

    /// Compacts when `when(journal, held)`; failures are logged by the journal and leave the
    /// store as it was (it stays correct, only longer).
    async fn compact_if(&self, when: fn(&Journal, &PublicTable) -> bool, now: DateTime<Utc>) {
        let mut journal = self.journal.lock().await;
        if !when(&journal, &read(&self.table)) {
            return;
        }
        self.prune(now);
        let snapshot = read(&self.table).snapshot();
        // Changes are applied only under the journal lock, held here: the snapshot stays exact.
        if let Ok(true) = journal.compact(&snapshot).await {
            write(&self.table).mark_durable();
            ProxyCounters::inc(&self.counters.announcement_compactions);
        }
    }
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

#[cfg(test)]
#[path = "store_tests.rs"]
mod tests;
