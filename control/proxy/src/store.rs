//! The public announcement table with its datastore: writers are serialised (plan → durable
//! append → apply, then compaction when due, see [`super::journal`]); readers (the SNI resolver
//! on engine cores) take a short read lock on the in-memory table only, never across I/O.

use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

use chrono::{DateTime, Utc};
use rand::RngCore;

use super::announcements::{
    Expiry, PUBLIC_ANNOUNCEMENT_TYPE, Plan, PublicAnnouncement, PublicTable, Rules,
};
use super::error::CallError;
use super::journal::Journal;
use super::stats::ProxyCounters;
use tandem_datastore::DatastoreError;
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
        if !plan.changes.is_empty() {
            journal.append(plan.writes()).await?;
            write(&self.table).apply(std::mem::take(&mut plan.changes));
        }
        drop(journal);
        self.compact_if(|j, t| j.due(t.len()), now).await;
        Ok(plan)
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
mod tests {
    //! The public announcement store on a real file datastore: compaction keeps the store near its
    //! live entries however many renewals it took, and a restart reads what is live.

    use chrono::TimeDelta;

    use super::*;
    use crate::announcements::Outcome;
    use crate::journal::COMPACT_SLACK;
    use tandem_settings::datastore::FileDatastoreSettings;

    const OP: &str = "private-proxy-1.ga";

    fn allowed() -> Vec<String> {
        vec![".internal-server.local".to_owned()]
    }

    fn settings(dir: &std::path::Path) -> DatastoreSettings {
        DatastoreSettings::File(FileDatastoreSettings {
            filename: dir.join("announcements.records"),
        })
    }

    async fn open(dir: &std::path::Path, now: DateTime<Utc>) -> (PublicStore, Arc<ProxyCounters>) {
        let counters = Arc::new(ProxyCounters::default());
        let store = PublicStore::open(&settings(dir), Rules::default(), counters.clone(), now)
            .await
            .unwrap();
        (store, counters)
    }

    fn domains(n: usize) -> Vec<String> {
        (0..n)
            .map(|i| format!("d{i}.internal-server.local"))
            .collect()
    }

    /// `n` renewals of every domain, each a second shorter than the last (so each is written), from
    /// `start` seconds ahead.
    async fn renew_many(
        store: &PublicStore,
        names: &[String],
        n: usize,
        start: i64,
        now: DateTime<Utc>,
    ) {
        for i in 0..n {
            let at = now + TimeDelta::seconds(start - i as i64);
            let requested: Vec<_> = names
                .iter()
                .map(|d| (d.clone(), Expiry::Until(at)))
                .collect();
            let plan = store
                .announce(OP, &allowed(), &requested, now)
                .await
                .unwrap();
            assert!(plan.results.iter().all(Result::is_ok), "{:?}", plan.results);
        }
    }

    #[tokio::test]
    async fn many_renewals_keep_the_store_bounded_and_a_restart_reads_only_live_entries() {
        let dir = tempfile::tempdir().unwrap();
        let now = Utc::now();
        let names = domains(3);
        let (store, counters) = open(dir.path(), now).await;
        // One more, withdrawn: it must not come back.
        let gone = "gone.internal-server.local".to_owned();
        store
            .announce(OP, &allowed(), &[(gone.clone(), Expiry::Never)], now)
            .await
            .unwrap();
        store
            .announce(
                OP,
                &allowed(),
                &[(gone.clone(), Expiry::Withdraw(now))],
                now,
            )
            .await
            .unwrap();

        let mut most = 0;
        for round in 0..10 {
            renew_many(&store, &names, 300, 7200 - 300 * round, now).await;
            most = most.max(store.records().await.unwrap());
        }
        // 3000 renewals × 3 domains, each written: 9,000 records without compaction.
        let bound = 2 * names.len() as u64 + COMPACT_SLACK + names.len() as u64;
        assert!(most <= bound, "store held {most} records, bound {bound}");
        assert!(counters.snapshot().announcement_compactions >= 3);
        let size = std::fs::metadata(dir.path().join("announcements.records"))
            .unwrap()
            .len();
        assert!(size < 600 * bound, "store file is {size} bytes");

        // A crash (no clean close) leaves at most the bound; the restart reads it once, keeps the
        // live entries and compacts to exactly them.
        drop(store);
        let (store, _) = open(dir.path(), now).await;
        assert_eq!(store.records().await, Some(names.len() as u64));
        let live: Vec<_> = store.live(now).into_iter().map(|a| a.domain).collect();
        assert_eq!(live, names, "the withdrawn domain stays withdrawn");
        for a in store.live(now) {
            assert_eq!(a.operator, OP);
            assert_eq!(a.expires_at, Some(now + TimeDelta::seconds(7200 - 2999)));
        }
    }

    #[tokio::test]
    async fn a_clean_close_compacts_so_the_next_start_reads_exactly_the_live_entries() {
        let dir = tempfile::tempdir().unwrap();
        let now = Utc::now();
        let names = domains(5);
        let (store, _) = open(dir.path(), now).await;
        renew_many(&store, &names, 20, 3600, now).await;
        assert!(store.records().await.unwrap() > names.len() as u64);
        store.close(now).await;
        assert_eq!(store.records().await, Some(names.len() as u64));
        drop(store);

        // Read the file as the next start would: exactly the live records.
        let raw = tandem_datastore::Datastore::open(&settings(dir.path()))
            .await
            .unwrap();
        let entries = raw
            .read_new(&mut tandem_datastore::Cursor::default())
            .await
            .unwrap();
        assert_eq!(entries.len(), names.len());
    }

    #[tokio::test]
    async fn deferred_renewals_survive_a_clean_close_and_cost_no_writes() {
        let dir = tempfile::tempdir().unwrap();
        let now = Utc::now();
        let names = domains(1);
        let (store, _) = open(dir.path(), now).await;
        let first = now + TimeDelta::days(7);
        store
            .announce(
                OP,
                &allowed(),
                &[(names[0].clone(), Expiry::Until(first))],
                now,
            )
            .await
            .unwrap();
        let before = store.records().await.unwrap();
        // 100 renewals, each a minute later and a minute longer (a sliding 7-day expiry).
        let mut last = first;
        for i in 1..=100 {
            let at = now + TimeDelta::minutes(i);
            last = first + TimeDelta::minutes(i);
            let plan = store
                .announce(
                    OP,
                    &allowed(),
                    &[(names[0].clone(), Expiry::Until(last))],
                    at,
                )
                .await
                .unwrap();
            assert_eq!(plan.results, vec![Ok(Outcome::Renewed)]);
        }
        assert_eq!(
            store.records().await.unwrap(),
            before,
            "no renewal was written"
        );
        store.close(now).await;
        drop(store);
        let (store, _) = open(dir.path(), now).await;
        assert_eq!(store.live(now)[0].expires_at, Some(last));
    }

    #[tokio::test]
    async fn expired_entries_do_not_count_against_the_quota() {
        let dir = tempfile::tempdir().unwrap();
        let now = Utc::now();
        let counters = Arc::new(ProxyCounters::default());
        let rules = Rules {
            quota: 2,
            max_lifetime: TimeDelta::days(7),
        };
        let store = PublicStore::open(&settings(dir.path()), rules, counters, now)
            .await
            .unwrap();
        let soon = now + TimeDelta::seconds(1);
        let names = domains(4);
        let requested: Vec<_> = names[..2]
            .iter()
            .map(|d| (d.clone(), Expiry::Until(soon)))
            .collect();
        store
            .announce(OP, &allowed(), &requested, now)
            .await
            .unwrap();
        let later = now + TimeDelta::seconds(2);
        let requested: Vec<_> = names[2..]
            .iter()
            .map(|d| (d.clone(), Expiry::Never))
            .collect();
        let plan = store
            .announce(OP, &allowed(), &requested, later)
            .await
            .unwrap();
        assert!(plan.results.iter().all(Result::is_ok), "{:?}", plan.results);
    }
}
