//! The `json` directory (SPEC §3.7): unsigned `{"records": [ChangeRecord...]}` files (a file, or
//! every file of a directory whose name matches the original's unanchored `.json`, in name order),
//! re-read only when a file's modification time or size changes, or files come or go.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::SystemTime;

use serde::Deserialize;

use crate::broker::types::{Entries, SourceError};
use tandem_directory::entry::{DirectoryEntry, integrate};
use tandem_directory::record::{ChangeRecord, SignedChangeRecord};

/// Most records files read from one directory (a directory of JSON is a dev/test setup).
pub const MAX_JSON_FILES: usize = 1000;
/// The largest records file read, in bytes (the dev directory is a few KiB).
pub const MAX_JSON_FILE_BYTES: u64 = 16 * 1024 * 1024;

#[derive(Deserialize)]
struct RecordsFile {
    records: Vec<ChangeRecord>,
}

/// (path, modified, length) of every file read.
type Stamp = Vec<(PathBuf, Option<SystemTime>, u64)>;

#[derive(Debug, Default)]
struct Loaded {
    stamp: Option<Stamp>,
    entries: Entries,
}

#[derive(Debug)]
pub(super) struct JsonDirectory {
    path: PathBuf,
    // std Mutex: held while checking and (rarely) re-reading small local files; no await inside.
    loaded: Mutex<Loaded>,
}

impl JsonDirectory {
    pub(super) fn new(path: PathBuf) -> Self {
        Self {
            path,
            loaded: Mutex::new(Loaded::default()),
        }
    }

    /// The entries, re-read if the files changed since the last call.
    pub(super) fn entries(&self) -> Result<Entries, SourceError> {
        let failed = |reason: String| SourceError::Files {
            path: self.path.clone(),
            reason,
        };
        let stamp = stamp(&self.path).map_err(failed)?;
        let mut loaded = self.loaded.lock().unwrap_or_else(PoisonError::into_inner);
        if loaded.stamp.as_ref() != Some(&stamp) {
            let entries = load(&stamp).map_err(failed)?;
            *loaded = Loaded {
                stamp: Some(stamp),
                entries: Arc::new(entries),
            };
        }
        Ok(loaded.entries.clone())
    }
}

fn stamp(path: &Path) -> Result<Stamp, String> {
    let meta = std::fs::metadata(path).map_err(|e| format!("cannot read: {e}"))?;
    let files = if meta.is_dir() {
        records_files(path)?
    } else {
        vec![path.to_owned()]
    };
    files
        .into_iter()
        .map(|file| {
            let meta = std::fs::metadata(&file).map_err(|e| format!("{}: {e}", file.display()))?;
            Ok((file, meta.modified().ok(), meta.len()))
        })
        .collect()
}

/// Files of `dir` whose name matches `.json` (any character, then `json`), sorted by name.
fn records_files(dir: &Path) -> Result<Vec<PathBuf>, String> {
    let mut files = Vec::new();
    for item in std::fs::read_dir(dir).map_err(|e| format!("cannot list: {e}"))? {
        let item = item.map_err(|e| format!("cannot list: {e}"))?;
        let name = item.file_name().to_string_lossy().into_owned();
        let is_file = item.file_type().map(|t| !t.is_dir()).unwrap_or(false);
        if is_file && name.get(1..).is_some_and(|rest| rest.contains("json")) {
            if files.len() >= MAX_JSON_FILES {
                return Err(format!("more than {MAX_JSON_FILES} records files"));
            }
            files.push(item.path());
        }
    }
    files.sort();
    Ok(files)
}

fn load(stamp: &Stamp) -> Result<BTreeMap<String, DirectoryEntry>, String> {
    let mut entries: BTreeMap<String, DirectoryEntry> = BTreeMap::new();
    for (file, _, len) in stamp {
        if *len > MAX_JSON_FILE_BYTES {
            return Err(format!(
                "{}: larger than {MAX_JSON_FILE_BYTES} bytes",
                file.display()
            ));
        }
        let bytes = std::fs::read(file).map_err(|e| format!("{}: {e}", file.display()))?;
        let parsed: RecordsFile =
            serde_json::from_slice(&bytes).map_err(|e| format!("{}: {e}", file.display()))?;
        for record in parsed.records {
            let name = record.name.clone();
            // Unsigned: the json directory carries no hashes or signatures.
            let unsigned = SignedChangeRecord {
                parent_hash: String::new(),
                hash: String::new(),
                signature: None,
                record,
            };
            let entry = entries
                .entry(name.clone())
                .or_insert_with(|| DirectoryEntry::new(name));
            integrate(entry, &unsigned).map_err(|e| format!("{}: {e}", file.display()))?;
        }
    }
    Ok(entries)
}
