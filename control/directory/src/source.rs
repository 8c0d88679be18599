//! The directory as its readers see it: a source of signed entries by operator name. The broker,
//! the gRPC channels, the proxies' pin checks and the ControlService's admin check all read the
//! directory through [`DirectorySource`]; the directory client and the proxy's Hyper link implement it.

use std::collections::BTreeMap;
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;

use crate::entry::DirectoryEntry;

/// A boxed, sendable future (object-safe async in the source and channel traits).
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A snapshot of every directory entry by operator name.
pub type Entries = Arc<BTreeMap<String, DirectoryEntry>>;

/// Why a [`DirectorySource`] has no entries to give (and no fresh enough copy cached).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SourceError {
    /// The server holding the directory (sd, or the proxy's own Hyper node) did not answer.
    #[error("{directory} is unreachable: {reason}")]
    Unreachable {
        /// Which directory, as an operator reads it (`the service directory at https://…`).
        directory: String,
        /// What failed.
        reason: String,
    },
    /// A `json` directory's files could not be read or parsed.
    #[error("json directory {}: {reason}", path.display())]
    Files {
        /// The directory of files.
        path: PathBuf,
        /// What failed.
        reason: String,
    },
}

/// A source of directory entries.
pub trait DirectorySource: Send + Sync + 'static {
    /// The current entries (cached; refreshed as the source is configured; bounded wait when stale).
    fn entries(&self) -> BoxFuture<'_, Result<Entries, SourceError>>;
}
