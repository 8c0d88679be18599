//! `jsonrpc_client:` of a proxy: the JSON-RPC endpoint of its Hyper node (required here, unlike
//! the Hyper channel of the same name).

use std::fmt;

use serde::Deserialize;
use serde_json::Value;

use tandem_settings::error::FieldIssues;
use tandem_settings::listeners::optional;
use tandem_settings::tls::{RawTlsSettings, TlsSettings};
use tandem_types::ForwardProxy;

/// A JSON-RPC endpoint a proxy calls.
#[derive(Debug, Clone)]
pub struct ProxyClientSettings {
    /// `http(s)://host:port/path`.
    pub endpoint: String,
    /// Client TLS for an `https` endpoint (our certificate, the CA, the server name).
    pub tls: Option<TlsSettings>,
    /// The HTTP forward proxy calls go through (`proxy_url`, CONNECT).
    pub proxy_url: Option<ForwardProxy>,
}

/// Raw `jsonrpc_client`. `local` is accepted for compatibility and unused (as in the original).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawProxyClientSettings {
    endpoint: Option<String>,
    proxy_url: Option<String>,
    #[serde(default)]
    #[allow(dead_code)]
    local: Option<bool>,
    tls: Option<Value>,
}

impl TryFrom<RawProxyClientSettings> for ProxyClientSettings {
    type Error = FieldIssues;

    fn try_from(raw: RawProxyClientSettings) -> Result<Self, FieldIssues> {
        let mut issues = FieldIssues::default();
        match &raw.endpoint {
            None => issues.push("endpoint", "required key is missing"),
            Some(url) => match url.parse::<http::Uri>() {
                Ok(uri)
                    if matches!(uri.scheme_str(), Some("http" | "https"))
                        && uri.authority().is_some() =>
                {
                    if uri.scheme_str() == Some("https") && raw.tls.is_none() {
                        issues.push("tls", "an https endpoint needs a tls block");
                    }
                }
                _ => issues.push(
                    "endpoint",
                    format!("{url:?} is not an http:// or https:// URL with a host"),
                ),
            },
        }
        let proxy_url = raw.proxy_url.as_deref().and_then(|url| {
            url.parse::<ForwardProxy>()
                .map_err(|e| issues.push("proxy_url", e.to_string()))
                .ok()
        });
        let tls = optional::<RawTlsSettings, TlsSettings>(raw.tls.as_ref(), "tls", &mut issues);
        match (raw.endpoint, tls) {
            (Some(endpoint), Some(tls)) if issues.is_empty() => Ok(Self {
                endpoint,
                tls,
                proxy_url,
            }),
            _ => Err(issues),
        }
    }
}

impl fmt::Display for ProxyClientSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "endpoint={}", self.endpoint)?;
        if let Some(proxy) = &self.proxy_url {
            write!(f, " proxy_url={proxy}")?;
        }
        match &self.tls {
            Some(tls) => write!(f, " tls({tls})"),
            None => f.write_str(" plain-http"),
        }
    }
}
