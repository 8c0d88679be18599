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
