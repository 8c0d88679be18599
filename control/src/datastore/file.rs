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
//! - **One read on open**: opening scans the file once, in pages of
//!   [`super::recover::READ_PAGE_BYTES`], to find the recovery point;
//!   [`FileDatastore::open_and_read`] hands the entries of that same pass to the caller.
//! - **Replacing** ([`FileDatastore::replace_all`], compaction): the new contents are written to
//!   `<file>.compact`, synced, locked, and renamed over the file (then the directory is synced), so
//!   a crash leaves either the old or the new contents, never a mix.
//! - File created 0600; its directory, when missing, 0700.

use std::fs::{DirBuilder, File, OpenOptions};
use std::io::Write;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{DirBuilderExt, FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use super::chunked;
use super::entry::DataEntry;
use super::error::DatastoreError;
use super::recover::scan_file;
use super::{Cursor, EntryVisitor};
use crate::settings::datastore::FileDatastoreSettings;

/// An open file store. Cheap to clone (clones share the file and its lock).
#[derive(Debug, Clone)]
pub struct FileDatastore {
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    path: PathBuf,
    /// The open file and what it holds. Written only under the write lock.
    state: RwLock<WriterState>,
}

#[derive(Debug)]
struct WriterState {
    /// The store file, `flock`ed while open (replaced as a whole by `replace_all`).
    file: File,
    /// Bytes of valid data (always a chunk boundary).
    len: u64,
    /// Complete entries in those bytes.
    entries: u64,
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
        Ok(Self::open_and_read(settings, |_| {}).await?.0)
    }

    /// [`FileDatastore::open`], handing every entry of the opening scan to `visit` (in the order
    /// `read_new` returns them): the file is read once. Returns the store, a cursor at its end
    /// and the visitor.
    pub async fn open_and_read<V>(
        settings: &FileDatastoreSettings,
        visit: V,
    ) -> Result<(Self, Cursor, V), DatastoreError>
    where
        V: EntryVisitor,
    {
        let path = settings.filename.clone();
        let (shared, visit) = blocking(move || {
            let mut visit = visit;
            let shared = open_blocking(path, &mut |e| visit.visit(e))?;
            Ok((shared, visit))
        })
        .await?;
        let len = shared.state.read().map_err(poisoned)?.len;
        // Entries incomplete at the recovery point were truncated with the torn tail: nothing
        // is pending for a reader that starts here.
        let cursor = Cursor {
            position: len,
            pending: Default::default(),
        };
        Ok((
            Self {
                shared: Arc::new(shared),
            },
            cursor,
            visit,
        ))
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
        let count = entries.len() as u64;
        blocking(move || shared.append_blocking(&bytes, count)).await
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

    /// Replaces the whole store with `snapshot` (one synced write, atomic by rename) when it holds
    /// exactly `expected` entries; `Ok(false)` without writing otherwise. The caller must know the
    /// store's contents are equivalent to `snapshot` (a compaction); cursors of earlier reads are
    /// invalid afterwards (the store's only reader is the caller).
    pub async fn replace_all(
        &self,
        expected: u64,
        snapshot: &[DataEntry],
    ) -> Result<bool, DatastoreError> {
        let bytes = chunked::encode_batch(snapshot)?;
        let count = snapshot.len() as u64;
        let shared = Arc::clone(&self.shared);
        blocking(move || shared.replace_blocking(expected, &bytes, count)).await
    }
}

fn parent_dir(path: &Path) -> &Path {
    path.parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
}

fn open_blocking(
    path: PathBuf,
    visit: &mut dyn FnMut(DataEntry),
) -> Result<Shared, DatastoreError> {
    let dir = parent_dir(&path);
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
    let (len, entries) = recover(&file, &path, visit)?;
    tracing::info!(path = %path.display(), bytes = len, entries, "file datastore open");
    Ok(Shared {
        path,
        state: RwLock::new(WriterState {
            file,
            len,
            entries,
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

/// Scans the file once (entries to `visit`), truncates it after the last complete entry and
/// returns the valid length and the entries in it.
fn recover(
    file: &File,
    path: &Path,
    visit: &mut dyn FnMut(DataEntry),
) -> Result<(u64, u64), DatastoreError> {
    let len = file.metadata().map_err(io_err("stat", path))?.len();
    let scanned = scan_file(file, path, len, visit)?;
    let valid = scanned.valid;
    if valid < len {
        tracing::warn!(path = %path.display(), removed = len - valid, "truncating a torn tail left by a crash");
        file.set_len(valid).map_err(io_err("truncate", path))?;
        file.sync_all().map_err(io_err("sync", path))?;
    }
    Ok((valid, scanned.entries))
}

impl Shared {
    fn append_blocking(&self, bytes: &[u8], entries: u64) -> Result<(), DatastoreError> {
        let mut state = self.state.write().map_err(poisoned)?;
        if state.broken {
            return Err(self.broken_error());
        }
        let written = (&state.file)
            .write_all(bytes)
            .and_then(|()| state.file.sync_data());
        if let Err(source) = written {
            let rollback = state
                .file
                .set_len(state.len)
                .and_then(|()| state.file.sync_data());
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
        state.entries += entries;
        Ok(())
    }

    fn replace_blocking(
        &self,
        expected: u64,
        bytes: &[u8],
        count: u64,
    ) -> Result<bool, DatastoreError> {
        let mut state = self.state.write().map_err(poisoned)?;
        if state.broken {
            return Err(self.broken_error());
        }
        if state.entries != expected {
            return Ok(false);
        }
        let mut tmp = self.path.clone().into_os_string();
        tmp.push(".compact");
        let tmp = PathBuf::from(tmp);
        let file = match write_replacement(&tmp, bytes) {
            Ok(file) => file,
            Err(e) => {
                let _ = std::fs::remove_file(&tmp);
                return Err(e);
            }
        };
        if let Err(source) = std::fs::rename(&tmp, &self.path) {
            let _ = std::fs::remove_file(&tmp);
            return Err(DatastoreError::Io {
                op: "rename",
                path: self.path.clone(),
                source,
            });
        }
        // The path names the new file from here on: switch to it even if the directory sync
        // fails (then a crash may bring back the old contents, which are equivalent).
        state.file = file;
        state.len = bytes.len() as u64;
        state.entries = count;
        let dir = parent_dir(&self.path);
        File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(io_err("sync directory", dir))?;
        Ok(true)
    }

    fn broken_error(&self) -> DatastoreError {
        DatastoreError::Io {
            op: "append",
            path: self.path.clone(),
            source: std::io::Error::other(
                "an earlier failed write could not be rolled back; reopen the store",
            ),
        }
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
        state
            .file
            .read_exact_at(&mut buf, position)
            .map_err(io_err("read", &self.path))?;
        Ok(buf)
    }
}

/// Writes `bytes` to a new file at `tmp` (0600), syncs it and takes its lock.
fn write_replacement(tmp: &Path, bytes: &[u8]) -> Result<File, DatastoreError> {
    match std::fs::remove_file(tmp) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            return Err(io_err("remove", tmp)(e));
        }
        _ => {}
    }
    let file = OpenOptions::new()
        .read(true)
        .append(true)
        .create_new(true)
        .mode(0o600)
        .open(tmp)
        .map_err(io_err("create", tmp))?;
    lock_exclusive(&file, tmp)?;
    (&file)
        .write_all(bytes)
        .and_then(|()| file.sync_all())
        .map_err(io_err("write", tmp))?;
    Ok(file)
}
