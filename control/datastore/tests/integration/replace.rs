//! The two datastore calls the announcement stores rely on, on both backends: `open_and_read`
//! (one read of everything, in bounded pages, in append order) and `replace_all` (compaction:
//! an atomic swap that happens only when the store holds exactly the entries expected).
#![allow(clippy::unwrap_used)]

use crate::support;

use support::{FileFactory, RedisFactory, StoreFactory, entry, number, read_all};
use tandem_datastore::{
    Cursor, DataEntry, Datastore, EntryVisitor, READ_PAGE_BYTES, READ_PAGE_ENTRIES,
};

/// Enough entries for several Redis pages and enough bytes for several file pages.
fn history() -> Vec<DataEntry> {
    let small = 2 * READ_PAGE_ENTRIES as u32 + 7;
    let mut out: Vec<_> = (0..small).map(|n| entry(n, 40)).collect();
    let big = READ_PAGE_BYTES / 3 + 11;
    out.extend((small..small + 8).map(|n| entry(n, big)));
    out
}

async fn open_and_read_reads_everything_once_in_order(f: &impl StoreFactory) {
    let store = f.open().await;
    let entries = history();
    for batch in entries.chunks(500) {
        store.append(batch).await.unwrap();
    }
    drop(store);
    let (store, mut cursor, Collect(seen)) =
        Datastore::open_and_read(&f.settings(), Collect(Vec::new()))
            .await
            .unwrap();
    assert_eq!(seen.len(), entries.len());
    assert!(seen.iter().map(number).eq(entries.iter().map(number)));
    assert_eq!(seen, entries);
    // The cursor is at the end: only what is appended afterwards is new.
    assert!(store.read_new(&mut cursor).await.unwrap().is_empty());
    store.append(&[entry(99_999, 5)]).await.unwrap();
    let new = store.read_new(&mut cursor).await.unwrap();
    assert_eq!(new, vec![entry(99_999, 5)]);
}

async fn replace_all_swaps_only_what_it_expects(f: &impl StoreFactory) {
    let store = f.open().await;
    let entries: Vec<_> = (0..100).map(|n| entry(n, 30)).collect();
    store.append(&entries).await.unwrap();
    let snapshot = vec![entry(1000, 3), entry(1001, 300)];
    assert!(
        !store.replace_all(99, &snapshot).await.unwrap(),
        "a wrong count changes nothing"
    );
    assert_eq!(read_all(&store).await, entries);
    assert!(store.replace_all(100, &snapshot).await.unwrap());
    assert_eq!(read_all(&store).await, snapshot);
    // Appends continue after the snapshot, and the count follows them.
    store.append(&[entry(1002, 1)]).await.unwrap();
    let mut expected = snapshot.clone();
    expected.push(entry(1002, 1));
    assert_eq!(read_all(&store).await, expected);
    assert!(store.replace_all(3, &[entry(2000, 1)]).await.unwrap());
    drop(store);
    let reopened = f.open().await;
    assert_eq!(read_all(&reopened).await, vec![entry(2000, 1)]);
    assert!(reopened.replace_all(1, &[]).await.unwrap());
    assert!(read_all(&reopened).await.is_empty());
}

/// `open_and_read`'s visitor: collects the entries.
struct Collect(Vec<DataEntry>);

impl EntryVisitor for Collect {
    fn visit(&mut self, entry: DataEntry) {
        self.0.push(entry);
    }
}

mod file {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn open_and_read_reads_everything_once_in_order() {
        super::open_and_read_reads_everything_once_in_order(&FileFactory::new()).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn replace_all_swaps_only_what_it_expects() {
        super::replace_all_swaps_only_what_it_expects(&FileFactory::new()).await;
    }

    /// A `.compact` file left by a crash mid-compaction is ignored on open and replaced by the
    /// next compaction; the store file stays 0600.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_stale_compaction_file_is_harmless() {
        use std::os::unix::fs::PermissionsExt;
        let f = FileFactory::new();
        let store = f.open().await;
        store.append(&[entry(1, 10), entry(2, 10)]).await.unwrap();
        drop(store);
        let mut stale = f.path.clone().into_os_string();
        stale.push(".compact");
        std::fs::write(&stale, b"half a snapshot").unwrap();
        let store = f.open().await;
        assert_eq!(read_all(&store).await, vec![entry(1, 10), entry(2, 10)]);
        assert!(store.replace_all(2, &[entry(3, 10)]).await.unwrap());
        assert!(!std::path::Path::new(&stale).exists());
        let mode = std::fs::metadata(&f.path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        drop(store);
        assert_eq!(read_all(&f.open().await).await, vec![entry(3, 10)]);
    }
}

mod redis {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn open_and_read_reads_everything_once_in_order() {
        super::open_and_read_reads_everything_once_in_order(&RedisFactory::new()).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn replace_all_swaps_only_what_it_expects() {
        super::replace_all_swaps_only_what_it_expects(&RedisFactory::new()).await;
    }

    /// Another writer on the same key (a second proxy): the replacement is refused and nothing
    /// it appended is lost.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn another_writers_append_blocks_the_replacement() {
        let f = RedisFactory::new();
        let ours = f.open().await;
        let theirs = f.open().await;
        ours.append(&[entry(1, 10), entry(2, 10)]).await.unwrap();
        theirs.append(&[entry(3, 10)]).await.unwrap();
        assert!(!ours.replace_all(2, &[entry(2, 10)]).await.unwrap());
        let all = read_all(&ours).await;
        assert_eq!(all.iter().map(number).collect::<Vec<_>>(), vec![1, 2, 3]);
        let mut cursor = Cursor::default();
        assert_eq!(theirs.read_new(&mut cursor).await.unwrap().len(), 3);
    }
}
