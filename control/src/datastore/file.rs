//! The embedded file datastore: an append-only file of chunks (see [`super::chunk`]).
//!
//! - **Durability**: `append` writes the whole batch with one `write_all` and `fdatasync`s before
//!   returning; a new file's directory entry is synced as well.
//! - **One appender**: the file is `flock`ed exclusively for the store's lifetime, so a second
//!   store (another process, or a second open in this one) fails with [`DatastoreError::Locked`].
//!   Inside the process an `RwLock` (taken only inside blocking tasks, never across `.await`)
//!   makes appends exclusive and keeps readers from seeing half of a batch.
//! - **Crash safety**: a crash mid-append can leave a torn chunk or an incomplete entry at the end.
//!   Reads ignore such a tail. Opening truncates the file to just after the last complete entry
//!   (logged at warn with the bytes removed), so new chunks always start at a chunk boundary. A
//!   batch that was being written when the process died may survive in part; it was never
//!   acknowledged. A failed write is rolled back by truncating to the previous length.
//! - File created 0600; its directory, when missing, 0700.

use std::fs::{DirBuilder, File, OpenOptions};
use std::io::Write;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{DirBuilderExt, FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use super::Cursor;
use super::chunked;
use super::entry::DataEntry;
use super::error::DatastoreError;
use crate::settings::datastore::FileDatastoreSettings;

/// An open file store. Cheap to clone (clones share the file and its lock).
#[derive(Debug, Clone)]
pub struct FileDatastore {
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    path: PathBuf,
    file: File,
    /// Bytes of valid data (always a chunk boundary). Written only under the write lock.
    state: RwLock<WriterState>,
}

#[derive(Debug)]
struct WriterState {
    len: u64,
    /// A failed write could not be rolled back: refuse appends until reopened (which recovers).
    broken: bool,
}

fn io_err<'a>(
    op: &'static str,
    path: &'a Path,
) -> impl FnOnce(std::io::Error) -> DatastoreError + 'a {
    move |source| DatastoreError::Io {
        op,
        path: path.to_path_buf(),
        source,
    }
}

fn poisoned<T>(_: T) -> DatastoreError {
    DatastoreError::Task("file store lock poisoned by an earlier panic".into())
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, DatastoreError> + Send + 'static,
) -> Result<T, DatastoreError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| DatastoreError::Task(e.to_string()))?
}

impl FileDatastore {
    /// Opens (creating when missing) the store file, takes its exclusive lock and truncates a torn
    /// tail left by a crash.
    pub async fn open(settings: &FileDatastoreSettings) -> Result<Self, DatastoreError> {
        let path = settings.filename.clone();
        let shared = blocking(move || open_blocking(path)).await?;
        Ok(Self {
            shared: Arc::new(shared),
        })
    }

    /// The store file.
    pub fn path(&self) -> &Path {
        &self.shared.path
    }

    /// Appends `entries` and syncs them to disk before returning.
    pub async fn append(&self, entries: &[DataEntry]) -> Result<(), DatastoreError> {
        if entries.is_empty() {
            return Ok(());
        }
        let bytes = chunked::encode_batch(entries)?;
        let shared = Arc::clone(&self.shared);
        blocking(move || shared.append_blocking(&bytes)).await
    }

    /// Returns the entries completed since `cursor` and advances it.
    pub async fn read_new(&self, cursor: &mut Cursor) -> Result<Vec<DataEntry>, DatastoreError> {
        let shared = Arc::clone(&self.shared);
        let position = cursor.position;
        let bytes = blocking(move || shared.read_from(position)).await?;
        let mut pending = cursor.pending.clone();
        let decoded = chunked::decode(&bytes, position, &mut pending)?;
        if decoded.torn > 0 {
            tracing::debug!(torn = decoded.torn, "ignoring a torn tail");
        }
        cursor.position = position + decoded.consumed as u64;
        cursor.pending = pending;
        Ok(decoded.entries)
    }
}

fn open_blocking(path: PathBuf) -> Result<Shared, DatastoreError> {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    if !dir.exists() {
        DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(io_err("create directory", dir))?;
    }
    let existed = path.exists();
    let file = OpenOptions::new()
        .read(true)
        .append(true)
        .create(true)
        .mode(0o600)
        .open(&path)
        .map_err(io_err("open", &path))?;
    lock_exclusive(&file, &path)?;
    if !existed {
        File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(io_err("sync directory", dir))?;
    }
    let len = recover(&file, &path)?;
    tracing::info!(path = %path.display(), bytes = len, "file datastore open");
    Ok(Shared {
        path,
        file,
        state: RwLock::new(WriterState { len, broken: false }),
    })
}

fn lock_exclusive(file: &File, path: &Path) -> Result<(), DatastoreError> {
    // SAFETY: flock on a file descriptor we own and keep open; no memory is passed.
    let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    if rc == 0 {
        return Ok(());
    }
    let err = std::io::Error::last_os_error();
    if err.raw_os_error() == Some(libc::EWOULDBLOCK) {
        return Err(DatastoreError::Locked {
            path: path.to_path_buf(),
        });
    }
    Err(io_err("lock", path)(err))
}

/// Reads the whole file, truncates it after the last complete entry and returns the valid length.
fn recover(file: &File, path: &Path) -> Result<u64, DatastoreError> {
    let len = file.metadata().map_err(io_err("stat", path))?.len();
    let mut buf = vec![
        0;
        usize::try_from(len)
            .map_err(|_| DatastoreError::Config("store file too large".into()))?
    ];
    file.read_exact_at(&mut buf, 0)
        .map_err(io_err("read", path))?;
    let valid = chunked::recovery_point(&buf)? as u64;
    if valid < len {
        tracing::warn!(path = %path.display(), removed = len - valid, "truncating a torn tail left by a crash");
        file.set_len(valid).map_err(io_err("truncate", path))?;
        file.sync_all().map_err(io_err("sync", path))?;
    }
    Ok(valid)
}

impl Shared {
    fn append_blocking(&self, bytes: &[u8]) -> Result<(), DatastoreError> {
        let mut state = self.state.write().map_err(poisoned)?;
        if state.broken {
            return Err(DatastoreError::Io {
                op: "append",
                path: self.path.clone(),
                source: std::io::Error::other(
                    "an earlier failed write could not be rolled back; reopen the store",
                ),
            });
        }
        let written = (&self.file)
            .write_all(bytes)
            .and_then(|()| self.file.sync_data());
        if let Err(source) = written {
            let rollback = self
                .file
                .set_len(state.len)
                .and_then(|()| self.file.sync_data());
            if let Err(e) = rollback {
                tracing::error!(path = %self.path.display(), error = %e, "cannot roll back a failed append");
                state.broken = true;
            }
            return Err(DatastoreError::Io {
                op: "append",
                path: self.path.clone(),
                source,
            });
        }
        state.len += bytes.len() as u64;
        Ok(())
    }

    fn read_from(&self, position: u64) -> Result<Vec<u8>, DatastoreError> {
        let state = self.state.read().map_err(poisoned)?;
        if position > state.len {
            return Err(DatastoreError::CursorAhead {
                position,
                len: state.len,
            });
        }
        let n = usize::try_from(state.len - position)
            .map_err(|_| DatastoreError::Config("store file too large".into()))?;
        let mut buf = vec![0; n];
        self.file
            .read_exact_at(&mut buf, position)
            .map_err(io_err("read", &self.path))?;
        Ok(buf)
    }
}
