//! Where settings files come from: the file system in production, anything in tests.

use std::io::{self, Read};
use std::path::{Path, PathBuf};

/// The loader's only window on the outside world (besides the environment), so that its core
/// stays free of I/O and can be driven from memory in tests.
pub trait Source {
    /// Whether `path` is a directory.
    fn is_dir(&self, path: &Path) -> io::Result<bool>;
    /// The non-directory entries of directory `path`, in any order.
    fn list_files(&self, path: &Path) -> io::Result<Vec<PathBuf>>;
    /// Reads at most `limit + 1` bytes of `path` (so the caller can tell "too large").
    fn read(&self, path: &Path, limit: u64) -> io::Result<Vec<u8>>;
}

/// The real file system.
#[derive(Debug, Clone, Copy, Default)]
pub struct FsSource;

impl Source for FsSource {
    fn is_dir(&self, path: &Path) -> io::Result<bool> {
        Ok(std::fs::metadata(path)?.is_dir())
    }

    fn list_files(&self, path: &Path) -> io::Result<Vec<PathBuf>> {
        let mut files = Vec::new();
        for entry in std::fs::read_dir(path)? {
            let entry = entry?;
            // Follow symlinks: a link to a file counts as a file, as in the original.
            if !std::fs::metadata(entry.path())?.is_dir() {
                files.push(entry.path());
            }
        }
        Ok(files)
    }

    fn read(&self, path: &Path, limit: u64) -> io::Result<Vec<u8>> {
        let mut bytes = Vec::new();
        std::fs::File::open(path)?
            .take(limit.saturating_add(1))
            .read_to_end(&mut bytes)?;
        Ok(bytes)
    }
}
