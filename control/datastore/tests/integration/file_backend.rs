//! File datastore specifics: the original byte layout with batches marked in the chunk ids,
//! interleaved writers, torn tails and torn batches, files of the old format, the append lock and
//! file permissions.

// Test code: a failed unwrap is a failed test (helpers outside #[test] fns included).
#![allow(clippy::unwrap_used)]

use crate::support;

use std::os::unix::fs::PermissionsExt;

use sha2::{Digest, Sha256};
use support::{FileFactory, StoreFactory, chunk_bytes, entry, entry_bytes, read_all, split};
use tandem_datastore::{Cursor, DataEntry};

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

/// The chunk ids of a file, walked by hand from the SPEC layout.
fn chunk_ids(file: &[u8]) -> Vec<[u8; 16]> {
    let mut ids = Vec::new();
    let mut at = 0;
    while at < file.len() {
        ids.push(file[at + 7..at + 23].try_into().unwrap());
        at += 25 + usize::from(u16::from_le_bytes([file[at + 23], file[at + 24]]));
    }
    assert_eq!(at, file.len());
    ids
}

#[tokio::test]
async fn batches_are_marked_in_the_chunk_ids() {
    let f = FileFactory::new();
    let store = f.open().await;
    // Two batches: three entries (the middle one two chunks long), then one entry.
    store
        .append(&[entry(1, 10), entry(2, 400), entry(3, 0)])
        .await
        .unwrap();
    store.append(&[entry(4, 10)]).await.unwrap();
    let ids = chunk_ids(&std::fs::read(&f.path).unwrap());
    assert_eq!(ids.len(), 5);
    // [nonce: 6][index: u32 LE, bit 31 on the last entry][SHA-256(domain, first 10 bytes)[..6]]
    let words: Vec<u32> = ids
        .iter()
        .map(|id| u32::from_le_bytes(id[6..10].try_into().unwrap()))
        .collect();
    assert_eq!(words, [0, 1, 1, 2 | 1 << 31, 1 << 31]);
    for id in &ids {
        let digest = Sha256::new()
            .chain_update(b"tandem datastore batch v1")
            .chain_update(&id[..10])
            .finalize();
        assert_eq!(&id[10..], &digest[..6]);
    }
    assert!(
        ids[..4].iter().all(|id| id[..6] == ids[0][..6]),
        "one nonce per batch"
    );
    assert_ne!(ids[4][..6], ids[0][..6], "a new nonce per batch");
}

#[tokio::test]
async fn a_batch_torn_by_a_crash_is_removed_whole_on_open() {
    let f = FileFactory::new();
    let store = f.open().await;
    let first = vec![entry(1, 10), entry(2, 300)];
    store.append(&first).await.unwrap();
    let first_len = std::fs::metadata(&f.path).unwrap().len() as usize;
    // Entries of 500 bytes take 3 chunks, 595 bytes.
    store
        .append(&[entry(3, 500), entry(4, 500), entry(5, 500)])
        .await
        .unwrap();
    drop(store);
    let whole = std::fs::read(&f.path).unwrap();
    assert_eq!(whole.len(), first_len + 3 * 595);
    // Torn after one byte, after the first entry, after the second, one byte short.
    for cut in [1, 595, 2 * 595, 3 * 595 - 1] {
        write_file(&f, &whole[..first_len + cut]);
        let store = f.open().await;
        assert_eq!(
            std::fs::metadata(&f.path).unwrap().len(),
            first_len as u64,
            "cut {cut}: truncated to the last whole batch"
        );
        assert_eq!(read_all(&store).await, first, "cut {cut}");
    }
}

#[tokio::test]
async fn a_file_of_the_old_format_opens_and_continues_with_batches() {
    let f = FileFactory::new();
    // Written before batches were marked: random chunk ids, each entry its own batch.
    let old = vec![entry(1, 10), entry(2, 500)];
    write_file(
        &f,
        &[split(&old[0], &[0x11; 16]), split(&old[1], &[0x22; 16])]
            .concat()
            .concat(),
    );
    let store = f.open().await;
    assert_eq!(read_all(&store).await, old);
    let new = vec![entry(3, 10), entry(4, 300)];
    store.append(&new).await.unwrap();
    assert_eq!(read_all(&store).await, [&old[..], &new[..]].concat());
    drop(store);
    let whole = std::fs::read(&f.path).unwrap();
    write_file(&f, &whole[..whole.len() - 1]);
    assert_eq!(
        read_all(&f.open().await).await,
        old,
        "the torn new batch is gone whole, the old entries stay"
    );
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
    let err = tandem_datastore::Datastore::open(&f.settings())
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
    let err = tandem_datastore::Datastore::open(&f.settings())
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
