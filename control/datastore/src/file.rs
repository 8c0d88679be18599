//! The embedded file datastore: an append-only file of chunks (see [`super::chunk`]), each batch
//! marked in its chunks' ids (see [`super::batch`]).
//!
//! - **Durability**: `append` writes the whole batch with one `write_all` and `fdatasync`s before
//!   returning; opening syncs the file's directory (its entry for the file), and each directory
//!   it creates on the way to it.
//! - **One appender**: the file is `flock`ed exclusively for the store's lifetime, so a second
//!   store (another process, or a second open in this one) fails with [`DatastoreError::Locked`].
//!   Inside the process an `RwLock` (taken only inside blocking tasks, never across `.await`)
//!   makes appends exclusive; a reader takes it only to learn the valid length (always the end of
//!   a batch), so it never sees half of a batch and never holds up an append while it decodes.
//! - **Crash safety, per batch**: a crash mid-append can leave part of a batch at the end: a torn
//!   chunk, entries of the batch, zero fill. Readers release a batch only when its last entry is
//!   there, so they never see part of one. Opening truncates the file to just after the last whole
//!   batch (logged at warn with the bytes removed), so a batch is on disk whole or not at all and
//!   new chunks start at a chunk boundary. Files written before batches were marked read as
//!   before: each entry its own batch. A failed write is rolled back by truncating to the
//!   previous length; if even that fails, appends are refused until the store is reopened.
//! - **Bounded reads**: opening and reading walk the file in [`BLOCK_LEN`] blocks (see
//!   [`super::stream`]); [`FileDatastore::open_and_read`] walks it twice (the recovery scan,
//!   then the read that hands every entry to the caller), never holding more than a block.
//! - **Compaction**: [`FileDatastore::replace_all`] writes the snapshot to `<file>.compact`
//!   (0600, synced, locked), renames it over the store and syncs the directory, only when the
//!   store holds exactly the entries the caller expects; readers that started before keep
//!   reading the old file's bytes.
//! - File created 0600; its directory, when missing, 0700.

use std::fs::{DirBuilder, File, OpenOptions};
use std::io::Write;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use super::chunked::{self, Decoder};
use super::data_entry::DataEntry;
use super::error::DatastoreError;
use super::stream::{self, BLOCK_LEN, WalkError, Walked};
use super::{Cursor, EntryVisitor};
use tandem_settings::datastore::FileDatastoreSettings;

/// An open file store. Cheap to clone (clones share the file and its lock).
#[derive(Debug, Clone)]
pub struct FileDatastore {
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    path: PathBuf,
    /// The file and its valid length. Written only under the write lock.
    state: RwLock<WriterState>,
}

#[derive(Debug)]
struct WriterState {
    /// The store file, `flock`ed while open; replaced as a whole by `replace_all` (readers that
    /// hold the old one finish on its bytes).
    file: Arc<File>,
    /// Bytes of valid data (always the end of a batch).
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

fn walk_err(path: &Path) -> impl FnOnce(WalkError) -> DatastoreError + '_ {
    move |e| match e {
        WalkError::Io(source) => io_err("read", path)(source),
        WalkError::Data(e) => e,
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
    /// batch left by a crash.
    pub async fn open(settings: &FileDatastoreSettings) -> Result<Self, DatastoreError> {
        let path = settings.filename.clone();
        let shared = blocking(move || open_blocking(path)).await?;
        Ok(Self {
            shared: Arc::new(shared),
        })
    }

    /// Releases (`false`) or takes again (`true`) the store file's exclusive lock, for a binary
    /// upgrade: the next process opens the store while this one, its writes held back by its
    /// caller, waits to exit or to take the store back after a failed upgrade.
    pub fn set_locked(&self, locked: bool) -> Result<(), DatastoreError> {
        let state = self.shared.state.read().map_err(poisoned)?;
        if locked {
            return lock_exclusive(&state.file, &self.shared.path);
        }
        // SAFETY: flock on a file descriptor the store owns and keeps open; no memory is passed.
        let rc = unsafe { libc::flock(state.file.as_raw_fd(), libc::LOCK_UN) };
        if rc != 0 {
            return Err(io_err("unlock", &self.shared.path)(
                std::io::Error::last_os_error(),
            ));
        }
        Ok(())
    }

    /// [`FileDatastore::open`], then every stored entry handed to `visit` in append order (read in
    /// bounded blocks). Returns the store, a cursor at the end of what was read, and the visitor.
    pub async fn open_and_read<V: EntryVisitor>(
        settings: &FileDatastoreSettings,
        mut visit: V,
    ) -> Result<(Self, Cursor, V), DatastoreError> {
        let store = Self::open(settings).await?;
        let mut cursor = Cursor::default();
        loop {
            let before = cursor.position;
            let entries = store.read_new(&mut cursor).await?;
            let done = entries.is_empty() && cursor.position == before;
            for entry in entries {
                visit.visit(entry);
            }
            if done {
                break;
            }
        }
        Ok((store, cursor, visit))
    }

    /// Replaces the whole store with `snapshot` (one synced write, atomic by rename) when it holds
    /// exactly `expected` entries; `Ok(false)` without writing otherwise. The caller must know the
    /// store's contents are equivalent to `snapshot` (a compaction); cursors of earlier reads are
    /// invalid afterwards (the store's only reader is the caller).
    pub async fn replace_all(
        &self,
        expected: u64,
        snapshot: &[DataEntry],
    ) -> Result<bool, DatastoreError> {
        let bytes = if snapshot.is_empty() {
            Vec::new()
        } else {
            chunked::encode_batch(snapshot)?
        };
        let shared = Arc::clone(&self.shared);
        blocking(move || shared.replace_blocking(expected, &bytes)).await
    }

    /// The store file.
    pub fn path(&self) -> &Path {
        &self.shared.path
    }

    /// Appends `entries` as one batch and syncs them to disk before returning.
    pub async fn append(&self, entries: &[DataEntry]) -> Result<(), DatastoreError> {
        if entries.is_empty() {
            return Ok(());
        }
        let bytes = chunked::encode_batch(entries)?;
        let shared = Arc::clone(&self.shared);
        blocking(move || shared.append_blocking(&bytes)).await
    }

    /// Returns the entries of the batches completed since `cursor` and advances it.
    pub async fn read_new(&self, cursor: &mut Cursor) -> Result<Vec<DataEntry>, DatastoreError> {
        let shared = Arc::clone(&self.shared);
        let position = cursor.position;
        let mut pending = cursor.pending.clone();
        let (entries, walked, pending) = blocking(move || {
            let (entries, walked) = shared.read_from(position, &mut pending)?;
            Ok((entries, walked, pending))
        })
        .await?;
        if walked.torn > 0 {
            tracing::debug!(torn = walked.torn, "ignoring a torn tail");
        }
        cursor.position = walked.end;
        cursor.pending = pending;
        Ok(entries)
    }
}

fn open_blocking(path: PathBuf) -> Result<Shared, DatastoreError> {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    create_dirs(dir)?;
    let file = OpenOptions::new()
        .read(true)
        .append(true)
        .create(true)
        .mode(0o600)
        .open(&path)
        .map_err(io_err("open", &path))?;
    lock_exclusive(&file, &path)?;
    // Every open, not only when creating: a process that created the file and died before this
    // sync would otherwise leave the file's directory entry unsynced under later acknowledgements.
    sync_dir(dir)?;
    let len = recover(&file, &path)?;
    tracing::info!(path = %path.display(), bytes = len, "file datastore open");
    Ok(Shared {
        path,
        state: RwLock::new(WriterState {
            file: Arc::new(file),
            len,
            broken: false,
        }),
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

/// Creates `dir` and its missing ancestors (0700), syncing each new directory's parent so that
/// the path survives a power loss along with the store's first acknowledged batch.
fn create_dirs(dir: &Path) -> Result<(), DatastoreError> {
    let missing: Vec<&Path> = dir
        .ancestors()
        .filter(|d| !d.as_os_str().is_empty())
        .take_while(|d| !d.exists())
        .collect();
    for d in missing.into_iter().rev() {
        match DirBuilder::new().mode(0o700).create(d) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(io_err("create directory", d)(e)),
        }
        sync_dir(
            d.parent()
                .filter(|p| !p.as_os_str().is_empty())
                .unwrap_or(Path::new(".")),
        )?;
    }
    Ok(())
}

fn sync_dir(dir: &Path) -> Result<(), DatastoreError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err("sync directory", dir))
}

/// Walks the file once, truncates it after the last whole batch and returns the valid length.
fn recover(file: &File, path: &Path) -> Result<u64, DatastoreError> {
    let len = file.metadata().map_err(io_err("stat", path))?.len();
    let valid = stream::recovery_point(file, len, BLOCK_LEN).map_err(walk_err(path))?;
    if valid < len {
        tracing::warn!(path = %path.display(), removed = len - valid, "truncating a batch torn by a crash");
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
        let file = Arc::clone(&state.file);
        let written = (&*file).write_all(bytes).and_then(|()| file.sync_data());
        if let Err(source) = written {
            let rollback = file.set_len(state.len).and_then(|()| file.sync_data());
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

    fn read_from(
        &self,
        position: u64,
        pending: &mut Decoder<DataEntry>,
    ) -> Result<(Vec<DataEntry>, Walked), DatastoreError> {
        let (file, len) = {
            let state = self.state.read().map_err(poisoned)?;
            (Arc::clone(&state.file), state.len)
        };
        if position > len {
            return Err(DatastoreError::CursorAhead { position, len });
        }
        // Without the lock: bytes below `len` of this file never change (appends go after them;
        // a failed append is rolled back to its own start, at or above `len`; a replacement is a
        // new file).
        stream::read_entries(&*file, position, len, BLOCK_LEN, pending)
            .map_err(walk_err(&self.path))
    }
}

#[path = "file_replace.rs"]
mod replace;

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn missing_directories_are_created_private_level_by_level() {
        let tmp = tempfile::tempdir().unwrap();
        let deep = tmp.path().join("a").join("b").join("c");
        create_dirs(&deep).unwrap();
        for d in [tmp.path().join("a"), tmp.path().join("a/b"), deep.clone()] {
            let mode = std::fs::metadata(&d).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o700, "{}", d.display());
        }
        create_dirs(&deep).unwrap(); // already there: nothing to do
    }
}
