//! [`DatastoreError`]: everything a datastore call can fail with.

use std::path::PathBuf;
use std::time::Duration;

use thiserror::Error;

use super::data_entry::EntryError;

/// A datastore failure. [`DatastoreError::kind`] is a stable label for metrics.
#[derive(Debug, Error)]
pub enum DatastoreError {
    /// File I/O failed.
    #[error("{op} {path}: {source}")]
    Io {
        /// What we were doing (`open`, `append`, `read`, ...).
        op: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// Another process (or another open store in this process) holds the file's append lock.
    #[error("{path} is locked by another datastore (one appender per file)")]
    Locked {
        /// The store file.
        path: PathBuf,
    },
    /// Stored bytes are not valid chunks or entries. `at` is a file offset or a Redis list index.
    #[error("corrupt datastore at {at}: {reason}")]
    Corrupt {
        /// File byte offset, or Redis list index, of the bad data.
        at: u64,
        /// What is wrong.
        reason: String,
    },
    /// An entry given to `append` cannot be encoded (too large).
    #[error("invalid entry: {0}")]
    Entry(#[from] EntryError),
    /// A batch given to the file store's `append` exceeds the file format's batch bound.
    #[error("batch of {len} encoded bytes exceeds the {max}-byte limit")]
    BatchTooLarge {
        /// The batch's encoded entry bytes.
        len: usize,
        /// The bound ([`super::batch::MAX_BATCH_LEN`]).
        max: usize,
    },
    /// Redis answered with an error, or the connection failed.
    #[error("redis {op}: {source}")]
    Redis {
        /// The command (`RPUSH`, `LRANGE`, `PING`, ...).
        op: &'static str,
        /// The client's error (never contains the password).
        #[source]
        source: redis::RedisError,
    },
    /// A Redis call did not finish in time.
    #[error("redis {op} timed out after {after:?}")]
    Timeout {
        /// The command.
        op: &'static str,
        /// The bound that expired.
        after: Duration,
    },
    /// The settings cannot be used (bad address, unsupported topology).
    #[error("datastore settings: {0}")]
    Config(String),
    /// The cursor points past the end of the store: it belongs to another store.
    #[error("cursor at {position} is past the end of the store ({len})")]
    CursorAhead {
        /// The cursor's position.
        position: u64,
        /// The store's length (file bytes or list length).
        len: u64,
    },
    /// The store no longer holds what the cursor read (a compaction by another writer, or a
    /// failover that lost an unreplicated tail): read it again from the start.
    #[error("the store was rewritten below position {position}: read it again from the start")]
    Rewritten {
        /// The cursor's position.
        position: u64,
    },
    /// Fewer replicas than `wait_replicas` confirmed an append in time: it is on the primary,
    /// not acknowledged (a failover may lose it).
    #[error("append confirmed by {acked} of {wanted} replicas in time")]
    NotReplicated {
        /// Replicas that confirmed.
        acked: u64,
        /// Replicas required.
        wanted: u8,
    },
    /// A blocking file task panicked or was cancelled.
    #[error("datastore task failed: {0}")]
    Task(String),
}

impl DatastoreError {
    /// A stable, low-cardinality label for metrics and logs.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Io { .. } => "io",
            Self::Locked { .. } => "locked",
            Self::Corrupt { .. } => "corrupt",
            Self::Entry(_) => "entry",
            Self::BatchTooLarge { .. } => "batch",
            Self::Redis { .. } => "redis",
            Self::Timeout { .. } => "timeout",
            Self::Config(_) => "config",
            Self::CursorAhead { .. } => "cursor",
            Self::Rewritten { .. } => "rewritten",
            Self::NotReplicated { .. } => "not_replicated",
            Self::Task(_) => "task",
        }
    }

    /// Whether retrying the same call later may succeed (the backend was unreachable or slow).
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Timeout { .. } => true,
            Self::Redis { source, .. } => {
                source.is_io_error()
                    || source.is_timeout()
                    || source.is_connection_dropped()
                    || source.is_connection_refusal()
            }
            _ => false,
        }
    }

    /// Whether the master may have moved (a failover): the connection failed, or the server
    /// answered as a replica, as a master without its replicas, or while loading its data.
    pub fn needs_master(&self) -> bool {
        match self {
            Self::Redis { source, .. } => {
                self.is_transient()
                    || matches!(
                        source.kind(),
                        redis::ErrorKind::ReadOnly
                            | redis::ErrorKind::MasterDown
                            | redis::ErrorKind::BusyLoadingError
                            | redis::ErrorKind::TryAgain
                    )
                    || source.code() == Some("NOREPLICAS")
            }
            other => other.is_transient(),
        }
    }

    /// Whether the reader must read the store again from the start (its cursor no longer fits).
    pub fn is_rewritten(&self) -> bool {
        matches!(self, Self::Rewritten { .. } | Self::CursorAhead { .. })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_are_stable_labels() {
        let e = DatastoreError::Timeout {
            op: "RPUSH",
            after: Duration::from_secs(1),
        };
        assert_eq!(e.kind(), "timeout");
        assert!(e.is_transient());
        let e = DatastoreError::Locked { path: "/x".into() };
        assert_eq!(e.kind(), "locked");
        assert!(!e.is_transient());
        assert_eq!(
            e.to_string(),
            "/x is locked by another datastore (one appender per file)"
        );
    }

    fn redis(kind: redis::ErrorKind, what: &'static str) -> DatastoreError {
        DatastoreError::Redis {
            op: "EVAL",
            source: redis::RedisError::from((kind, what)),
        }
    }

    #[test]
    fn a_replica_or_unreachable_master_means_resolving_it_again() {
        for e in [
            redis(redis::ErrorKind::ReadOnly, "READONLY"),
            redis(redis::ErrorKind::MasterDown, "MASTERDOWN"),
            redis(redis::ErrorKind::BusyLoadingError, "LOADING"),
            redis(redis::ErrorKind::IoError, "refused"),
            DatastoreError::Timeout {
                op: "EVAL",
                after: Duration::from_secs(1),
            },
        ] {
            assert!(e.needs_master(), "{e}");
        }
        for e in [
            redis(redis::ErrorKind::ResponseError, "ERR wrong"),
            DatastoreError::NotReplicated {
                acked: 0,
                wanted: 1,
            },
            DatastoreError::Rewritten { position: 3 },
        ] {
            assert!(!e.needs_master(), "{e}");
        }
        assert!(DatastoreError::Rewritten { position: 3 }.is_rewritten());
        assert!(
            DatastoreError::CursorAhead {
                position: 3,
                len: 1
            }
            .is_rewritten()
        );
    }
}
