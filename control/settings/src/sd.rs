//! Typed settings of the directory server `sd` (env `SD_SETTINGS`).

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use serde_json::Value;

use super::convert::{abs_paths, from_merged, seconds};
use super::datastore::{DatastoreSettings, RawDatastoreSettings};
use super::error::{FieldIssues, SettingsError};
use super::listeners::{
    JsonRpcServerSettings, MetricsSettings, RawJsonRpcServerSettings, RawMetricsSettings, optional,
    required,
};
use super::loader::{Loader, Provenance};

/// Environment variable that lists the `sd` settings paths.
pub const SD_SETTINGS_ENV: &str = "SD_SETTINGS";

/// Default largest JSON-RPC request body, in bytes (4 MiB): a `submitRecords` of a few hundred
/// signed records with PEM certificates fits; larger bodies are refused before parsing.
pub const DEFAULT_MAX_BODY_BYTES: u64 = 4 * 1024 * 1024;
/// Upper bound accepted for `limits.max_body_bytes` (64 MiB): the body is held in memory.
pub const MAX_MAX_BODY_BYTES: u64 = 64 * 1024 * 1024;
/// Default most records in one `submitRecords` call: each is verified (an ECDSA check plus a
/// chain verification) under the directory's append lock, so a call stays well under a second.
pub const DEFAULT_MAX_RECORDS_PER_SUBMIT: u64 = 1000;
/// Default time allowed for one request (seconds), from the first byte to the response.
pub const DEFAULT_REQUEST_TIMEOUT_SECS: f64 = 10.0;

/// Validated `sd` settings.
#[derive(Debug, Clone)]
pub struct SdSettings {
    /// The JSON-RPC API (`submitRecords`, `getRecords`, ...).
    pub jsonrpc_server: JsonRpcServerSettings,
    /// Storage and record verification.
    pub directory: SdDirectorySettings,
    /// Prometheus endpoint, if any.
    pub metrics: Option<MetricsSettings>,
    /// Tandem's request bounds.
    pub limits: SdLimits,
    /// Log directives (`info`, `warn,tandem_sd=debug`) applied at start and on every reload;
    /// `None` keeps `--level` / `RUST_LOG`. Checked by the program (it owns the log filter).
    pub log_level: Option<String>,
}

/// `directory:` of `sd`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SdDirectorySettings {
    /// Where records are stored.
    pub datastore: DatastoreSettings,
    /// Roots that signing certificates must chain to (at least one).
    pub ca_certificate_files: Vec<PathBuf>,
    /// Intermediates for that chain.
    pub ca_intermediate_certificate_files: Vec<PathBuf>,
}

/// `limits:` (Tandem addition), every field optional.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SdLimits {
    /// Largest request body, bytes (default [`DEFAULT_MAX_BODY_BYTES`], 1 KiB..=[`MAX_MAX_BODY_BYTES`]).
    pub max_body_bytes: u64,
    /// Most records per `submitRecords` (default [`DEFAULT_MAX_RECORDS_PER_SUBMIT`], 1..=100000).
    pub max_records_per_submit: u64,
    /// Time for one request (seconds in the file; default 10, 0.1..=600).
    pub request_timeout: Duration,
}

impl Default for SdLimits {
    fn default() -> Self {
        Self {
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            max_records_per_submit: DEFAULT_MAX_RECORDS_PER_SUBMIT,
            request_timeout: Duration::from_secs_f64(DEFAULT_REQUEST_TIMEOUT_SECS),
        }
    }
}

/// Raw top level of `sd` settings.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSdSettings {
    jsonrpc_server: Option<Value>,
    directory: Option<Value>,
    metrics: Option<Value>,
    limits: Option<Value>,
    log_level: Option<String>,
    /// The loader's record of the files' `vars` blocks; not a setting.
    #[serde(default, rename = "_vars")]
    _vars: Value,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSdDirectory {
    datastore: Value,
    #[serde(default)]
    ca_certificate_files: Vec<String>,
    #[serde(default)]
    ca_intermediate_certificate_files: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSdLimits {
    max_body_bytes: Option<u64>,
    max_records_per_submit: Option<u64>,
    request_timeout: Option<f64>,
}

impl TryFrom<RawSdDirectory> for SdDirectorySettings {
    type Error = FieldIssues;

    fn try_from(raw: RawSdDirectory) -> Result<Self, FieldIssues> {
        let mut issues = FieldIssues::default();
        let datastore = required::<RawDatastoreSettings, DatastoreSettings>(
            Some(&raw.datastore),
            "datastore",
            &mut issues,
        );
        let ca_certificate_files = abs_paths(
            &raw.ca_certificate_files,
            "ca_certificate_files",
            true,
            &mut issues,
        );
        let ca_intermediate_certificate_files = abs_paths(
            &raw.ca_intermediate_certificate_files,
            "ca_intermediate_certificate_files",
            false,
            &mut issues,
        );
        match datastore {
            Some(datastore) if issues.is_empty() => Ok(Self {
                datastore,
                ca_certificate_files,
                ca_intermediate_certificate_files,
            }),
            _ => Err(issues),
        }
    }
}

impl TryFrom<RawSdLimits> for SdLimits {
    type Error = FieldIssues;

    fn try_from(raw: RawSdLimits) -> Result<Self, FieldIssues> {
        let mut issues = FieldIssues::default();
        let defaults = Self::default();
        let max_body_bytes = raw.max_body_bytes.unwrap_or(defaults.max_body_bytes);
        if !(1024..=MAX_MAX_BODY_BYTES).contains(&max_body_bytes) {
            issues.push(
                "max_body_bytes",
                format!("must be between 1024 and {MAX_MAX_BODY_BYTES}, got {max_body_bytes}"),
            );
        }
        let max_records_per_submit = raw
            .max_records_per_submit
            .unwrap_or(defaults.max_records_per_submit);
        if !(1..=100_000).contains(&max_records_per_submit) {
            issues.push(
                "max_records_per_submit",
                format!("must be between 1 and 100000, got {max_records_per_submit}"),
            );
        }
        let request_timeout = match raw.request_timeout {
            Some(secs) => seconds(secs, "request_timeout", 0.1, 600.0, &mut issues),
            None => Some(defaults.request_timeout),
        };
        match request_timeout {
            Some(request_timeout) if issues.is_empty() => Ok(Self {
                max_body_bytes,
                max_records_per_submit,
                request_timeout,
            }),
            _ => Err(issues),
        }
    }
}

impl TryFrom<RawSdSettings> for SdSettings {
    type Error = FieldIssues;

    fn try_from(raw: RawSdSettings) -> Result<Self, FieldIssues> {
        let mut issues = FieldIssues::default();
        let jsonrpc_server = required::<RawJsonRpcServerSettings, JsonRpcServerSettings>(
            raw.jsonrpc_server.as_ref(),
            "jsonrpc_server",
            &mut issues,
        );
        let directory = required::<RawSdDirectory, SdDirectorySettings>(
            raw.directory.as_ref(),
            "directory",
            &mut issues,
        );
        let metrics = optional::<RawMetricsSettings, MetricsSettings>(
            raw.metrics.as_ref(),
            "metrics",
            &mut issues,
        );
        let limits = optional::<RawSdLimits, SdLimits>(raw.limits.as_ref(), "limits", &mut issues);
        match (jsonrpc_server, directory, metrics, limits) {
            (Some(jsonrpc_server), Some(directory), Some(metrics), Some(limits))
                if issues.is_empty() =>
            {
                Ok(Self {
                    jsonrpc_server,
                    directory,
                    metrics,
                    limits: limits.unwrap_or_default(),
                    log_level: raw.log_level,
                })
            }
            _ => Err(issues),
        }
    }
}

impl SdSettings {
    /// Loads the paths in `SD_SETTINGS` (files or directories, colon-separated).
    pub fn from_env() -> Result<Self, SettingsError> {
        let (value, prov) = Loader::default().load_from_env(SD_SETTINGS_ENV)?;
        Self::from_merged(&value, &prov)
    }

    /// Loads `paths` with variables from the process environment.
    pub fn load(paths: &[PathBuf]) -> Result<Self, SettingsError> {
        let (value, prov) = Loader::default().load_paths(paths)?;
        Self::from_merged(&value, &prov)
    }

    /// Converts already merged settings (see [`Loader`] to inject the environment).
    pub fn from_merged(value: &Value, prov: &Provenance) -> Result<Self, SettingsError> {
        from_merged::<RawSdSettings, Self>(value, prov)
    }
}

/// A summary for `check-settings`; secrets are masked.
impl fmt::Display for SdSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "jsonrpc_server: {}", self.jsonrpc_server)?;
        writeln!(f, "directory.datastore: {}", self.directory.datastore)?;
        writeln!(
            f,
            "directory.ca_certificate_files: {:?}",
            paths(&self.directory.ca_certificate_files)
        )?;
        writeln!(
            f,
            "directory.ca_intermediate_certificate_files: {:?}",
            paths(&self.directory.ca_intermediate_certificate_files)
        )?;
        if let Some(m) = &self.metrics {
            writeln!(f, "metrics: {}", m.bind_address)?;
        }
        if let Some(level) = &self.log_level {
            writeln!(f, "log_level: {level}")?;
        }
        write!(
            f,
            "limits: max_body_bytes={} max_records_per_submit={} request_timeout={:?}",
            self.limits.max_body_bytes,
            self.limits.max_records_per_submit,
            self.limits.request_timeout
        )
    }
}

pub(crate) fn paths(list: &[PathBuf]) -> Vec<String> {
    list.iter()
        .map(|p: &PathBuf| Path::display(p).to_string())
        .collect()
}
