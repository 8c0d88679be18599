//! File datastore specifics: the original byte layout, interleaved writers, torn tails, the
//! append lock and file permissions.

// Test code: a failed unwrap is a failed test (helpers outside #[test] fns included).
#![allow(clippy::unwrap_used)]

use crate::datastore_common;

use std::os::unix::fs::PermissionsExt;

use datastore_common::{
    FileFactory, StoreFactory, chunk_bytes, entry, entry_bytes, read_all, split,
};
use tandem_control::datastore::{Cursor, DataEntry};

fn write_file(f: &FileFactory, bytes: &[u8]) {
    std::fs::create_dir_all(f.path.parent().unwrap()).unwrap();
    std::fs::write(&f.path, bytes).unwrap();
}

#[tokio::test]
async fn writes_the_original_chunk_layout() {
    let f = FileFactory::new();
    let e = DataEntry {
        type_: 1,
        id: vec![0xab; 16],
        data: vec![0x5a; 400],
    };
    f.open()
        .await
        .append(std::slice::from_ref(&e))
        .await
        .unwrap();
    let file = std::fs::read(&f.path).unwrap();
    let entry = entry_bytes(&e); // 420 bytes: chunks of 231 and 189 data bytes
    let (first, second) = file.split_at(25 + 231);
    assert_eq!(
        &first[..7],
        &[1, 2, 0, 0, 0, 16, 0],
        "version, 2 chunks, index 0, id length 16"
    );
    let chunk_id: [u8; 16] = first[7..23].try_into().unwrap();
    assert_eq!(first, chunk_bytes(2, 0, &chunk_id, &entry[..231]));
    assert_eq!(second, chunk_bytes(2, 1, &chunk_id, &entry[231..]));
}

#[tokio::test]
async fn interleaved_chunks_from_two_writers_reassemble() {
    let f = FileFactory::new();
    let (a, b, c) = (entry(1, 500), entry(2, 300), entry(3, 10));
    let (ca, cb, cc) = (
        split(&a, &[1; 16]),
        split(&b, &[2; 16]),
        split(&c, &[3; 16]),
    );
    assert_eq!((ca.len(), cb.len(), cc.len()), (3, 2, 1));
    // Two unlocked writers (as the original allows) interleave their chunks.
    let order = [&ca[0], &cb[0], &ca[1], &cc[0], &cb[1], &ca[2]];
    write_file(
        &f,
        &order
            .iter()
            .flat_map(|c| c.iter().copied())
            .collect::<Vec<u8>>(),
    );
    let store = f.open().await;
    assert_eq!(
        read_all(&store).await,
        vec![c, b, a],
        "entries come out in completion order"
    );
}

#[tokio::test]
async fn torn_tail_is_ignored_and_truncated_on_open() {
    let f = FileFactory::new();
    let good = split(&entry(1, 10), &[1; 16]).concat();
    let incomplete = split(&entry(2, 600), &[2; 16]);
    let mut file = good.clone();
    file.extend_from_slice(&incomplete[0]); // an entry missing its last two chunks
    file.extend_from_slice(&incomplete[1][..30]); // and a chunk cut short
    write_file(&f, &file);

    let store = f.open().await;
    assert_eq!(
        std::fs::metadata(&f.path).unwrap().len(),
        good.len() as u64,
        "truncated to the last complete entry"
    );
    let mut cursor = Cursor::default();
    assert_eq!(
        store.read_new(&mut cursor).await.unwrap(),
        vec![entry(1, 10)]
    );
    store.append(&[entry(3, 700)]).await.unwrap();
    assert_eq!(
        store.read_new(&mut cursor).await.unwrap(),
        vec![entry(3, 700)]
    );
    drop(store);
    assert_eq!(
        read_all(&f.open().await).await,
        vec![entry(1, 10), entry(3, 700)]
    );
}

#[tokio::test]
async fn zero_filled_tail_is_torn_not_corrupt() {
    let f = FileFactory::new();
    let mut file = split(&entry(1, 10), &[1; 16]).concat();
    let good = file.len() as u64;
    file.extend_from_slice(&[0; 4096]);
    write_file(&f, &file);
    let store = f.open().await;
    assert_eq!(std::fs::metadata(&f.path).unwrap().len(), good);
    assert_eq!(read_all(&store).await, vec![entry(1, 10)]);
}

#[tokio::test]
async fn corrupt_middle_fails_open_without_touching_the_file() {
    let f = FileFactory::new();
    let mut file = split(&entry(1, 10), &[1; 16]).concat();
    let at = file.len();
    file.push(9);
    file.extend(split(&entry(2, 10), &[2; 16]).concat());
    write_file(&f, &file);
    let err = tandem_control::datastore::Datastore::open(&f.settings())
        .await
        .unwrap_err();
    assert_eq!(err.kind(), "corrupt");
    assert!(err.to_string().contains(&format!("at {at}")), "{err}");
    assert_eq!(
        std::fs::read(&f.path).unwrap(),
        file,
        "a corrupt store is reported, never rewritten"
    );
}

#[tokio::test]
async fn one_appender_per_file() {
    let f = FileFactory::new();
    let first = f.open().await;
    let err = tandem_control::datastore::Datastore::open(&f.settings())
        .await
        .unwrap_err();
    assert_eq!(err.kind(), "locked", "{err}");
    first.append(&[entry(1, 1)]).await.unwrap();
    drop(first);
    let second = f.open().await;
    assert_eq!(
        read_all(&second).await,
        vec![entry(1, 1)],
        "the lock is released on drop"
    );
}

#[tokio::test]
async fn file_is_private_and_its_directory_is_created_private() {
    let f = FileFactory::new();
    let _store = f.open().await;
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&f.path), 0o600);
    assert_eq!(mode(f.path.parent().unwrap()), 0o700);
}

#[tokio::test]
async fn cursor_from_another_store_is_refused() {
    let big = FileFactory::new();
    let store = big.open().await;
    store.append(&[entry(1, 1000)]).await.unwrap();
    let mut cursor = Cursor::default();
    store.read_new(&mut cursor).await.unwrap();
    let small = FileFactory::new();
    let err = small.open().await.read_new(&mut cursor).await.unwrap_err();
    assert_eq!(err.kind(), "cursor", "{err}");
}
