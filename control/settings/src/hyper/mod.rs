//! Typed settings of the operator server `hyper` (env `HYPER_SETTINGS`).

mod channels;
mod directory;
mod gateway;

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;
use serde_json::Value;

pub use channels::{
    ChannelKind, ChannelSettings, GrpcClientSettings, GrpcServerSettings, JsonRpcClientSettings,
};
pub use directory::{
    ApiDirectorySettings, DEFAULT_CACHE_ENTRIES_FOR_SECS, DirectoryClientSettings,
    DirectorySettings, JsonDirectorySettings, MAX_CACHE_ENTRIES_FOR_SECS,
};
pub use gateway::{
    ALLOWED_CLIENTS_KEY, GatewaySettings, MAX_ALLOWED_CLIENTS, MAX_CLIENT_NAME_BYTES,
};

use crate::convert::{abs_path, abs_paths, from_merged, seconds};
use crate::error::{FieldIssues, SettingsError};
use crate::listeners::{MetricsSettings, RawMetricsSettings, optional, required};
use crate::loader::{Loader, Provenance};
use crate::sd::paths;

/// Environment variable that lists the `hyper` settings paths.
pub const HYPER_SETTINGS_ENV: &str = "HYPER_SETTINGS";
/// Default time for one call to a peer, end to end (seconds).
pub const DEFAULT_CALL_TIMEOUT_SECS: f64 = 10.0;
/// Default time to establish a connection to a peer (TCP + TLS, or a proxy pairing), seconds.
pub const DEFAULT_CONNECT_TIMEOUT_SECS: f64 = 5.0;

/// Validated `hyper` settings.
#[derive(Debug, Clone)]
pub struct HyperSettings {
    /// The operator's name (its certificate's CN and directory entry).
    pub name: String,
    /// Where peers are found.
    pub directory: DirectorySettings,
    /// Channels, in file order.
    pub channels: Vec<ChannelSettings>,
    /// Record signing identity for `hyper sd ...` (optional).
    pub signing: Option<SigningSettings>,
    /// Prometheus endpoint (optional).
    pub metrics: Option<MetricsSettings>,
    /// Tandem's timeouts.
    pub timeouts: Timeouts,
    /// Log directives (`info`, `warn,tandem_hyper=debug`) applied at start and on every reload;
    /// `None` keeps `--level` / `RUST_LOG`. Checked by the program (it owns the log filter).
    pub log_level: Option<String>,
}

/// `signing:` (for `hyper sd submit-records` and friends).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SigningSettings {
    /// Signer name; `None` means the operator's `name`.
    pub name: Option<String>,
    /// The signing certificate (ECDSA P-256, leaf first).
    pub certificate_file: PathBuf,
    /// Its key (`EC PRIVATE KEY` PEM).
    pub key_file: PathBuf,
    /// The root the signing certificate chains to.
    pub ca_certificate_file: PathBuf,
    /// Intermediates for that chain.
    pub ca_intermediate_certificate_files: Vec<PathBuf>,
}

/// `timeouts:` (Tandem addition; seconds in the file).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// One call to a peer, end to end (default 10 s, 0.1..=3600).
    pub call: Duration,
    /// Establishing a connection to a peer (default 5 s, 0.1..=600).
    pub connect: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Self {
            call: Duration::from_secs_f64(DEFAULT_CALL_TIMEOUT_SECS),
            connect: Duration::from_secs_f64(DEFAULT_CONNECT_TIMEOUT_SECS),
        }
    }
}

/// Raw top level of `hyper` settings.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawHyperSettings {
    name: Option<String>,
    directory: Option<Value>,
    #[serde(default)]
    channels: Vec<Value>,
    signing: Option<Value>,
    metrics: Option<Value>,
    timeouts: Option<Value>,
    log_level: Option<String>,
    /// The loader's record of the files' `vars` blocks; not a setting.
    #[serde(default, rename = "_vars")]
    _vars: Value,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSigning {
    name: Option<String>,
    certificate_file: String,
    key_file: String,
    ca_certificate_file: String,
    #[serde(default)]
    ca_intermediate_certificate_files: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTimeouts {
    call: Option<f64>,
    connect: Option<f64>,
}

impl TryFrom<RawSigning> for SigningSettings {
    type Error = FieldIssues;

    fn try_from(raw: RawSigning) -> Result<Self, FieldIssues> {
        let mut issues = FieldIssues::default();
        let certificate_file = abs_path(&raw.certificate_file, "certificate_file", &mut issues);
        let key_file = abs_path(&raw.key_file, "key_file", &mut issues);
        let ca_certificate_file =
            abs_path(&raw.ca_certificate_file, "ca_certificate_file", &mut issues);
        let ca_intermediate_certificate_files = abs_paths(
            &raw.ca_intermediate_certificate_files,
            "ca_intermediate_certificate_files",
            false,
            &mut issues,
        );
        if raw.name.as_deref() == Some("") {
            issues.push(
                "name",
                "must not be empty (omit it to use the operator name)",
            );
        }
        match (certificate_file, key_file, ca_certificate_file) {
            (Some(certificate_file), Some(key_file), Some(ca_certificate_file))
                if issues.is_empty() =>
            {
                Ok(Self {
                    name: raw.name,
                    certificate_file,
                    key_file,
                    ca_certificate_file,
                    ca_intermediate_certificate_files,
                })
            }
            _ => Err(issues),
        }
    }
}

impl TryFrom<RawTimeouts> for Timeouts {
    type Error = FieldIssues;

    fn try_from(raw: RawTimeouts) -> Result<Self, FieldIssues> {
        let mut issues = FieldIssues::default();
        let defaults = Self::default();
        let call = raw.call.map_or(Some(defaults.call), |s| {
            seconds(s, "call", 0.1, 3600.0, &mut issues)
        });
        let connect = raw.connect.map_or(Some(defaults.connect), |s| {
            seconds(s, "connect", 0.1, 600.0, &mut issues)
        });
        match (call, connect) {
            (Some(call), Some(connect)) => Ok(Self { call, connect }),
            _ => Err(issues),
        }
    }
}

impl TryFrom<RawHyperSettings> for HyperSettings {
    type Error = FieldIssues;

    fn try_from(raw: RawHyperSettings) -> Result<Self, FieldIssues> {
        let mut issues = FieldIssues::default();
        let name = raw.name.unwrap_or_default();
        if name.is_empty() {
            issues.push("name", "required: the operator name");
        }
        let directory = required::<directory::RawDirectory, DirectorySettings>(
            raw.directory.as_ref(),
            "directory",
            &mut issues,
        );
        let channels = channels::channels(&raw.channels, &mut issues);
        let signing =
            optional::<RawSigning, SigningSettings>(raw.signing.as_ref(), "signing", &mut issues);
        let metrics = optional::<RawMetricsSettings, MetricsSettings>(
            raw.metrics.as_ref(),
            "metrics",
            &mut issues,
        );
        let timeouts =
            optional::<RawTimeouts, Timeouts>(raw.timeouts.as_ref(), "timeouts", &mut issues);
        match (directory, signing, metrics, timeouts) {
            (Some(directory), Some(signing), Some(metrics), Some(timeouts))
                if issues.is_empty() =>
            {
                Ok(Self {
                    name,
                    directory,
                    channels,
                    signing,
                    metrics,
                    timeouts: timeouts.unwrap_or_default(),
                    log_level: raw.log_level,
                })
            }
            _ => Err(issues),
        }
    }
}

impl HyperSettings {
    /// Loads the paths in `HYPER_SETTINGS` (files or directories, colon-separated).
    pub fn from_env() -> Result<Self, SettingsError> {
        let (value, prov) = Loader::default().load_from_env(HYPER_SETTINGS_ENV)?;
        Self::from_merged(&value, &prov)
    }

    /// Loads `paths` with variables from the process environment.
    pub fn load(paths: &[PathBuf]) -> Result<Self, SettingsError> {
        let (value, prov) = Loader::default().load_paths(paths)?;
        Self::from_merged(&value, &prov)
    }

    /// Converts already merged settings (see [`Loader`] to inject the environment).
    pub fn from_merged(value: &Value, prov: &Provenance) -> Result<Self, SettingsError> {
        from_merged::<RawHyperSettings, Self>(value, prov)
    }

    /// What `check-settings` and start-up warn about: a gateway that cannot verify its callers.
    pub fn warnings(&self) -> Vec<String> {
        self.channels
            .iter()
            .filter_map(|c| match &c.kind {
                ChannelKind::JsonRpcServer(g) => g.unverified_warning(&self.name),
                _ => None,
            })
            .collect()
    }

    /// The first channel of the given `type:` name, if configured.
    pub fn channel(&self, type_name: &str) -> Option<&ChannelSettings> {
        self.channels
            .iter()
            .find(|c| c.kind.type_name() == type_name)
    }
}

/// A summary for `check-settings`; secrets are masked.
impl fmt::Display for HyperSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "name: {}", self.name)?;
        writeln!(f, "directory: {}", self.directory)?;
        for (i, channel) in self.channels.iter().enumerate() {
            writeln!(f, "channels[{i}]: {channel}")?;
        }
        if let Some(s) = &self.signing {
            writeln!(
                f,
                "signing: name={} cert={} key={} ca={} intermediates={:?}",
                s.name.as_deref().unwrap_or(&self.name),
                s.certificate_file.display(),
                s.key_file.display(),
                s.ca_certificate_file.display(),
                paths(&s.ca_intermediate_certificate_files)
            )?;
        }
        if let Some(m) = &self.metrics {
            writeln!(f, "metrics: {}", m.bind_address)?;
        }
        write!(
            f,
            "timeouts: call={:?} connect={:?}",
            self.timeouts.call, self.timeouts.connect
        )
    }
}
