//! Shared by the datastore integration tests: store factories (file and Redis) so one suite runs
//! on both backends, entry builders, and a hand-written encoder of the original file layout.

// Each test binary uses a different subset of these helpers.
#![allow(dead_code)]

pub mod crash;

use std::path::PathBuf;

use tandem_datastore::{Cursor, DataEntry, Datastore};
use tandem_settings::datastore::{DatastoreSettings, FileDatastoreSettings};
use tandem_testkit::redis::RedisServer;

/// Opens stores of one backend, all on the same underlying data.
pub trait StoreFactory {
    /// The settings every `open` uses.
    fn settings(&self) -> DatastoreSettings;

    /// Opens a store (the previous one must be dropped first for the file backend: it is locked).
    fn open(&self) -> impl Future<Output = Datastore> {
        let settings = self.settings();
        async move { Datastore::open(&settings).await.expect("open the store") }
    }
}

/// A file store in a fresh temporary directory (in a subdirectory that does not exist yet).
pub struct FileFactory {
    pub dir: tempfile::TempDir,
    pub path: PathBuf,
}

impl FileFactory {
    pub fn new() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("store").join("entries.dat");
        Self { dir, path }
    }
}

impl StoreFactory for FileFactory {
    fn settings(&self) -> DatastoreSettings {
        DatastoreSettings::File(FileDatastoreSettings {
            filename: self.path.clone(),
        })
    }
}

/// A Redis store on its own fresh server.
pub struct RedisFactory {
    pub server: RedisServer,
    pub key: String,
}

impl RedisFactory {
    pub fn new() -> Self {
        let server = RedisServer::start().expect("start redis-server (is it installed?)");
        Self {
            server,
            key: "test-entries".into(),
        }
    }
}

impl StoreFactory for RedisFactory {
    fn settings(&self) -> DatastoreSettings {
        DatastoreSettings::Redis(self.server.settings(&self.key))
    }
}

/// Entry `n`: type 1, a 16-byte id carrying `n`, `len` bytes of data derived from `n`.
pub fn entry(n: u32, len: usize) -> DataEntry {
    let mut id = vec![0xee; 16];
    id[..4].copy_from_slice(&n.to_le_bytes());
    let data = (0..len)
        .map(|i| (i as u32).wrapping_mul(31).wrapping_add(n) as u8)
        .collect();
    DataEntry { type_: 1, id, data }
}

/// The `n` that [`entry`] put in the id.
pub fn number(e: &DataEntry) -> u32 {
    u32::from_le_bytes(e.id[..4].try_into().expect("a 16-byte id"))
}

/// Reads everything from a fresh cursor.
pub async fn read_all(store: &Datastore) -> Vec<DataEntry> {
    store
        .read_new(&mut Cursor::default())
        .await
        .expect("read the store")
}

/// The original's entry bytes, written from the SPEC, independently of the crate's encoder.
pub fn entry_bytes(e: &DataEntry) -> Vec<u8> {
    let mut out = vec![1, e.type_];
    out.extend_from_slice(&(e.id.len() as u16).to_le_bytes());
    out.extend_from_slice(&e.id);
    out.extend_from_slice(&e.data);
    out
}

/// One chunk in the original's layout.
pub fn chunk_bytes(chunks: u16, index: u16, chunk_id: &[u8; 16], data: &[u8]) -> Vec<u8> {
    let mut out = vec![1];
    out.extend_from_slice(&chunks.to_le_bytes());
    out.extend_from_slice(&index.to_le_bytes());
    out.extend_from_slice(&16u16.to_le_bytes());
    out.extend_from_slice(chunk_id);
    out.extend_from_slice(&(data.len() as u16).to_le_bytes());
    out.extend_from_slice(data);
    out
}

/// The chunks of one entry as the original splits it (231 data bytes per chunk), separately.
pub fn split(e: &DataEntry, chunk_id: &[u8; 16]) -> Vec<Vec<u8>> {
    let bytes = entry_bytes(e);
    let pieces: Vec<&[u8]> = bytes.chunks(231).collect();
    let n = pieces.len() as u16;
    pieces
        .iter()
        .enumerate()
        .map(|(i, p)| chunk_bytes(n, i as u16, chunk_id, p))
        .collect()
}
