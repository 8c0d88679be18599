//! The directory server on the Redis datastore (a real `redis-server`): the same submission path,
//! restart persistence, and clear errors while Redis is down.
#![allow(clippy::unwrap_used)]

use tandem_testkit::sd;

use sd::*;
use tandem_settings::datastore::DatastoreSettings;
use tandem_testkit::pki::TestPki;
use tandem_testkit::redis::RedisServer;

#[tokio::test]
async fn records_round_trip_through_redis_and_survive_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let pki = TestPki::generate(&dir.path().join("pki"), OPS).unwrap();
    let mut redis = RedisServer::start().unwrap();
    let store = DatastoreSettings::Redis(redis.settings("sd-entries"));
    let sd = start(settings(&pki, store.clone(), None)).await;
    let chain = admin_chain(
        &pki,
        "",
        vec![
            certificates_record(&pki, "hd-1"),
            groups_record("hd-1", &["a"]),
        ],
    );
    let c = client(&pki, sd.addr, "hd-1");
    c.submit(&chain).await.unwrap();
    let next = admin_chain(&pki, &chain[1].hash, vec![groups_record("hd-2", &["b"])]);
    c.submit(&next).await.unwrap();
    sd.stop().await;

    // Redis restarts (AOF with appendfsync always), then sd restarts: everything acknowledged is there.
    redis.restart().unwrap();
    let sd = start(settings(&pki, store, None)).await;
    let c = client(&pki, sd.addr, "hd-2");
    let served = c.records_after("").await.unwrap();
    assert_eq!(hashes(&served), [hashes(&chain), hashes(&next)].concat());
    assert_eq!(c.entry("hd-2").await.unwrap().groups, vec!["b".to_string()]);
    sd.stop().await;
}

#[tokio::test]
async fn a_submission_while_redis_is_down_fails_clearly_and_later_ones_succeed() {
    let dir = tempfile::tempdir().unwrap();
    let pki = TestPki::generate(&dir.path().join("pki"), OPS).unwrap();
    let mut redis = RedisServer::start().unwrap();
    let sd = start(settings(
        &pki,
        DatastoreSettings::Redis(redis.settings("sd-entries")),
        None,
    ))
    .await;
    let c = client(&pki, sd.addr, "hd-1");
    let chain = admin_chain(&pki, "", vec![certificates_record(&pki, "hd-1")]);
    c.submit(&chain).await.unwrap();

    redis.kill().unwrap();
    let next = admin_chain(&pki, &chain[0].hash, vec![groups_record("hd-1", &["a"])]);
    let err = c.submit(&next).await.unwrap_err();
    assert_eq!(
        rpc_code(&err),
        Some(tandem_net::jsonrpc::INTERNAL_ERROR),
        "{err}"
    );
    assert_eq!(
        c.tip().await.unwrap().unwrap().hash,
        chain[0].hash,
        "reads keep working from memory"
    );

    redis.restart().unwrap();
    // The connection manager reconnects in the background; a bounded number of tries.
    tandem_testkit::poll::until(
        "a submission after Redis came back",
        tandem_testkit::poll::POLL_BOUND,
        || async { c.submit(&next).await.ok() },
    )
    .await;
    assert_eq!(
        hashes(&c.records_after("").await.unwrap()),
        [hashes(&chain), hashes(&next)].concat()
    );
    sd.stop().await;
}
