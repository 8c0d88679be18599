//! Hyper `directory:`: `{type: api, settings}` (the signed SD over JSON-RPC) or `{type: json,
//! settings: {path}}` (unsigned local records, tests and demos).

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;
use serde_json::Value;

use super::channels::{check_url, forward_proxy};
use crate::convert::{abs_path, abs_paths, parse_value};
use crate::error::FieldIssues;
use crate::listeners::optional;
use crate::sd::paths;
use crate::tls::{RawTlsSettings, TlsSettings};
use tandem_types::ForwardProxy;

/// Default refresh interval of the directory cache, seconds (the original's 5).
pub const DEFAULT_CACHE_ENTRIES_FOR_SECS: u64 = 5;
/// Longest accepted `cache_entries_for`, seconds (the original's bound, 1 hour).
pub const MAX_CACHE_ENTRIES_FOR_SECS: u64 = 3600;

/// Where the operator finds its peers.
#[derive(Debug, Clone, PartialEq, Eq)]
#[allow(clippy::large_enum_variant)] // one value per process, never moved in a hot path
pub enum DirectorySettings {
    /// The signed service directory (`sd`).
    Api(ApiDirectorySettings),
    /// Unsigned `{"records": [...]}` files.
    Json(JsonDirectorySettings),
}

/// `type: api`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiDirectorySettings {
    /// SD JSON-RPC URLs (at least one; the first is used, as in the original).
    pub endpoints: Vec<String>,
    /// TLS names of the SD servers (at least one; the first is used).
    pub server_names: Vec<String>,
    /// The JSON-RPC client's TLS (our client certificate) and HTTP proxy.
    pub jsonrpc_client: DirectoryClientSettings,
    /// Roots that record signing certificates must chain to (at least one).
    pub ca_certificate_files: Vec<PathBuf>,
    /// Intermediates for that chain.
    pub ca_intermediate_certificate_files: Vec<PathBuf>,
    /// Cache lifetime of fetched entries (default 5 s, at most 3600 s; 0 refreshes every time).
    pub cache_entries_for: Duration,
}

/// `jsonrpc_client` of an API directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirectoryClientSettings {
    /// Client TLS towards the SD.
    pub tls: Option<TlsSettings>,
    /// The HTTP forward proxy requests to sd go through (`proxy_url`, CONNECT).
    pub proxy_url: Option<ForwardProxy>,
}

/// `type: json`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JsonDirectorySettings {
    /// A records file, or a directory of them.
    pub path: PathBuf,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawDirectory {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    settings: Value,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawApiDirectory {
    #[serde(default)]
    endpoints: Vec<String>,
    #[serde(default)]
    server_names: Vec<String>,
    jsonrpc_client: Option<RawDirectoryClient>,
    #[serde(default)]
    ca_certificate_files: Vec<String>,
    #[serde(default)]
    ca_intermediate_certificate_files: Vec<String>,
    cache_entries_for: Option<u64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDirectoryClient {
    tls: Option<Value>,
    proxy_url: Option<String>,
    /// The original's client block has it; its directory client overwrites it with `endpoints[0]`.
    /// Accepted when it names `endpoints[0]` (or stands in for an empty `endpoints`).
    endpoint: Option<String>,
    /// Accepted and without effect, as in the original.
    #[allow(dead_code)]
    local: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawJsonDirectory {
    path: String,
}

impl TryFrom<RawDirectory> for DirectorySettings {
    type Error = FieldIssues;

    fn try_from(raw: RawDirectory) -> Result<Self, FieldIssues> {
        let mut issues = FieldIssues::default();
        let settings = if raw.settings.is_null() {
            Value::Object(Default::default())
        } else {
            raw.settings
        };
        let parsed = match raw.kind.as_str() {
            "api" => parse_value::<RawApiDirectory>(&settings)
                .and_then(api)
                .map(Self::Api),
            "json" => parse_value::<RawJsonDirectory>(&settings).and_then(|j| {
                let mut inner = FieldIssues::default();
                let path = abs_path(&j.path, "path", &mut inner);
                path.map(|path| Self::Json(JsonDirectorySettings { path }))
                    .ok_or(inner)
            }),
            other => {
                issues.push(
                    "type",
                    format!("unknown directory type {other:?} (expected api or json)"),
                );
                return Err(issues);
            }
        };
        parsed.map_err(|inner| {
            issues.nest("settings", inner);
            issues
        })
    }
}

fn api(mut raw: RawApiDirectory) -> Result<ApiDirectorySettings, FieldIssues> {
    let mut issues = FieldIssues::default();
    let client_endpoint = raw.jsonrpc_client.as_mut().and_then(|c| c.endpoint.take());
    match (client_endpoint, raw.endpoints.first()) {
        (Some(endpoint), None) => raw.endpoints.push(endpoint),
        (Some(endpoint), Some(first)) if endpoint != *first => issues.push(
            "jsonrpc_client.endpoint",
            format!(
                "{endpoint:?} differs from endpoints[0] ({first:?}), which is the one called \
                 (as in the original): remove jsonrpc_client.endpoint or make them equal"
            ),
        ),
        _ => {}
    }
    if raw.endpoints.is_empty() {
        issues.push("endpoints", "required: list at least one SD URL");
    }
    for (i, url) in raw.endpoints.iter().enumerate() {
        check_url(url, &format!("endpoints[{i}]"), &mut issues);
    }
    if raw.server_names.is_empty() {
        issues.push("server_names", "required: list the SD's TLS name");
    }
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
    let cache = raw
        .cache_entries_for
        .unwrap_or(DEFAULT_CACHE_ENTRIES_FOR_SECS);
    if cache > MAX_CACHE_ENTRIES_FOR_SECS {
        issues.push(
            "cache_entries_for",
            format!("must be between 0 and {MAX_CACHE_ENTRIES_FOR_SECS} seconds, got {cache}"),
        );
    }
    let client = raw.jsonrpc_client.unwrap_or(RawDirectoryClient {
        tls: None,
        proxy_url: None,
        endpoint: None,
        local: None,
    });
    let proxy_url = forward_proxy(
        client.proxy_url.as_deref(),
        "jsonrpc_client.proxy_url",
        &mut issues,
    );
    let tls = optional::<RawTlsSettings, TlsSettings>(
        client.tls.as_ref(),
        "jsonrpc_client.tls",
        &mut issues,
    );
    match tls {
        Some(tls) if issues.is_empty() => Ok(ApiDirectorySettings {
            endpoints: raw.endpoints,
            server_names: raw.server_names,
            jsonrpc_client: DirectoryClientSettings { tls, proxy_url },
            ca_certificate_files,
            ca_intermediate_certificate_files,
            cache_entries_for: Duration::from_secs(cache),
        }),
        _ => Err(issues),
    }
}

impl fmt::Display for DirectorySettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Json(j) => write!(f, "json {}", j.path.display()),
            Self::Api(a) => {
                write!(
                    f,
                    "api endpoints={:?} server_names={:?}",
                    a.endpoints, a.server_names
                )?;
                if let Some(tls) = &a.jsonrpc_client.tls {
                    write!(f, " tls({tls})")?;
                }
                write!(
                    f,
                    " ca={:?} intermediates={:?} cache_entries_for={:?}",
                    paths(&a.ca_certificate_files),
                    paths(&a.ca_intermediate_certificate_files),
                    a.cache_entries_for
                )
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::convert::convert;

    fn api_with_client(client: Value, endpoints: Value) -> Result<DirectorySettings, FieldIssues> {
        convert::<RawDirectory, DirectorySettings>(&json!({
            "type": "api",
            "settings": {
                "endpoints": endpoints,
                "server_names": ["sd-1"],
                "ca_certificate_files": ["/etc/ca.crt"],
                "jsonrpc_client": client
            }
        }))
    }

    #[test]
    fn the_originals_client_keys_are_taken_as_the_original_means_them() {
        let sd = "https://sd.example:3322/jsonrpc";
        // `local` has no effect (as in the original); an `endpoint` equal to endpoints[0] is fine.
        let same = api_with_client(json!({"endpoint": sd, "local": true}), json!([sd])).unwrap();
        let DirectorySettings::Api(api) = same else {
            panic!("api")
        };
        assert_eq!(api.endpoints, [sd]);
        // Alone, the client's endpoint is the one called.
        let alone = api_with_client(json!({"endpoint": sd}), json!([])).unwrap();
        let DirectorySettings::Api(api) = alone else {
            panic!("api")
        };
        assert_eq!(api.endpoints, [sd]);
        // A different one would be silently unused: refused, naming both.
        let e =
            api_with_client(json!({"endpoint": "https://other/jsonrpc"}), json!([sd])).unwrap_err();
        assert_eq!(e.0[0].0, "settings.jsonrpc_client.endpoint");
        assert!(e.0[0].1.contains(sd) && e.0[0].1.contains("other"), "{e:?}");
    }
}
