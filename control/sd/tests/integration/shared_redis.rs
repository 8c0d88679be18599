//! Several `sd` on one Redis: exactly one submission per parent wins across processes, every
//! instance serves the winner, a flood of submissions that do not verify does not stop a valid
//! one, and submissions continue through a Sentinel failover without losing any acknowledged one.
#![allow(clippy::unwrap_used)]

use tandem_testkit::sd;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use sd::*;
use tandem_directory::SignedChangeRecord;
use tandem_net::jsonrpc::INVALID_PARAMS;
use tandem_sd::STALE_APPEND;
use tandem_settings::datastore::DatastoreSettings;
use tandem_testkit::pki::TestPki;
use tandem_testkit::poll::{POLL_BOUND, until};
use tandem_testkit::redis::RedisServer;
use tandem_testkit::sentinel::SentinelSet;

fn seed_chain(pki: &TestPki) -> Vec<SignedChangeRecord> {
    admin_chain(
        pki,
        "",
        vec![
            certificates_record(pki, "hd-1"),
            certificates_record(pki, "hd-2"),
            groups_record("hd-2", &["health-departments"]),
        ],
    )
}

/// Waits until the sd at `addr` serves `hash` as its tip.
async fn serves_tip(pki: &TestPki, sd: &Sd, hash: &str) {
    let c = client(pki, sd.addr, "hd-2");
    until("the sd serves the tip", POLL_BOUND, || async {
        let tip = c.tip().await.ok()??;
        (tip.hash == hash).then_some(())
    })
    .await;
}

#[tokio::test]
async fn two_sd_on_one_redis_take_one_submission_per_parent_and_both_serve_it() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Arc::new(TestPki::generate(&dir.path().join("pki"), OPS).unwrap());
    let redis = RedisServer::start().unwrap();
    let store = DatastoreSettings::Redis(redis.settings("sd-entries"));
    let sds = [
        start(settings(&pki, store.clone(), None)).await,
        start(settings(&pki, store, None)).await,
    ];
    let chain = seed_chain(&pki);
    client(&pki, sds[0].addr, "hd-1")
        .submit(&chain)
        .await
        .unwrap();
    let tip = chain[2].hash.clone();
    // The second instance sees what the first appended without any submission of its own.
    serves_tip(&pki, &sds[1], &tip).await;

    for round in 0..3 {
        let tip = client(&pki, sds[0].addr, "hd-1")
            .tip()
            .await
            .unwrap()
            .unwrap()
            .hash;
        serves_tip(&pki, &sds[1], &tip).await;
        let mut tasks = tokio::task::JoinSet::new();
        for i in 0..8 {
            let (pki, tip, addr) = (pki.clone(), tip.clone(), sds[i % 2].addr);
            tasks.spawn(async move {
                let group = format!("r{round}-g{i}");
                let batch = admin_chain(&pki, &tip, vec![groups_record("hd-1", &[&group])]);
                client(&pki, addr, "hd-1")
                    .submit(&batch)
                    .await
                    .map(|()| batch[0].hash.clone())
            });
        }
        let mut winners = Vec::new();
        while let Some(result) = tasks.join_next().await {
            match result.unwrap() {
                Ok(hash) => winners.push(hash),
                Err(e) => assert_eq!(rpc_code(&e), Some(STALE_APPEND), "{e}"),
            }
        }
        assert_eq!(
            winners.len(),
            1,
            "round {round}: exactly one wins: {winners:?}"
        );
        for sd in &sds {
            serves_tip(&pki, sd, &winners[0]).await;
        }
    }
    // Both serve the same whole chain.
    let a = client(&pki, sds[0].addr, "hd-2")
        .records_after("")
        .await
        .unwrap();
    let b = client(&pki, sds[1].addr, "hd-2")
        .records_after("")
        .await
        .unwrap();
    assert_eq!(hashes(&a), hashes(&b));
    assert_eq!(a.len(), 3 + 3);
    for sd in sds {
        sd.stop().await;
    }
}

#[tokio::test]
async fn a_flood_of_submissions_that_do_not_verify_does_not_stop_a_valid_one() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Arc::new(TestPki::generate(&dir.path().join("pki"), OPS).unwrap());
    let redis = RedisServer::start().unwrap();
    let sd = start(settings(
        &pki,
        DatastoreSettings::Redis(redis.settings("sd-entries")),
        None,
    ))
    .await;
    let chain = seed_chain(&pki);
    client(&pki, sd.addr, "hd-1").submit(&chain).await.unwrap();
    let tip = chain[2].hash.clone();

    let stop = Arc::new(AtomicBool::new(false));
    let refused = Arc::new(AtomicUsize::new(0));
    let mut flood = tokio::task::JoinSet::new();
    for i in 0..6 {
        let (pki, tip, addr) = (pki.clone(), tip.clone(), sd.addr);
        let (stop, refused) = (stop.clone(), refused.clone());
        flood.spawn(async move {
            // hd-1's alternative key is not the pinned one: every batch is refused.
            let c = client(&pki, addr, "hd-2");
            let mut n = 0;
            while !stop.load(Ordering::Relaxed) {
                let bad = signer(&pki, "hd-1", true)
                    .sign_chain(&tip, vec![groups_record("hd-1", &[&format!("x{i}-{n}")])])
                    .unwrap();
                let err = c.submit(&bad).await.unwrap_err();
                // Refused as not verifying; stale once the valid submission moved the tip.
                let code = rpc_code(&err);
                assert!(
                    code == Some(INVALID_PARAMS) || code == Some(STALE_APPEND),
                    "{err}"
                );
                refused.fetch_add(1, Ordering::Relaxed);
                n += 1;
            }
        });
    }
    until("the flood is running", POLL_BOUND, || async {
        (refused.load(Ordering::Relaxed) >= 12).then_some(())
    })
    .await;
    let good = admin_chain(&pki, &tip, vec![groups_record("hd-1", &["good"])]);
    client(&pki, sd.addr, "hd-1").submit(&good).await.unwrap();
    let during = refused.load(Ordering::Relaxed);
    stop.store(true, Ordering::Relaxed);
    while let Some(r) = flood.join_next().await {
        r.unwrap();
    }
    assert!(
        during >= 12,
        "the valid submission went through during the flood"
    );
    let tip_now = client(&pki, sd.addr, "hd-2").tip().await.unwrap().unwrap();
    assert_eq!(tip_now.hash, good[0].hash);
    // Nothing of the flood was stored: the seed's three records and the valid one.
    let mut conn = redis::Client::open(format!("redis://{}/", redis.addr()))
        .unwrap()
        .get_connection()
        .unwrap();
    let stored: u64 = redis::cmd("LLEN")
        .arg("sd-entries")
        .query(&mut conn)
        .unwrap();
    assert_eq!(stored, 4);
    sd.stop().await;
}

#[tokio::test]
async fn submissions_continue_through_a_sentinel_failover_and_none_acknowledged_is_lost() {
    let dir = tempfile::tempdir().unwrap();
    let pki = TestPki::generate(&dir.path().join("pki"), OPS).unwrap();
    let mut set = SentinelSet::start(2).unwrap();
    let mut redis = set.settings("sd-entries");
    redis.wait_replicas = 1;
    let store = DatastoreSettings::Redis(redis);
    let sd = start(settings(&pki, store.clone(), None)).await;
    let c = client(&pki, sd.addr, "hd-1");
    c.submit(&seed_chain(&pki)).await.unwrap();

    let mut acked = BTreeSet::new();
    let mut failed = 0;
    let mut old = None;
    let mut n = 0;
    while acked.len() < 30 {
        if n == 10 {
            old = Some(set.kill_master().unwrap());
        }
        n += 1;
        assert!(n < 200, "submissions do not recover: {failed} failed");
        let Ok(Some(tip)) = c.tip().await else {
            failed += 1;
            continue;
        };
        let batch = admin_chain(
            &pki,
            &tip.hash,
            vec![groups_record("hd-1", &[&format!("g{n}")])],
        );
        match c.submit(&batch).await {
            Ok(()) => {
                acked.insert(batch[0].hash.clone());
            }
            Err(_) => failed += 1,
        }
    }
    let new = set.wait_failover(old.unwrap());
    sd.stop().await;
    // A fresh sd on the new master serves every acknowledged record.
    let fresh = start(settings(&pki, store, None)).await;
    let served: BTreeSet<String> = hashes(
        &client(&pki, fresh.addr, "hd-2")
            .records_after("")
            .await
            .unwrap(),
    )
    .into_iter()
    .collect();
    let lost: Vec<_> = acked.difference(&served).collect();
    assert!(
        lost.is_empty(),
        "lost acknowledged records {lost:?} (new master {new}, {failed} calls failed)"
    );
    fresh.stop().await;
}

#[tokio::test]
async fn a_store_that_lost_its_tail_is_read_again_and_served_as_it_is() {
    let dir = tempfile::tempdir().unwrap();
    let pki = TestPki::generate(&dir.path().join("pki"), OPS).unwrap();
    let redis = RedisServer::start().unwrap();
    let sd = start(settings(
        &pki,
        DatastoreSettings::Redis(redis.settings("sd-entries")),
        None,
    ))
    .await;
    let c = client(&pki, sd.addr, "hd-1");
    let chain = seed_chain(&pki);
    c.submit(&chain).await.unwrap();
    let next = admin_chain(&pki, &chain[2].hash, vec![groups_record("hd-1", &["a"])]);
    c.submit(&next).await.unwrap();
    serves_tip(&pki, &sd, &next[0].hash).await;

    // What a failover without `wait_replicas` may do: the last append is gone.
    let mut conn = redis::Client::open(format!("redis://{}/", redis.addr()))
        .unwrap()
        .get_connection()
        .unwrap();
    let _: Vec<u8> = redis::cmd("RPOP")
        .arg("sd-entries")
        .query(&mut conn)
        .unwrap();
    serves_tip(&pki, &sd, &chain[2].hash).await;
    // The chain continues from what the store holds.
    let again = admin_chain(&pki, &chain[2].hash, vec![groups_record("hd-1", &["b"])]);
    c.submit(&again).await.unwrap();
    assert_eq!(
        hashes(&c.records_after("").await.unwrap()),
        [hashes(&chain), hashes(&again)].concat()
    );
    sd.stop().await;
}
