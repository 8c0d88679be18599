//! Crash safety and fault tolerance: a writer process dies in the middle of a multi-entry batch
//! (SIGKILLed at an arbitrary point, or killed by the kernel inside the batch's write); every
//! batch it saw acknowledged must survive, no part of any other batch may, and the store must
//! still open and append. Redis going away while a store is in use gives errors, then recovers,
//! losing nothing.
//!
//! The writer is this test binary re-executed, running `crash_child` (see
//! `support::crash`).

// Test code: a failed unwrap is a failed test (helpers outside #[test] fns included).
#![allow(clippy::unwrap_used)]

use crate::support;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use support::crash::{Target, Writer, child_main, whole_batches};
use support::{FileFactory, StoreFactory, entry, number, read_all};
use tandem_datastore::{Cursor, Datastore};
use tandem_settings::datastore::DatastoreSettings;
use tandem_testkit::redis::RedisServer;

/// Entry size: 700 bytes, so each entry spans 4 chunks.
const ENTRY_LEN: usize = 700;

/// Entries per batch in the file tests: 1000 (820 KB per batch, one `write` of 200 pages), so that
/// a kill can land inside a batch's write.
const PER_BATCH: u32 = 1000;

/// First number of the batches the test itself appends after each recovery.
const AFTER_RECOVERY: u32 = 100_000_000;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

#[test]
#[ignore = "a helper process: the crash tests re-execute this binary to run it"]
fn crash_child() {
    child_main();
}

fn file_writer(f: &FileFactory, first: u32) -> Writer {
    Writer {
        target: Target::File(f.path.clone()),
        first,
        per_batch: PER_BATCH,
        entry_len: ENTRY_LEN,
        file_size_limit: None,
    }
}

fn assert_acknowledged_present(stored: &[u32], acks: &[u32]) {
    let stored: BTreeSet<u32> = stored.iter().copied().collect();
    let missing: Vec<_> = acks.iter().filter(|n| !stored.contains(n)).collect();
    assert!(missing.is_empty(), "acknowledged batches lost: {missing:?}");
}

#[test]
fn file_writer_killed_mid_batch_keeps_whole_batches_and_loses_nothing_acknowledged() {
    let f = FileFactory::new();
    let mut acked = Vec::new();
    for round in 0..4u32 {
        let (acks, _) = file_writer(&f, round * 1_000_000).run(Some(1 + round as usize % 2));
        acked.extend(acks);
        runtime().block_on(async {
            let store = f.open().await;
            let batches = whole_batches(&read_all(&store).await, PER_BATCH, ENTRY_LEN);
            assert_acknowledged_present(&batches, &acked);
            let after = file_writer(&f, AFTER_RECOVERY + round * PER_BATCH).batch(0);
            store.append(&after).await.unwrap();
            acked.push(number(&after[0]));
            let batches = whole_batches(&read_all(&store).await, PER_BATCH, ENTRY_LEN);
            assert_eq!(batches.last(), acked.last(), "appends after recovery");
        });
    }
    runtime().block_on(async {
        let batches = whole_batches(&read_all(&f.open().await).await, PER_BATCH, ENTRY_LEN);
        assert_acknowledged_present(&batches, &acked);
    });
}

#[test]
fn file_writer_dying_inside_a_batch_write_leaves_no_part_of_it() {
    let batch_len = file_writer(&FileFactory::new(), 0).file_batch_len();
    // Where the fourth batch's write is cut: after one byte, inside the first chunk's id (the
    // batch marker), half way, one byte short.
    for into in [1, 7 + 8, batch_len / 2, batch_len - 1] {
        let f = FileFactory::new();
        let writer = Writer {
            file_size_limit: Some(3 * batch_len + into),
            ..file_writer(&f, 0)
        };
        // The kernel stops the write at the limit and kills the writer (SIGXFSZ), mid-batch.
        let (acks, _) = writer.run(None);
        assert_eq!(acks, [0, PER_BATCH, 2 * PER_BATCH], "cut {into}");
        assert_eq!(
            std::fs::metadata(&f.path).unwrap().len(),
            3 * batch_len + into,
            "part of the fourth batch is on disk"
        );
        runtime().block_on(async {
            let store = f.open().await;
            assert_eq!(
                std::fs::metadata(&f.path).unwrap().len(),
                3 * batch_len,
                "opening removes the torn batch whole"
            );
            let expected = [writer.batch(0), writer.batch(1), writer.batch(2)].concat();
            assert_eq!(read_all(&store).await, expected, "cut {into}");
            store.append(&writer.batch(3)).await.unwrap();
            assert_eq!(read_all(&store).await.len(), 4 * PER_BATCH as usize);
        });
    }
}

#[test]
fn redis_writer_and_server_killed_lose_nothing_acknowledged() {
    let mut server = RedisServer::start().unwrap();
    let writer = Writer {
        target: Target::Redis(server.addr().to_string(), "crash-entries".into()),
        first: 0,
        per_batch: 5,
        entry_len: ENTRY_LEN,
        file_size_limit: None,
    };
    let (acked, _) = writer.run(Some(25));
    server.restart().unwrap(); // SIGKILL, then reload the AOF (appendfsync always)
    runtime().block_on(async {
        let store = Datastore::open(&DatastoreSettings::Redis(server.settings("crash-entries")))
            .await
            .unwrap();
        let batches = whole_batches(&read_all(&store).await, 5, ENTRY_LEN);
        assert_acknowledged_present(&batches, &acked);
        store.append(&[entry(999_995, 10)]).await.unwrap();
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_restart_while_in_use_errors_then_recovers() {
    let mut server = RedisServer::start().unwrap();
    let store = Datastore::open(&DatastoreSettings::Redis(server.settings("k")))
        .await
        .unwrap();
    let mut acked: Vec<u32> = (0..10).collect();
    for &n in &acked {
        store.append(&[entry(n, 50)]).await.unwrap();
    }
    let mut cursor = Cursor::default();
    assert_eq!(store.read_new(&mut cursor).await.unwrap().len(), 10);

    server.kill().unwrap();
    let down = Instant::now();
    let err = store.append(&[entry(100, 50)]).await.unwrap_err();
    assert!(["redis", "timeout"].contains(&err.kind()), "{err}");
    let err = store.read_new(&mut cursor).await.unwrap_err();
    assert!(["redis", "timeout"].contains(&err.kind()), "{err}");
    // Each call is bounded by its 1 s command timeout; the bound catches a hang, with room for
    // a loaded machine.
    assert!(
        down.elapsed() < Duration::from_secs(20),
        "calls fail within their timeouts while Redis is down"
    );
    assert_eq!(
        cursor.position(),
        10,
        "a failed read leaves the cursor alone"
    );

    server.restart().unwrap();
    // The connection manager reconnects in the background; retry (bounded) until it has.
    tandem_testkit::poll::until(
        "an append after Redis came back",
        tandem_testkit::poll::POLL_BOUND,
        || async { store.append(&[entry(200, 50)]).await.ok() },
    )
    .await;
    acked.push(200);
    for n in 201..205 {
        store.append(&[entry(n, 50)]).await.unwrap();
        acked.push(n);
    }
    let new: Vec<u32> = store
        .read_new(&mut cursor)
        .await
        .unwrap()
        .iter()
        .map(number)
        .collect();
    assert!(new.ends_with(&[200, 201, 202, 203, 204]), "{new:?}");
    let stored: Vec<u32> = read_all(&store).await.iter().map(number).collect();
    assert_acknowledged_present(&stored, &acked);
}
