//! Listener and client building blocks shared by every service: addresses, rate limits, CORS,
//! the JSON-RPC server and client blocks, metrics.

use std::fmt;
use std::num::NonZeroU32;
use std::time::Duration;

use regex::Regex;
use serde::Deserialize;

use super::convert::convert;
use super::error::FieldIssues;
use super::serving::RawServingSettings;
use super::tls::{RawTlsSettings, TlsSettings};
pub use tandem_types::HostPort;
use tandem_types::ServingConfig;

pub fn host_port(raw: &str, key: &str, issues: &mut FieldIssues) -> Option<HostPort> {
    raw.parse()
        .map_err(|reason: tandem_types::HostPortError| issues.push(key, reason.to_string()))
        .ok()
}

/// The window of a TCP rate limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RatePeriod {
    /// Per second.
    Second,
    /// Per minute.
    Minute,
    /// Per hour.
    Hour,
}

impl RatePeriod {
    /// The window's length.
    pub fn duration(self) -> Duration {
        Duration::from_secs(match self {
            Self::Second => 1,
            Self::Minute => 60,
            Self::Hour => 3600,
        })
    }
}

/// At most `limit` new connections per source IP per `period`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TcpRateLimit {
    /// The window.
    pub period: RatePeriod,
    /// Connections allowed in one window (at least 1).
    pub limit: NonZeroU32,
}

/// `{type: second|minute|hour, limit}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTcpRateLimit {
    #[serde(rename = "type")]
    period: RatePeriod,
    limit: u64,
}

impl TryFrom<RawTcpRateLimit> for TcpRateLimit {
    type Error = FieldIssues;

    fn try_from(raw: RawTcpRateLimit) -> Result<Self, FieldIssues> {
        let mut issues = FieldIssues::default();
        let limit = u32::try_from(raw.limit).ok().and_then(NonZeroU32::new);
        if limit.is_none() {
            issues.push(
                "limit",
                format!("must be between 1 and {}, got {}", u32::MAX, raw.limit),
            );
        }
        match limit {
            Some(limit) => Ok(Self {
                period: raw.period,
                limit,
            }),
            None => Err(issues),
        }
    }
}

pub fn rate_limits(
    raw: Vec<RawTcpRateLimit>,
    key: &str,
    issues: &mut FieldIssues,
) -> Vec<TcpRateLimit> {
    let mut out = Vec::with_capacity(raw.len());
    for (i, r) in raw.into_iter().enumerate() {
        match TcpRateLimit::try_from(r) {
            Ok(limit) => out.push(limit),
            Err(inner) => issues.nest(&format!("{key}[{i}]"), inner),
        }
    }
    out
}

/// CORS (SPEC §2.8): the origins (regexes, matched against the `Origin` header) that may call, and
/// what their preflight is told.
#[derive(Debug, Clone, Default)]
pub struct CorsSettings {
    /// Allowed origin patterns.
    pub allowed_hosts: Vec<Regex>,
    /// Headers allowed besides the ones the browser asks for (`Access-Control-Allow-Headers`).
    pub allowed_headers: Vec<String>,
    /// `Access-Control-Allow-Methods`; empty: the original's default
    /// (`GET, POST, PATCH, PUT, DELETE, OPTIONS`).
    pub allowed_methods: Vec<String>,
}

/// The most entries each CORS list may have.
pub const MAX_CORS_ENTRIES: usize = 64;

/// `cors: {allowed_hosts: [regex...], allowed_headers: [...], allowed_methods: [...]}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCorsSettings {
    #[serde(default)]
    allowed_hosts: Vec<String>,
    #[serde(default)]
    allowed_headers: Vec<String>,
    #[serde(default)]
    allowed_methods: Vec<String>,
}

impl TryFrom<RawCorsSettings> for CorsSettings {
    type Error = FieldIssues;

    fn try_from(raw: RawCorsSettings) -> Result<Self, FieldIssues> {
        let mut issues = FieldIssues::default();
        let mut allowed_hosts = Vec::new();
        for (i, pattern) in raw.allowed_hosts.iter().enumerate() {
            match Regex::new(pattern) {
                Ok(re) => allowed_hosts.push(re),
                Err(e) => issues.push(format!("allowed_hosts[{i}]"), format!("invalid regex: {e}")),
            }
        }
        for (key, list) in [
            ("allowed_hosts", &raw.allowed_hosts),
            ("allowed_headers", &raw.allowed_headers),
            ("allowed_methods", &raw.allowed_methods),
        ] {
            if list.len() > MAX_CORS_ENTRIES {
                issues.push(key, format!("at most {MAX_CORS_ENTRIES} entries"));
            }
        }
        for (i, name) in raw.allowed_headers.iter().enumerate() {
            if http::HeaderName::from_bytes(name.as_bytes()).is_err() {
                issues.push(
                    format!("allowed_headers[{i}]"),
                    format!("{name:?} is not a header name"),
                );
            }
        }
        for (i, method) in raw.allowed_methods.iter().enumerate() {
            if http::Method::from_bytes(method.as_bytes()).is_err() {
                issues.push(
                    format!("allowed_methods[{i}]"),
                    format!("{method:?} is not an HTTP method"),
                );
            }
        }
        issues.into_result(Self {
            allowed_hosts,
            allowed_headers: raw.allowed_headers,
            allowed_methods: raw.allowed_methods,
        })
    }
}

/// A JSON-RPC server block (`jsonrpc_server`), used by `sd`, Hyper channels and proxies.
#[derive(Debug, Clone)]
pub struct JsonRpcServerSettings {
    /// Where to listen.
    pub bind_address: HostPort,
    /// The HTTP path of the endpoint (default `/jsonrpc`).
    pub path: String,
    /// CORS, when browsers may call.
    pub cors: Option<CorsSettings>,
    /// TLS; `None` serves plain HTTP.
    pub tls: Option<TlsSettings>,
    /// Per-IP connection rate limits.
    pub tcp_rate_limits: Vec<TcpRateLimit>,
    /// The serving kit's admission policy and deadlines (`serving:`, defaults when absent).
    pub serving: ServingConfig,
}

/// Raw `jsonrpc_server`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawJsonRpcServerSettings {
    bind_address: String,
    #[serde(default = "default_jsonrpc_path")]
    path: String,
    cors: Option<serde_json::Value>,
    tls: Option<serde_json::Value>,
    #[serde(default)]
    tcp_rate_limits: Vec<RawTcpRateLimit>,
    serving: Option<serde_json::Value>,
}

fn default_jsonrpc_path() -> String {
    "/jsonrpc".to_owned()
}

impl TryFrom<RawJsonRpcServerSettings> for JsonRpcServerSettings {
    type Error = FieldIssues;

    fn try_from(raw: RawJsonRpcServerSettings) -> Result<Self, FieldIssues> {
        let mut issues = FieldIssues::default();
        let bind_address = host_port(&raw.bind_address, "bind_address", &mut issues);
        if !raw.path.starts_with('/') {
            issues.push("path", format!("{:?} must start with /", raw.path));
        }
        let cors =
            optional::<RawCorsSettings, CorsSettings>(raw.cors.as_ref(), "cors", &mut issues);
        let tls = optional::<RawTlsSettings, TlsSettings>(raw.tls.as_ref(), "tls", &mut issues);
        let tcp_rate_limits = rate_limits(raw.tcp_rate_limits, "tcp_rate_limits", &mut issues);
        let serving = serving(raw.serving.as_ref(), &mut issues);
        match bind_address {
            Some(bind_address) if issues.is_empty() => Ok(Self {
                bind_address,
                path: raw.path,
                cors: cors.flatten(),
                tls: tls.flatten(),
                tcp_rate_limits,
                serving,
            }),
            _ => Err(issues),
        }
    }
}

/// Converts an optional `serving:` block (the defaults when absent or invalid; issues recorded).
pub fn serving(value: Option<&serde_json::Value>, issues: &mut FieldIssues) -> ServingConfig {
    optional::<RawServingSettings, ServingConfig>(value, "serving", issues)
        .flatten()
        .unwrap_or_default()
}

/// Converts an optional nested block; `Some(None)` never happens on success paths that matter:
/// the outer `Option` is `None` when conversion failed (issues recorded), the inner when absent.
pub fn optional<R, T>(
    value: Option<&serde_json::Value>,
    key: &str,
    issues: &mut FieldIssues,
) -> Option<Option<T>>
where
    R: serde::de::DeserializeOwned,
    T: TryFrom<R, Error = FieldIssues>,
{
    match value {
        None | Some(serde_json::Value::Null) => Some(None),
        Some(v) => match convert::<R, T>(v) {
            Ok(t) => Some(Some(t)),
            Err(inner) => {
                issues.nest(key, inner);
                None
            }
        },
    }
}

/// Converts a required nested block (absent → "required key is missing").
pub fn required<R, T>(
    value: Option<&serde_json::Value>,
    key: &str,
    issues: &mut FieldIssues,
) -> Option<T>
where
    R: serde::de::DeserializeOwned,
    T: TryFrom<R, Error = FieldIssues>,
{
    match optional::<R, T>(value, key, issues) {
        Some(Some(t)) => Some(t),
        Some(None) => {
            issues.push(key, "required key is missing");
            None
        }
        None => None,
    }
}

/// `metrics: {bind_address}`: Prometheus text format over plain HTTP.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetricsSettings {
    /// Where `/metrics` listens.
    pub bind_address: HostPort,
}

/// Raw `metrics`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawMetricsSettings {
    bind_address: String,
}

impl TryFrom<RawMetricsSettings> for MetricsSettings {
    type Error = FieldIssues;

    fn try_from(raw: RawMetricsSettings) -> Result<Self, FieldIssues> {
        let mut issues = FieldIssues::default();
        match host_port(&raw.bind_address, "bind_address", &mut issues) {
            Some(bind_address) => Ok(Self { bind_address }),
            None => Err(issues),
        }
    }
}

/// One-line summary for `check-settings`; `tls` blocks print through [`TlsSettings`]'s `Display`.
impl fmt::Display for JsonRpcServerSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "bind={} path={}", self.bind_address, self.path)?;
        match &self.tls {
            Some(tls) => write!(f, " tls({tls})")?,
            None => f.write_str(" plain-http")?,
        }
        if let Some(cors) = &self.cors {
            let hosts: Vec<&str> = cors.allowed_hosts.iter().map(Regex::as_str).collect();
            write!(f, " cors={hosts:?}")?;
        }
        for limit in &self.tcp_rate_limits {
            write!(f, " rate={}/{:?}", limit.limit, limit.period)?;
        }
        Ok(())
    }
}

#[cfg(test)]
#[path = "listeners_tests.rs"]
mod tests;
