//! Typed settings of the proxies (`proxy run public|private`, env `PROXY_SETTINGS`), SPEC §4.1
//! and §4.7: the original keys plus Tandem's `engine:` block and call/dial deadlines.

mod access_log;
mod announcements;
mod client;
mod control;
mod display;
mod engine;
mod private;
mod quotas;

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;
use serde_json::Value;

pub use access_log::{AccessLogSettings, MAX_BLUR_SECONDS, RawAccessLogSettings};
pub use announcements::{
    AnnouncementSettings, DEFAULT_ANNOUNCEMENT_QUOTA, DEFAULT_MAX_LIFETIME_SECS,
    MAX_ANNOUNCEMENT_QUOTA, RawAnnouncementSettings,
};
pub use client::{ProxyClientSettings, RawProxyClientSettings};
pub use control::{ControlSettings, MAX_ADMINS, RawControlSettings};
pub use engine::{DEFAULT_DRAIN_GRACE_SECS, ProxyEngineSettings, RawProxyEngineSettings};
pub use private::{
    DEFAULT_FORWARD_IDLE_SECS, DEFAULT_REANNOUNCE_SECS, DEFAULT_TERMINATE_TIMEOUT_SECS,
    InternalEndpointSettings, PrivateProxySettings,
};
pub use quotas::{
    DEFAULT_BURST_DIVISOR, MAX_BURST, MAX_BYTES_PER_SECOND, MAX_QUOTA_OPERATORS, MIN_DEFAULT_BURST,
    QuotaLimits, QuotaSettings, RawQuotaSettings,
};

use tandem_settings::convert::{from_merged, seconds};
use tandem_settings::datastore::{DatastoreSettings, RawDatastoreSettings};
use tandem_settings::error::{FieldIssues, SettingsError};
use tandem_settings::listeners::{
    HostPort, JsonRpcServerSettings, MetricsSettings, RawJsonRpcServerSettings, RawMetricsSettings,
    RawTcpRateLimit, TcpRateLimit, host_port, optional, rate_limits, required,
};
use tandem_settings::loader::{Loader, Provenance};

/// Environment variable that lists the proxy settings paths.
pub const PROXY_SETTINGS_ENV: &str = "PROXY_SETTINGS";
/// Default `accept_timeout` (seconds): how long issued tokens and a waiting side live (SPEC §4.1).
pub const DEFAULT_ACCEPT_TIMEOUT_SECS: f64 = 10.0;
/// Default deadline of one JSON-RPC call to our Hyper node (seconds; the original had none).
pub const DEFAULT_CALL_TIMEOUT_SECS: f64 = 10.0;

/// The whole proxy settings file: a `public:` and/or a `private:` block.
#[derive(Debug, Clone)]
pub struct ProxySettings {
    /// `public:` (for `proxy run public`).
    pub public: Option<PublicProxySettings>,
    /// `private:` (for `proxy run private`).
    pub private: Option<PrivateProxySettings>,
    /// Prometheus endpoint (`/metrics`, `/healthz`, `/readyz`), if any.
    pub metrics: Option<MetricsSettings>,
    /// Log directives (`info`, `warn,tandem_proxy=debug`) applied at start and on every reload;
    /// `None` keeps `--level` / `RUST_LOG`. Checked by the program (it owns the log filter).
    pub log_level: Option<String>,
}

/// Validated `public:` block (SPEC §4.1).
#[derive(Debug, Clone)]
pub struct PublicProxySettings {
    /// Our operator name (`public-proxy-1.ga`).
    pub name: String,
    /// The TLS passthrough (SNI) port (default `localhost:443`).
    pub tls_bind_address: HostPort,
    /// The pairing port (default `localhost:9999`).
    pub internal_bind_address: HostPort,
    /// The pairing address handed to peers; `None` = `internal_bind_address` as written (the
    /// original's default, `localhost:9999`), or the bound address when that names port 0 or every
    /// address.
    pub internal_endpoint: Option<String>,
    /// Lifetime of issued tokens and of a waiting side (0 < t <= 3000 s, default 10 s).
    pub accept_timeout: Duration,
    /// New connections per source (IPv4 address, IPv6 /64) per period on each of the engine's
    /// data ports (pairing and TLS), at most [`tandem_engine::limiter::MAX_ACCEPT_RATES`];
    /// enforced by the engine at accept, each core with its share (`EngineConfig::accept_rates`).
    pub tcp_rate_limits: Vec<TcpRateLimit>,
    /// Where announcements are kept.
    pub datastore: DatastoreSettings,
    /// The JSON-RPC endpoint of our Hyper node.
    pub jsonrpc_client: ProxyClientSettings,
    /// Our JSON-RPC server, called by our Hyper node.
    pub jsonrpc_server: JsonRpcServerSettings,
    /// Deadline of one call to our Hyper node (`call_timeout`, seconds, default 10).
    pub call_timeout: Duration,
    /// The data plane.
    pub engine: ProxyEngineSettings,
    /// The ControlService (gRPC, mTLS) for operators and the load harness; off when absent.
    pub control: Option<ControlSettings>,
    /// Per-operator quota and maximum lifetime of announcements (`announcements:`).
    pub announcements: AnnouncementSettings,
    /// One JSON line per ended pair (`access_log:`); off when absent.
    pub access_log: Option<AccessLogSettings>,
    /// Per-operator quotas and bandwidth limits (`quotas:`).
    pub quotas: QuotaSettings,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawProxySettings {
    public: Option<Value>,
    private: Option<Value>,
    metrics: Option<Value>,
    log_level: Option<String>,
    /// The loader's record of the files' `vars` blocks; not a setting.
    #[serde(default, rename = "_vars")]
    _vars: Value,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPublicProxySettings {
    name: String,
    #[serde(default = "default_tls_bind")]
    tls_bind_address: String,
    #[serde(default = "default_internal_bind")]
    internal_bind_address: String,
    internal_endpoint: Option<String>,
    accept_timeout: Option<f64>,
    #[serde(default)]
    tcp_rate_limits: Vec<RawTcpRateLimit>,
    datastore: Option<Value>,
    jsonrpc_client: Option<Value>,
    jsonrpc_server: Option<Value>,
    call_timeout: Option<f64>,
    engine: Option<Value>,
    control: Option<Value>,
    announcements: Option<Value>,
    access_log: Option<Value>,
    quotas: Option<Value>,
}

fn default_tls_bind() -> String {
    "localhost:443".to_owned()
}

fn default_internal_bind() -> String {
    "localhost:9999".to_owned()
}

/// An operator name: non-empty, no whitespace (it becomes part of method names).
pub(crate) fn check_name(name: &str, issues: &mut FieldIssues) {
    if name.is_empty() || name.chars().any(char::is_whitespace) {
        issues.push("name", format!("{name:?} is not an operator name"));
    }
}

/// `seconds` with a default when absent.
pub(crate) fn secs_or(
    raw: Option<f64>,
    default: f64,
    key: &str,
    min: f64,
    max: f64,
    issues: &mut FieldIssues,
) -> Duration {
    raw.and_then(|s| seconds(s, key, min, max, issues))
        .unwrap_or(Duration::from_secs_f64(default))
}

impl TryFrom<RawPublicProxySettings> for PublicProxySettings {
    type Error = FieldIssues;

    fn try_from(raw: RawPublicProxySettings) -> Result<Self, FieldIssues> {
        let mut issues = FieldIssues::default();
        check_name(&raw.name, &mut issues);
        let tls_bind = host_port(&raw.tls_bind_address, "tls_bind_address", &mut issues);
        let internal_bind = host_port(
            &raw.internal_bind_address,
            "internal_bind_address",
            &mut issues,
        );
        if let Some(endpoint) = &raw.internal_endpoint {
            host_port(endpoint, "internal_endpoint", &mut issues);
        }
        // The original allows 0; a zero TTL would refuse every token, so Tandem wants > 0.
        let accept_timeout = secs_or(
            raw.accept_timeout,
            DEFAULT_ACCEPT_TIMEOUT_SECS,
            "accept_timeout",
            0.01,
            3000.0,
            &mut issues,
        );
        let call_timeout = secs_or(
            raw.call_timeout,
            DEFAULT_CALL_TIMEOUT_SECS,
            "call_timeout",
            0.1,
            600.0,
            &mut issues,
        );
        let tcp_rate_limits = rate_limits(raw.tcp_rate_limits, "tcp_rate_limits", &mut issues);
        if tcp_rate_limits.len() > tandem_engine::limiter::MAX_ACCEPT_RATES {
            issues.push(
                "tcp_rate_limits",
                format!(
                    "the engine enforces at most {} limits, got {}",
                    tandem_engine::limiter::MAX_ACCEPT_RATES,
                    tcp_rate_limits.len()
                ),
            );
        }
        let datastore = required::<RawDatastoreSettings, DatastoreSettings>(
            raw.datastore.as_ref(),
            "datastore",
            &mut issues,
        );
        let client = required::<RawProxyClientSettings, ProxyClientSettings>(
            raw.jsonrpc_client.as_ref(),
            "jsonrpc_client",
            &mut issues,
        );
        let server = required::<RawJsonRpcServerSettings, JsonRpcServerSettings>(
            raw.jsonrpc_server.as_ref(),
            "jsonrpc_server",
            &mut issues,
        );
        let engine = optional::<RawProxyEngineSettings, ProxyEngineSettings>(
            raw.engine.as_ref(),
            "engine",
            &mut issues,
        );
        let control = optional::<RawControlSettings, ControlSettings>(
            raw.control.as_ref(),
            "control",
            &mut issues,
        );
        let announcements = optional::<RawAnnouncementSettings, AnnouncementSettings>(
            raw.announcements.as_ref(),
            "announcements",
            &mut issues,
        );
        let access_log = optional::<RawAccessLogSettings, AccessLogSettings>(
            raw.access_log.as_ref(),
            "access_log",
            &mut issues,
        );
        let quotas =
            optional::<RawQuotaSettings, QuotaSettings>(raw.quotas.as_ref(), "quotas", &mut issues);
        match (
            tls_bind,
            internal_bind,
            datastore,
            client,
            server,
            engine,
            control,
            (announcements, quotas),
            access_log,
        ) {
            (
                Some(tls),
                Some(internal),
                Some(datastore),
                Some(client),
                Some(server),
                Some(engine),
                Some(control),
                (Some(announcements), Some(quotas)),
                Some(access_log),
            ) if issues.is_empty() => Ok(Self {
                name: raw.name,
                tls_bind_address: tls,
                internal_bind_address: internal,
                internal_endpoint: raw.internal_endpoint,
                accept_timeout,
                tcp_rate_limits,
                datastore,
                jsonrpc_client: client,
                jsonrpc_server: server,
                call_timeout,
                engine: engine.unwrap_or_default(),
                control,
                announcements: announcements.unwrap_or_default(),
                access_log,
                quotas: quotas.unwrap_or_default(),
            }),
            _ => Err(issues),
        }
    }
}

impl TryFrom<RawProxySettings> for ProxySettings {
    type Error = FieldIssues;

    fn try_from(raw: RawProxySettings) -> Result<Self, FieldIssues> {
        let mut issues = FieldIssues::default();
        let public = optional::<RawPublicProxySettings, PublicProxySettings>(
            raw.public.as_ref(),
            "public",
            &mut issues,
        );
        let private = optional::<private::RawPrivateProxySettings, PrivateProxySettings>(
            raw.private.as_ref(),
            "private",
            &mut issues,
        );
        let metrics = optional::<RawMetricsSettings, MetricsSettings>(
            raw.metrics.as_ref(),
            "metrics",
            &mut issues,
        );
        if matches!((&public, &private), (Some(None), Some(None))) {
            issues.push("", "needs a `public:` or a `private:` block");
        }
        match (public, private, metrics) {
            (Some(public), Some(private), Some(metrics)) if issues.is_empty() => Ok(Self {
                public,
                private,
                metrics,
                log_level: raw.log_level,
            }),
            _ => Err(issues),
        }
    }
}

impl ProxySettings {
    /// Loads the paths in `PROXY_SETTINGS` (files or directories, colon-separated).
    pub fn from_env() -> Result<Self, SettingsError> {
        let (value, prov) = Loader::default().load_from_env(PROXY_SETTINGS_ENV)?;
        Self::from_merged(&value, &prov)
    }

    /// Loads `paths` with variables from the process environment.
    pub fn load(paths: &[PathBuf]) -> Result<Self, SettingsError> {
        let (value, prov) = Loader::default().load_paths(paths)?;
        Self::from_merged(&value, &prov)
    }

    /// Converts already merged settings.
    pub fn from_merged(value: &Value, prov: &Provenance) -> Result<Self, SettingsError> {
        from_merged::<RawProxySettings, Self>(value, prov)
    }
}

#[cfg(test)]
#[path = "settings_tests.rs"]
mod tests;
