//! Typed datastore settings (`datastore: {type, settings}`), as the original's datastore forms define them.

use std::path::PathBuf;

use super::secret::Secret;

/// Where a service keeps its append-only entries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DatastoreSettings {
    /// The embedded append-only file (Tandem's default).
    File(FileDatastoreSettings),
    /// A Redis list (`RPUSH`/`LRANGE`), the original's shared datastore.
    Redis(RedisDatastoreSettings),
}

/// `type: file`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileDatastoreSettings {
    /// The store file (absolute). Its directory is created (0700) when missing.
    pub filename: PathBuf,
}

/// `type: redis`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedisDatastoreSettings {
    /// `host:port` addresses (at least one). With `master_name`, these are Sentinel addresses.
    pub addresses: Vec<String>,
    /// The list key (default `entries`).
    pub key: String,
    /// Sentinel master name; empty means a plain Redis server.
    pub master_name: String,
    /// Database index, 0..=100.
    pub database: u8,
    /// Password; may be empty.
    pub password: Secret,
}
