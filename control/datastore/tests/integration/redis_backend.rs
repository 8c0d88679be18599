//! Redis datastore specifics: the original list layout, database selection, password auth and
//! failing fast when Redis is unreachable.

// Test code: a failed unwrap is a failed test (helpers outside #[test] fns included).
#![allow(clippy::unwrap_used)]

use crate::support;

use std::time::{Duration, Instant};

use support::{entry, entry_bytes, read_all};
use tandem_datastore::{Datastore, REDIS_OPEN_TIMEOUT};
use tandem_settings::datastore::DatastoreSettings;
use tandem_settings::secret::Secret;
use tandem_testkit::redis::RedisServer;

fn raw(server: &RedisServer) -> redis::Connection {
    redis::Client::open(format!("redis://{}/", server.addr()))
        .unwrap()
        .get_connection()
        .unwrap()
}

#[tokio::test]
async fn list_holds_the_original_entry_bytes() {
    let server = RedisServer::start().unwrap();
    let store = Datastore::open(&DatastoreSettings::Redis(server.settings("sd-entries")))
        .await
        .unwrap();
    store.append(&[entry(1, 10), entry(2, 20)]).await.unwrap();
    let mut conn = raw(&server);
    let stored: Vec<Vec<u8>> = redis::cmd("LRANGE")
        .arg("sd-entries")
        .arg(0)
        .arg(-1)
        .query(&mut conn)
        .unwrap();
    assert_eq!(
        stored,
        vec![entry_bytes(&entry(1, 10)), entry_bytes(&entry(2, 20))]
    );

    // An entry pushed by another implementation (the original) is read back.
    let _: u64 = redis::cmd("RPUSH")
        .arg("sd-entries")
        .arg(entry_bytes(&entry(3, 5)))
        .query(&mut conn)
        .unwrap();
    assert_eq!(
        read_all(&store).await,
        vec![entry(1, 10), entry(2, 20), entry(3, 5)]
    );

    // Garbage in the list is reported with its index, not skipped.
    let _: u64 = redis::cmd("RPUSH")
        .arg("sd-entries")
        .arg(&[9u8, 9, 9][..])
        .query(&mut conn)
        .unwrap();
    let err = store.read_new(&mut Default::default()).await.unwrap_err();
    assert_eq!(err.kind(), "corrupt");
    assert!(err.to_string().contains("at 3"), "{err}");
}

#[tokio::test]
async fn password_and_database_are_used() {
    let server = RedisServer::start().unwrap();
    let mut conn = raw(&server);
    let _: () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("requirepass")
        .arg("s3cret-pw")
        .query(&mut conn)
        .unwrap();

    let mut settings = server.settings("entries");
    settings.password = Secret::new("wrong-pw-123");
    let err = Datastore::open(&DatastoreSettings::Redis(settings.clone()))
        .await
        .unwrap_err();
    assert!(
        !err.to_string().contains("wrong-pw-123"),
        "the password never appears in errors: {err}"
    );

    settings.password = Secret::new("s3cret-pw");
    settings.database = 2;
    let store = Datastore::open(&DatastoreSettings::Redis(settings))
        .await
        .unwrap();
    store.append(&[entry(1, 1)]).await.unwrap();

    let mut conn = raw(&server);
    let _: () = redis::cmd("AUTH")
        .arg("s3cret-pw")
        .query(&mut conn)
        .unwrap();
    let in_db0: u64 = redis::cmd("LLEN").arg("entries").query(&mut conn).unwrap();
    let _: () = redis::cmd("SELECT").arg(2).query(&mut conn).unwrap();
    let in_db2: u64 = redis::cmd("LLEN").arg("entries").query(&mut conn).unwrap();
    assert_eq!((in_db0, in_db2), (0, 1));
}

#[tokio::test]
async fn open_fails_within_its_bound_when_redis_is_down() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let server = RedisServer::start().unwrap();
    let mut settings = server.settings("entries");
    settings.addresses = vec![format!("127.0.0.1:{port}")];
    let started = Instant::now();
    let err = Datastore::open(&DatastoreSettings::Redis(settings))
        .await
        .unwrap_err();
    assert!(["redis", "timeout"].contains(&err.kind()), "{err}");
    // Bounded by the open timeout; the slack is for a loaded machine (a hang would be minutes).
    assert!(
        started.elapsed() <= REDIS_OPEN_TIMEOUT + Duration::from_secs(20),
        "took {:?}",
        started.elapsed()
    );
}
