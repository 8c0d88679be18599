//! The datastore contract, written once and run on both backends (file and a real redis-server).

// Test code: a failed unwrap is a failed test (helpers outside #[test] fns included).
#![allow(clippy::unwrap_used)]

use crate::support;

use support::{FileFactory, RedisFactory, StoreFactory, entry, number, read_all};
use tandem_datastore::{Cursor, DataEntry, MAX_ENTRY_LEN};

/// Appended entries come back byte for byte, in order, and survive reopening.
async fn append_read_round_trip(f: &impl StoreFactory) {
    let store = f.open().await;
    let batch = vec![
        entry(2, 10),
        entry(3, 0),
        DataEntry {
            type_: 7,
            id: vec![],
            data: b"no id".to_vec(),
        },
    ];
    store.append(&[entry(1, 300)]).await.unwrap();
    store.append(&batch).await.unwrap();
    let mut expected = vec![entry(1, 300)];
    expected.extend(batch);
    assert_eq!(read_all(&store).await, expected);
    drop(store);
    let reopened = f.open().await;
    assert_eq!(
        read_all(&reopened).await,
        expected,
        "entries survive reopening"
    );
}

/// A cursor returns only what was appended since its last read.
async fn incremental_cursor(f: &impl StoreFactory) {
    let store = f.open().await;
    let mut cursor = Cursor::default();
    assert_eq!(store.read_new(&mut cursor).await.unwrap(), vec![]);
    store.append(&[entry(1, 5)]).await.unwrap();
    assert_eq!(
        store.read_new(&mut cursor).await.unwrap(),
        vec![entry(1, 5)]
    );
    let after_first = cursor.position();
    assert!(after_first > 0);
    assert_eq!(store.read_new(&mut cursor).await.unwrap(), vec![]);
    assert_eq!(
        cursor.position(),
        after_first,
        "an empty read does not move the cursor"
    );
    store.append(&[entry(2, 500), entry(3, 5)]).await.unwrap();
    store.append(&[]).await.unwrap();
    assert_eq!(
        store.read_new(&mut cursor).await.unwrap(),
        vec![entry(2, 500), entry(3, 5)]
    );
    assert_eq!(
        read_all(&store).await.len(),
        3,
        "a fresh cursor still reads everything"
    );
}

/// A concurrent reader sees each batch whole or not at all, in append order.
async fn batch_atomicity(f: &impl StoreFactory) {
    const BATCHES: u32 = 40;
    const BATCH: u32 = 5;
    let store = f.open().await;
    let writer_store = store.clone();
    let writer = tokio::spawn(async move {
        for b in 0..BATCHES {
            let batch: Vec<_> = (0..BATCH).map(|i| entry(b * BATCH + i, 300)).collect();
            writer_store.append(&batch).await.unwrap();
        }
    });
    let mut cursor = Cursor::default();
    let mut seen = Vec::new();
    let mut reads = 0;
    loop {
        let done = writer.is_finished();
        let got = store.read_new(&mut cursor).await.unwrap();
        assert_eq!(
            got.len() % BATCH as usize,
            0,
            "read {} entries: a partial batch",
            got.len()
        );
        seen.extend(got.iter().map(number));
        reads += 1;
        if done {
            break;
        }
        assert!(reads < 1_000_000, "reader loop bound");
        tokio::task::yield_now().await;
    }
    writer.await.unwrap();
    assert_eq!(seen, (0..BATCHES * BATCH).collect::<Vec<_>>());
}

/// Entries far larger than one chunk (100 KiB, 1 MiB) round-trip exactly; oversized ones are refused.
async fn large_entries(f: &impl StoreFactory) {
    let store = f.open().await;
    let big = vec![entry(1, 100 * 1024), entry(2, 3), entry(3, 1024 * 1024)];
    store.append(&big).await.unwrap();
    let too_big = entry(4, MAX_ENTRY_LEN);
    let err = store.append(&[entry(5, 1), too_big]).await.unwrap_err();
    assert_eq!(err.kind(), "entry", "{err}");
    assert_eq!(
        read_all(&store).await,
        big,
        "a refused batch stores nothing"
    );
}

macro_rules! on_both_backends {
    ($($test:ident),* $(,)?) => {
        mod file {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $test() {
                    super::$test(&super::FileFactory::new()).await;
                }
            )*
        }
        mod redis {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $test() {
                    super::$test(&super::RedisFactory::new()).await;
                }
            )*
        }
    };
}

on_both_backends!(
    append_read_round_trip,
    incremental_cursor,
    batch_atomicity,
    large_entries
);
