//! Compaction of the file store: [`FileDatastore::replace_all`](super::FileDatastore::replace_all)
//! swaps in a synced `<file>.compact` by rename, under the write lock, when the store holds exactly
//! the entries the caller expects.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::{
    BLOCK_LEN, DataEntry, DatastoreError, Decoder, Shared, io_err, lock_exclusive, poisoned,
    stream, sync_dir, walk_err,
};

impl Shared {
    /// Under the write lock: counts the stored entries and, when they are `expected`, swaps in a
    /// file holding `bytes`.
    pub(super) fn replace_blocking(
        &self,
        expected: u64,
        bytes: &[u8],
    ) -> Result<bool, DatastoreError> {
        let mut state = self.state.write().map_err(poisoned)?;
        if state.broken {
            return Err(DatastoreError::Io {
                op: "replace",
                path: self.path.clone(),
                source: std::io::Error::other(
                    "an earlier failed write could not be rolled back; reopen the store",
                ),
            });
        }
        // Count the stored entries in bounded memory: one block and one batch at a time.
        let mut held = 0u64;
        let mut decoder = Decoder::<DataEntry>::default();
        let mut released = Vec::new();
        stream::walk(&*state.file, 0, state.len, BLOCK_LEN, |chunk, end| {
            decoder.push(chunk, end, &mut released)?;
            held += released.len() as u64;
            released.clear();
            Ok(())
        })
        .map_err(walk_err(&self.path))?;
        if held != expected {
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
        // fails (a crash may then bring back the old contents, which are equivalent).
        state.file = Arc::new(file);
        state.len = bytes.len() as u64;
        sync_dir(
            self.path
                .parent()
                .filter(|d| !d.as_os_str().is_empty())
                .unwrap_or(Path::new(".")),
        )?;
        Ok(true)
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
