//! The private proxy's announcement table with its datastore: like the public one (serialised
//! writers: plan → durable append → apply, compaction when due; readers take a short read lock),
//! keyed by (public proxy, domain) with the owning tenant in each entry.

use std::sync::{Arc, RwLock};

use chrono::{DateTime, Utc};

use super::announcements::{
    Expiry, Outcome, PRIVATE_ANNOUNCEMENT_TYPE, PrivateAnnouncement, PrivateTable, Refusal, Rules,
};
use super::error::CallError;
use super::journal::{Journal, MAX_APPEND_ATTEMPTS};
use super::stats::PrivateCounters;
use super::store::{read, write};
use tandem_datastore::{AppendAt, DatastoreError};
use tandem_settings::datastore::DatastoreSettings;

/// Announcements of the private proxy.
#[derive(Debug)]
pub(crate) struct PrivateStore {
    table: RwLock<PrivateTable>,
    journal: tokio::sync::Mutex<Journal>,
    counters: Arc<PrivateCounters>,
}

impl PrivateStore {
    /// Opens the store, loads it (one bounded read), prunes expired announcements and compacts
    /// the store when it holds anything else.
    pub(crate) async fn open(
        settings: &DatastoreSettings,
        rules: Rules,
        counters: Arc<PrivateCounters>,
        now: DateTime<Utc>,
    ) -> Result<Self, DatastoreError> {
        let (journal, mut table) = Journal::open(
            settings,
            PRIVATE_ANNOUNCEMENT_TYPE,
            PrivateTable::new(rules),
        )
        .await?;
        table.prune(now);
        let store = Self {
            table: RwLock::new(table),
            journal: tokio::sync::Mutex::new(journal),
            counters,
        };
        store.compact_if(|j, t| j.has_history(t.len()), now).await;
        Ok(store)
    }

    /// The table's admission rules.
    pub(crate) fn rules(&self) -> Rules {
        *read(&self.table).rules()
    }

    /// `tenant` announces (or withdraws) `domain` to `proxy`: plans, persists when needed,
    /// applies, and counts. A refusal is a [`CallError::Announcement`].
    pub(crate) async fn announce(
        &self,
        tenant: &str,
        proxy: &str,
        domain: &str,
        expiry: Expiry,
        now: DateTime<Utc>,
    ) -> Result<Outcome, CallError> {
        let mut journal = self.journal.lock().await;
        let c = &self.counters;
        let mut attempts = 0;
        let outcome = loop {
            attempts += 1;
            if attempts > MAX_APPEND_ATTEMPTS {
                return Err(CallError::Busy("announcement store contention"));
            }
            // Plan on everything any node wrote: the append below lands only if nothing more was.
            journal.catch_up(&self.table, now).await?;
            let near = {
                let t = read(&self.table);
                t.held_by(tenant) >= t.rules().quota
            };
            if near {
                self.prune(now);
            }
            let planned = read(&self.table).plan(tenant, proxy, domain, expiry, now);
            let (outcome, change) = planned.inspect_err(|refusal| {
                PrivateCounters::inc(&c.announcements_refused);
                match refusal {
                    Refusal::Taken => {
                        PrivateCounters::inc(&c.announcements_taken);
                        tracing::warn!(%tenant, %proxy, %domain, "refused a change of another tenant's live announcement");
                    }
                    Refusal::OverQuota { .. } => PrivateCounters::inc(&c.announcements_over_quota),
                    Refusal::NotAllowed | Refusal::Full => {}
                }
            }).map_err(CallError::Announcement)?;
            if let Some(change) = change {
                if change.write
                    && journal.append_at([&change.announcement]).await? == AppendAt::Behind
                {
                    continue;
                }
                write(&self.table).apply(change);
            }
            break outcome;
        };
        drop(journal);
        PrivateCounters::inc(&c.announcements_accepted);
        match outcome {
            Outcome::Withdrawn => PrivateCounters::inc(&c.announcements_withdrawn),
            Outcome::Renewed => PrivateCounters::inc(&c.announcements_deferred),
            _ => {}
        }
        self.compact_if(|j, t| j.due(t.len()), now).await;
        Ok(outcome)
    }

    /// On a shared store: replays what other nodes appended (or reloads a store another node
    /// compacted); nothing for a store only this process writes.
    pub(crate) async fn refresh(&self, now: DateTime<Utc>) -> Result<(), DatastoreError> {
        let mut journal = self.journal.lock().await;
        if journal.shared() {
            journal.catch_up(&self.table, now).await?;
        }
        Ok(())
    }

    /// Whether a live announcement of `domain` to `proxy` exists.
    pub(crate) fn matches(&self, proxy: &str, domain: &str, now: DateTime<Utc>) -> bool {
        read(&self.table).matches(proxy, domain, now)
    }

    /// Live announcements.
    pub(crate) fn live(&self, now: DateTime<Utc>) -> Vec<PrivateAnnouncement> {
        read(&self.table).live(now)
    }

    /// Drops expired announcements from memory; returns how many.
    pub(crate) fn prune(&self, now: DateTime<Utc>) -> usize {
        let n = write(&self.table).prune(now);
        self.counters
            .announcements_pruned
            .fetch_add(n as u64, std::sync::atomic::Ordering::Relaxed);
        n
    }

    /// At a clean shutdown: compacts the store when it holds any history or a deferred renewal.
    pub(crate) async fn close(&self, now: DateTime<Utc>) {
        self.compact_if(|j, t| j.has_history(t.len()) || t.has_deferred(), now)
            .await;
    }

    async fn compact_if(&self, when: fn(&Journal, &PrivateTable) -> bool, now: DateTime<Utc>) {
        let mut journal = self.journal.lock().await;
        if !when(&journal, &read(&self.table)) {
            return;
        }
        self.prune(now);
        let snapshot = read(&self.table).snapshot();
        if let Ok(true) = journal.compact(&snapshot).await {
            write(&self.table).mark_durable();
            PrivateCounters::inc(&self.counters.announcement_compactions);
        }
    }
}

#[cfg(test)]
mod tests {
    //! The private announcement store on a real file datastore: ownership survives a restart, and
    //! a clean close leaves exactly the live entries.

    use chrono::TimeDelta;

    use super::*;
    use tandem_settings::datastore::FileDatastoreSettings;

    const PP: &str = "public-proxy-1.ga";
    const DOMAIN: &str = "app.internal-server.local";

    async fn open(dir: &std::path::Path, now: DateTime<Utc>) -> PrivateStore {
        let settings = DatastoreSettings::File(FileDatastoreSettings {
            filename: dir.join("private.records"),
        });
        let counters = Arc::new(PrivateCounters::default());
        PrivateStore::open(&settings, Rules::default(), counters, now)
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn ownership_survives_a_restart_and_the_store_holds_only_live_entries() {
        let dir = tempfile::tempdir().unwrap();
        let now = Utc::now();
        let store = open(dir.path(), now).await;
        // Many changes by the owner (each shorter: each written).
        for i in 0..200 {
            let at = now + TimeDelta::seconds(3600 - i);
            let outcome = store
                .announce("hd-1", PP, DOMAIN, Expiry::Until(at), now)
                .await
                .unwrap();
            assert_eq!(outcome, Outcome::Announced);
        }
        store.close(now).await;
        assert_eq!(store.journal.lock().await.records(), Some(1));
        drop(store);

        let store = open(dir.path(), now).await;
        let live = store.live(now);
        assert_eq!(live.len(), 1);
        assert_eq!(live[0].operator.as_deref(), Some("hd-1"));
        assert_eq!(
            live[0].expires_at,
            Some(now + TimeDelta::seconds(3600 - 199))
        );
        // After the restart another tenant still cannot withdraw it, and the refusal is counted.
        let err = store
            .announce("hd-2", PP, DOMAIN, Expiry::Withdraw(now), now)
            .await
            .unwrap_err();
        assert!(
            matches!(err, CallError::Announcement(Refusal::Taken)),
            "{err}"
        );
        assert_eq!(err.to_error_object().code, 409);
        assert_eq!(store.counters.snapshot().announcements_taken, 1);
        assert!(store.matches(PP, DOMAIN, now));
    }
}
