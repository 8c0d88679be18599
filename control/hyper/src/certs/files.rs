//! File I/O for the PKI: private files are created 0600 (never chmod-ed after the fact), directories
//! 0700, every write goes through a temporary file and a rename, every read is size-bounded.

use std::fs::{DirBuilder, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use super::CertsError;

/// Largest PEM or JSON file we read back, in bytes (1 MiB): a certificate chain is a few KiB and
/// the records file for [`MAX_OPERATORS`](super::MAX_OPERATORS) operators stays well below this.
pub(crate) const MAX_READ_BYTES: u64 = 1024 * 1024;

/// Permissions of private keys: owner read/write only.
pub(crate) const PRIVATE_MODE: u32 = 0o600;

/// Permissions of certificates and the records file: public material.
pub(crate) const PUBLIC_MODE: u32 = 0o644;

/// Permissions of directories we create.
pub(crate) const DIR_MODE: u32 = 0o700;

/// Creates `dir` (and missing parents) with mode 0700; an existing directory is left as it is.
pub(crate) fn ensure_dir(dir: &Path) -> Result<(), CertsError> {
    DirBuilder::new()
        .recursive(true)
        .mode(DIR_MODE)
        .create(dir)
        .map_err(|e| CertsError::io(dir, e))
}

/// Writes `bytes` to `path` atomically: a new temporary file created with `mode`, then a rename.
pub(crate) fn write_file(path: &Path, bytes: &[u8], mode: u32) -> Result<(), CertsError> {
    let tmp = temp_path(path);
    let result = (|| {
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        // Best effort: the temporary file may not exist if `open` failed.
        let _ = std::fs::remove_file(&tmp);
    }
    result.map_err(|e| CertsError::io(path, e))
}

fn temp_path(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let nonce: u64 = rand::random();
    path.with_file_name(format!(".{name}.tmp-{nonce:016x}"))
}

/// Reads a whole file of at most [`MAX_READ_BYTES`]; `Ok(None)` if it does not exist.
pub(crate) fn read_bounded(path: &Path) -> Result<Option<Vec<u8>>, CertsError> {
    let file = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(CertsError::io(path, e)),
    };
    let mut bytes = Vec::new();
    file.take(MAX_READ_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| CertsError::io(path, e))?;
    if bytes.len() as u64 > MAX_READ_BYTES {
        return Err(CertsError::io(
            path,
            std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("larger than {MAX_READ_BYTES} bytes"),
            ),
        ));
    }
    Ok(Some(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn private_files_are_created_0600_and_replaced_atomically() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k.key");
        write_file(&path, b"one", PRIVATE_MODE).unwrap();
        write_file(&path, b"two", PRIVATE_MODE).unwrap();
        let meta = std::fs::metadata(&path).unwrap();
        assert_eq!(meta.permissions().mode() & 0o777, 0o600);
        assert_eq!(read_bounded(&path).unwrap().unwrap(), b"two");
        assert_eq!(
            std::fs::read_dir(dir.path()).unwrap().count(),
            1,
            "temp file left"
        );
    }

    #[test]
    fn created_directories_are_0700_and_missing_files_read_as_none() {
        let dir = tempfile::tempdir().unwrap();
        let sub = dir.path().join("a/b");
        ensure_dir(&sub).unwrap();
        let mode = std::fs::metadata(&sub).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o700);
        assert!(read_bounded(&sub.join("none")).unwrap().is_none());
    }
}
