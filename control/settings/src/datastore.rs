//! Typed datastore settings (`datastore: {type, settings}`), as the original's datastore forms define them.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;
use serde_json::Value;

use super::convert::{abs_path, parse_value, seconds};
use super::error::FieldIssues;
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
    /// Replicas that must confirm a write (`WAIT`) before an append is acknowledged (key
    /// `wait_replicas`, 0..=[`MAX_WAIT_REPLICAS`], default 0: the primary's answer is enough).
    pub wait_replicas: u8,
    /// How long an append waits for `wait_replicas` confirmations (key `wait_timeout`, seconds,
    /// 0.01..=10, default 1); fewer confirmations in time is an error, never an acknowledgement.
    pub wait_timeout: Duration,
    /// With `master_name`: how long one datastore call keeps retrying after Redis was unreachable
    /// or answered as a replica (a failover), resolving the master through Sentinel again before
    /// each retry (a plain server fails fast instead) (key
    /// `failover_timeout`, seconds, 0..=120, default 15; 0 = no retry). Only idempotent calls
    /// retry: reads and compare-and-appends.
    pub failover_timeout: Duration,
}

impl RedisDatastoreSettings {
    /// Settings for one plain Redis server at `address` and list `key`, database 0, no
    /// password, the defaults for everything else.
    pub fn plain(address: String, key: String) -> Self {
        Self {
            addresses: vec![address],
            key,
            master_name: String::new(),
            database: 0,
            password: Secret::default(),
            wait_replicas: 0,
            wait_timeout: DEFAULT_WAIT_TIMEOUT,
            failover_timeout: DEFAULT_FAILOVER_TIMEOUT,
        }
    }
}

/// Most replicas an append may wait for: 16 (more replicas than any Sentinel setup runs).
pub const MAX_WAIT_REPLICAS: i64 = 16;
/// Default `wait_timeout`: 1 s, the original's Redis write timeout.
pub const DEFAULT_WAIT_TIMEOUT: Duration = Duration::from_secs(1);
/// Default `failover_timeout`: 15 s, above Sentinel's usual `down-after-milliseconds` (5 s) plus
/// its election and promotion (a few seconds).
pub const DEFAULT_FAILOVER_TIMEOUT: Duration = Duration::from_secs(15);

/// Highest Redis database index accepted (the original's bound).
pub const MAX_REDIS_DATABASE: i64 = 100;

/// Raw `datastore: {type, settings}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDatastoreSettings {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    settings: Value,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFileSettings {
    filename: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRedisSettings {
    #[serde(default)]
    addresses: Option<Vec<String>>,
    #[serde(default)]
    key: Option<String>,
    #[serde(default)]
    master_name: Option<String>,
    #[serde(default)]
    database: Option<i64>,
    #[serde(default)]
    password: Option<String>,
    #[serde(default)]
    wait_replicas: Option<i64>,
    #[serde(default)]
    wait_timeout: Option<f64>,
    #[serde(default)]
    failover_timeout: Option<f64>,
}

impl TryFrom<RawDatastoreSettings> for DatastoreSettings {
    type Error = FieldIssues;

    fn try_from(raw: RawDatastoreSettings) -> Result<Self, FieldIssues> {
        let mut issues = FieldIssues::default();
        let settings = if raw.settings.is_null() {
            Value::Object(Default::default())
        } else {
            raw.settings
        };
        match raw.kind.as_str() {
            "file" => {
                let file: RawFileSettings = parse_value(&settings).map_err(nested)?;
                let filename = abs_path(&file.filename, "settings.filename", &mut issues);
                match filename {
                    Some(filename) => Ok(Self::File(FileDatastoreSettings { filename })),
                    None => Err(issues),
                }
            }
            "redis" => {
                let redis: RawRedisSettings = parse_value(&settings).map_err(nested)?;
                redis_settings(redis).map(Self::Redis).map_err(nested)
            }
            other => {
                issues.push(
                    "type",
                    format!("unknown datastore type {other:?} (expected file or redis)"),
                );
                Err(issues)
            }
        }
    }
}

fn nested(inner: FieldIssues) -> FieldIssues {
    let mut issues = FieldIssues::default();
    issues.nest("settings", inner);
    issues
}

fn redis_settings(raw: RawRedisSettings) -> Result<RedisDatastoreSettings, FieldIssues> {
    let mut issues = FieldIssues::default();
    let addresses = raw.addresses.unwrap_or_default();
    if addresses.is_empty() {
        issues.push("addresses", "required: list at least one host:port");
    }
    let database = raw.database.unwrap_or(0);
    if !(0..=MAX_REDIS_DATABASE).contains(&database) {
        issues.push(
            "database",
            format!("must be between 0 and {MAX_REDIS_DATABASE}, got {database}"),
        );
    }
    let Some(password) = raw.password else {
        issues.push(
            "password",
            "required key is missing (write password: \"\" for none)",
        );
        return Err(issues);
    };
    let key = raw.key.unwrap_or_else(|| "entries".to_owned());
    if key.is_empty() {
        issues.push("key", "must not be empty");
    }
    let wait_replicas = raw.wait_replicas.unwrap_or(0);
    if !(0..=MAX_WAIT_REPLICAS).contains(&wait_replicas) {
        issues.push(
            "wait_replicas",
            format!("must be between 0 and {MAX_WAIT_REPLICAS}, got {wait_replicas}"),
        );
    }
    let wait_timeout = match raw.wait_timeout {
        Some(s) => seconds(s, "wait_timeout", 0.01, 10.0, &mut issues),
        None => Some(DEFAULT_WAIT_TIMEOUT),
    };
    let failover_timeout = match raw.failover_timeout {
        Some(s) => seconds(s, "failover_timeout", 0.0, 120.0, &mut issues),
        None => Some(DEFAULT_FAILOVER_TIMEOUT),
    };
    issues.into_result(RedisDatastoreSettings {
        addresses,
        key,
        master_name: raw.master_name.unwrap_or_default(),
        database: u8::try_from(database).unwrap_or(0),
        password: Secret::new(password),
        wait_replicas: u8::try_from(wait_replicas).unwrap_or(0),
        wait_timeout: wait_timeout.unwrap_or(DEFAULT_WAIT_TIMEOUT),
        failover_timeout: failover_timeout.unwrap_or(DEFAULT_FAILOVER_TIMEOUT),
    })
}

impl fmt::Display for DatastoreSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::File(file) => write!(f, "file {}", file.filename.display()),
            Self::Redis(r) => write!(
                f,
                "redis addresses={:?} key={} master_name={:?} database={} password={} wait_replicas={} wait_timeout={:?} failover_timeout={:?}",
                r.addresses,
                r.key,
                r.master_name,
                r.database,
                r.password,
                r.wait_replicas,
                r.wait_timeout,
                r.failover_timeout
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::convert::convert;

    fn ds(v: Value) -> Result<DatastoreSettings, FieldIssues> {
        convert::<RawDatastoreSettings, DatastoreSettings>(&v)
    }

    #[test]
    fn redis_defaults_and_masked_password() {
        let d = ds(json!({"type": "redis", "settings": {"addresses": ["127.0.0.1:6379"], "password": "pw"}})).unwrap();
        let DatastoreSettings::Redis(r) = &d else {
            panic!("not redis: {d:?}")
        };
        assert_eq!(
            (r.key.as_str(), r.master_name.as_str(), r.database),
            ("entries", "", 0)
        );
        assert_eq!(r.password.expose(), "pw");
        assert!(!d.to_string().contains("pw"), "{d}");
    }

    #[test]
    fn redis_bounds_and_required_keys() {
        let e = ds(json!({"type": "redis", "settings": {"addresses": [], "database": 101}}))
            .unwrap_err();
        let keys: Vec<&str> = e.0.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(
            keys,
            vec![
                "settings.addresses",
                "settings.database",
                "settings.password"
            ]
        );
    }

    #[test]
    fn redis_replication_and_failover_keys() {
        let d = ds(json!({"type": "redis", "settings": {"addresses": ["s:26379"], "password": "", "master_name": "m", "wait_replicas": 1, "wait_timeout": 0.5, "failover_timeout": 30}})).unwrap();
        let DatastoreSettings::Redis(r) = &d else {
            panic!("not redis: {d:?}")
        };
        assert_eq!(r.wait_replicas, 1);
        assert_eq!(r.wait_timeout, Duration::from_millis(500));
        assert_eq!(r.failover_timeout, Duration::from_secs(30));
        let d = ds(json!({"type": "redis", "settings": {"addresses": ["s:1"], "password": ""}}))
            .unwrap();
        let DatastoreSettings::Redis(r) = &d else {
            panic!("not redis: {d:?}")
        };
        assert_eq!(
            (r.wait_replicas, r.wait_timeout, r.failover_timeout),
            (0, DEFAULT_WAIT_TIMEOUT, DEFAULT_FAILOVER_TIMEOUT)
        );
        let e = ds(json!({"type": "redis", "settings": {"addresses": ["s:1"], "password": "", "wait_replicas": 17, "wait_timeout": 0, "failover_timeout": -1}})).unwrap_err();
        let keys: Vec<&str> = e.0.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(
            keys,
            vec![
                "settings.wait_replicas",
                "settings.wait_timeout",
                "settings.failover_timeout"
            ]
        );
    }

    #[test]
    fn file_needs_an_absolute_filename() {
        let d = ds(json!({"type": "file", "settings": {"filename": "/a/b/../x.records"}})).unwrap();
        assert_eq!(
            d,
            DatastoreSettings::File(FileDatastoreSettings {
                filename: "/a/x.records".into()
            })
        );
        let e = ds(json!({"type": "file", "settings": {"filename": "x"}})).unwrap_err();
        assert_eq!(e.0[0].0, "settings.filename");
        let e = ds(json!({"type": "sql"})).unwrap_err();
        assert_eq!(e.0[0].0, "type");
    }
}
