//! Typed datastore settings (`datastore: {type, settings}`), as the original's datastore forms define them.

use std::fmt;
use std::path::PathBuf;

use serde::Deserialize;
use serde_json::Value;

use super::convert::{abs_path, parse_value};
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
}

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
    issues.into_result(RedisDatastoreSettings {
        addresses,
        key,
        master_name: raw.master_name.unwrap_or_default(),
        database: u8::try_from(database).unwrap_or(0),
        password: Secret::new(password),
    })
}

impl fmt::Display for DatastoreSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::File(file) => write!(f, "file {}", file.filename.display()),
            Self::Redis(r) => write!(
                f,
                "redis addresses={:?} key={} master_name={:?} database={} password={}",
                r.addresses, r.key, r.master_name, r.database, r.password
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
