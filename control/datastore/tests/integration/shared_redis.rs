//! One Redis list shared by several processes: compare-and-append (exactly one of several
//! appends at the same position wins), a rewritten list is noticed, and appends acknowledged with
//! `WAIT` survive a Sentinel failover after a `kill -9` of the master.

use crate::support;

use std::collections::BTreeSet;

use support::{entry, number, read_all};
use tandem_datastore::{AppendAt, Cursor, Datastore};
use tandem_settings::datastore::DatastoreSettings;
use tandem_testkit::redis::RedisServer;
use tandem_testkit::sentinel::SentinelSet;

async fn open(settings: &tandem_settings::datastore::RedisDatastoreSettings) -> Datastore {
    Datastore::open(&DatastoreSettings::Redis(settings.clone()))
        .await
        .unwrap()
}

#[tokio::test]
async fn of_two_appends_at_one_position_exactly_one_wins() {
    let server = RedisServer::start().unwrap();
    let settings = server.settings("shared");
    let (a, b) = (open(&settings).await, open(&settings).await);
    let mut ca = Cursor::default();
    let first = a.append_at(&mut ca, &[entry(0, 8)]).await.unwrap();
    assert_eq!(first, AppendAt::Appended);
    for round in 1..20u32 {
        let mut ca = Cursor::default();
        let mut cb = Cursor::default();
        a.read_new(&mut ca).await.unwrap();
        b.read_new(&mut cb).await.unwrap();
        let ea = [entry(round * 100, 8)];
        let eb = [entry(round * 100 + 1, 8)];
        let (ra, rb) = tokio::join!(a.append_at(&mut ca, &ea), b.append_at(&mut cb, &eb));
        let outcomes = [ra.unwrap(), rb.unwrap()];
        assert_eq!(
            outcomes
                .iter()
                .filter(|o| **o == AppendAt::Appended)
                .count(),
            1,
            "round {round}: {outcomes:?}"
        );
        // The loser is behind: it reads the winner and may then append after it.
        let (loser, cursor, mine) = if outcomes[0] == AppendAt::Behind {
            (&a, &mut ca, &ea)
        } else {
            (&b, &mut cb, &eb)
        };
        assert_eq!(loser.read_new(cursor).await.unwrap().len(), 1);
        assert_eq!(
            loser.append_at(cursor, mine).await.unwrap(),
            AppendAt::Appended
        );
    }
    assert_eq!(read_all(&a).await.len(), 1 + 19 * 2);
}

#[tokio::test]
async fn a_rewritten_list_is_noticed() {
    let server = RedisServer::start().unwrap();
    let settings = server.settings("shared");
    let a = open(&settings).await;
    let mut cursor = Cursor::default();
    let first = a.append_at(&mut cursor, &[entry(1, 8), entry(2, 8)]).await;
    assert_eq!(first.unwrap(), AppendAt::Appended);
    // Another writer compacts the list to as many elements, with a different last one.
    assert!(a.replace_all(2, &[entry(1, 8), entry(3, 8)]).await.unwrap());
    let err = a.read_new(&mut cursor.clone()).await.unwrap_err();
    assert!(err.is_rewritten(), "{err}");
    let err = a.append_at(&mut cursor, &[entry(4, 8)]).await.unwrap_err();
    assert!(err.is_rewritten(), "{err}");
    assert_eq!(read_all(&a).await.len(), 2, "nothing appended");
}

#[tokio::test]
async fn acknowledged_appends_survive_a_sentinel_failover() {
    let mut set = SentinelSet::start(2).unwrap();
    let mut settings = set.settings("failover");
    settings.wait_replicas = 1;
    let store = open(&settings).await;
    let mut cursor = Cursor::default();
    let mut acked = BTreeSet::new();
    let mut failed = 0;
    let mut old = None;
    for n in 0..60u32 {
        if n == 20 {
            old = Some(set.kill_master().unwrap());
        }
        match store.append_at(&mut cursor, &[entry(n, 32)]).await {
            Ok(AppendAt::Appended) => {
                acked.insert(n);
            }
            Ok(AppendAt::Behind) => panic!("one writer is never behind"),
            // A failover may cost calls (then read again: the tail may have been lost).
            Err(e) => {
                failed += 1;
                assert!(
                    e.needs_master() || e.is_rewritten() || e.kind() == "not_replicated",
                    "{e}"
                );
                cursor = Cursor::default();
                store.read_new(&mut cursor).await.unwrap();
            }
        }
    }
    let new = set.wait_failover(old.unwrap());
    assert!(
        acked.len() >= 40,
        "appends continue after the failover: {acked:?}"
    );
    assert!(acked.range(21..).count() > 0, "acknowledged after the kill");
    // Everything acknowledged is on the new master, read by a fresh client.
    let fresh = open(&settings).await;
    let stored: BTreeSet<u32> = read_all(&fresh).await.iter().map(number).collect();
    let lost: Vec<_> = acked.difference(&stored).collect();
    assert!(
        lost.is_empty(),
        "lost acknowledged entries {lost:?} (new master {new}, {failed} calls failed)"
    );
}
