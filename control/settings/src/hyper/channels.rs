//! Hyper `channels:`: `[{name, type, settings, services}]`, at most one channel per type.

use std::collections::BTreeMap;
use std::fmt;

use serde::Deserialize;
use serde_json::Value;

use super::gateway::{GatewaySettings, gateway};
use crate::convert::{convert, parse_value};
use crate::error::{FieldIssues, index_key};
use crate::listeners::{
    HostPort, RawTcpRateLimit, TcpRateLimit, host_port, optional, rate_limits, required, serving,
};
use crate::tls::{RawTlsSettings, TlsSettings};
use tandem_types::{ForwardProxy, ServingConfig};

/// One configured channel.
#[derive(Debug, Clone)]
pub struct ChannelSettings {
    /// Free-form label (logs).
    pub name: String,
    /// Services this channel delivers (used by `jsonrpc_client`; empty = all).
    pub services: Vec<String>,
    /// What the channel is, with its settings.
    pub kind: ChannelKind,
}

/// The channel types Tandem runs.
#[derive(Debug, Clone)]
pub enum ChannelKind {
    /// gRPC server for peers (mTLS).
    GrpcServer(GrpcServerSettings),
    /// gRPC client to peers (mTLS), directly or through their proxy.
    GrpcClient(GrpcClientSettings),
    /// The local JSON-RPC gateway.
    JsonRpcServer(GatewaySettings),
    /// Delivery of calls to the local application.
    JsonRpcClient(JsonRpcClientSettings),
    /// Prints messages (debugging).
    Stdout,
}

impl ChannelKind {
    /// The `type:` string of this kind.
    pub fn type_name(&self) -> &'static str {
        match self {
            Self::GrpcServer(_) => "grpc_server",
            Self::GrpcClient(_) => "grpc_client",
            Self::JsonRpcServer(_) => "jsonrpc_server",
            Self::JsonRpcClient(_) => "jsonrpc_client",
            Self::Stdout => "stdout",
        }
    }
}

/// `grpc_server` settings.
#[derive(Debug, Clone)]
pub struct GrpcServerSettings {
    /// Where to listen (default `localhost:4444`).
    pub bind_address: HostPort,
    /// Server TLS (required).
    pub tls: TlsSettings,
    /// Per-IP connection rate limits.
    pub tcp_rate_limits: Vec<TcpRateLimit>,
    /// The serving kit's admission policy and deadlines (`serving:`, defaults when absent).
    pub serving: ServingConfig,
}

/// `grpc_client` settings.
#[derive(Debug, Clone)]
pub struct GrpcClientSettings {
    /// Client TLS (required).
    pub tls: TlsSettings,
    /// Reach peers through the proxy their entry names (`useProxy`, default true).
    pub use_proxy: bool,
}

/// `jsonrpc_client` settings (all optional, as in the original).
#[derive(Debug, Clone)]
pub struct JsonRpcClientSettings {
    /// The local application's JSON-RPC URL.
    pub endpoint: Option<String>,
    /// The HTTP forward proxy calls go through (`proxy_url`, CONNECT).
    pub proxy_url: Option<ForwardProxy>,
    /// Deliver to a local application (default true).
    pub local: bool,
    /// Client TLS for an `https` endpoint.
    pub tls: Option<TlsSettings>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawChannel {
    #[serde(default)]
    name: String,
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    settings: Value,
    #[serde(default)]
    services: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawGrpcServer {
    #[serde(default = "default_grpc_bind")]
    bind_address: String,
    tls: Option<Value>,
    #[serde(default)]
    tcp_rate_limits: Vec<RawTcpRateLimit>,
    serving: Option<Value>,
}

fn default_grpc_bind() -> String {
    "localhost:4444".to_owned()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawGrpcClient {
    tls: Option<Value>,
    #[serde(default = "yes", rename = "useProxy", alias = "use_proxy")]
    use_proxy: bool,
}

fn yes() -> bool {
    true
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawJsonRpcClient {
    endpoint: Option<String>,
    proxy_url: Option<String>,
    #[serde(default = "yes")]
    local: bool,
    tls: Option<Value>,
}

impl TryFrom<RawGrpcServer> for GrpcServerSettings {
    type Error = FieldIssues;

    fn try_from(raw: RawGrpcServer) -> Result<Self, FieldIssues> {
        let mut issues = FieldIssues::default();
        let bind_address = host_port(&raw.bind_address, "bind_address", &mut issues);
        let tls = required::<RawTlsSettings, TlsSettings>(raw.tls.as_ref(), "tls", &mut issues);
        let tcp_rate_limits = rate_limits(raw.tcp_rate_limits, "tcp_rate_limits", &mut issues);
        let serving = serving(raw.serving.as_ref(), &mut issues);
        match (bind_address, tls) {
            (Some(bind_address), Some(tls)) if issues.is_empty() => Ok(Self {
                bind_address,
                tls,
                tcp_rate_limits,
                serving,
            }),
            _ => Err(issues),
        }
    }
}

impl TryFrom<RawGrpcClient> for GrpcClientSettings {
    type Error = FieldIssues;

    fn try_from(raw: RawGrpcClient) -> Result<Self, FieldIssues> {
        let mut issues = FieldIssues::default();
        match required::<RawTlsSettings, TlsSettings>(raw.tls.as_ref(), "tls", &mut issues) {
            Some(tls) => Ok(Self {
                tls,
                use_proxy: raw.use_proxy,
            }),
            None => Err(issues),
        }
    }
}

impl TryFrom<RawJsonRpcClient> for JsonRpcClientSettings {
    type Error = FieldIssues;

    fn try_from(raw: RawJsonRpcClient) -> Result<Self, FieldIssues> {
        let mut issues = FieldIssues::default();
        if let Some(url) = &raw.endpoint {
            check_url(url, "endpoint", &mut issues);
        }
        let proxy_url = forward_proxy(raw.proxy_url.as_deref(), "proxy_url", &mut issues);
        let tls = optional::<RawTlsSettings, TlsSettings>(raw.tls.as_ref(), "tls", &mut issues);
        match tls {
            Some(tls) if issues.is_empty() => Ok(Self {
                endpoint: raw.endpoint,
                proxy_url,
                local: raw.local,
                tls,
            }),
            _ => Err(issues),
        }
    }
}

/// A `proxy_url`: an HTTP forward proxy (`http://[user:password@]host[:port]`).
pub(crate) fn forward_proxy(
    url: Option<&str>,
    key: &str,
    issues: &mut FieldIssues,
) -> Option<ForwardProxy> {
    url?.parse::<ForwardProxy>()
        .map_err(|e| issues.push(key, e.to_string()))
        .ok()
}

/// An `http(s)://host[:port]/path` URL.
pub(crate) fn check_url(url: &str, key: &str, issues: &mut FieldIssues) {
    match url.parse::<http::Uri>() {
        Ok(uri)
            if matches!(uri.scheme_str(), Some("http" | "https")) && uri.authority().is_some() => {}
        Ok(_) => issues.push(
            key,
            format!("{url:?} is not an http:// or https:// URL with a host"),
        ),
        Err(e) => issues.push(key, format!("{url:?} is not a URL: {e}")),
    }
}

impl TryFrom<RawChannel> for ChannelSettings {
    type Error = FieldIssues;

    fn try_from(raw: RawChannel) -> Result<Self, FieldIssues> {
        let settings = if raw.settings.is_null() {
            Value::Object(Default::default())
        } else {
            raw.settings
        };
        let nest = |inner: FieldIssues| {
            let mut issues = FieldIssues::default();
            issues.nest("settings", inner);
            issues
        };
        let kind = match raw.kind.as_str() {
            "grpc_server" => {
                ChannelKind::GrpcServer(convert::<RawGrpcServer, _>(&settings).map_err(nest)?)
            }
            "grpc_client" => {
                ChannelKind::GrpcClient(convert::<RawGrpcClient, _>(&settings).map_err(nest)?)
            }
            "jsonrpc_server" => ChannelKind::JsonRpcServer(gateway(&settings).map_err(nest)?),
            "jsonrpc_client" => {
                ChannelKind::JsonRpcClient(convert::<RawJsonRpcClient, _>(&settings).map_err(nest)?)
            }
            "stdout" => {
                parse_value::<Empty>(&settings).map_err(nest)?;
                ChannelKind::Stdout
            }
            "quic" => {
                return Err(one(
                    "type",
                    "the quic channel is not supported by Tandem (as built in the original it is an open relay)",
                ));
            }
            other => {
                return Err(one(
                    "type",
                    &format!(
                        "unknown channel type {other:?} (expected grpc_server, grpc_client, jsonrpc_server, jsonrpc_client or stdout)"
                    ),
                ));
            }
        };
        Ok(Self {
            name: raw.name,
            services: raw.services,
            kind,
        })
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Empty {}

fn one(key: &str, reason: &str) -> FieldIssues {
    let mut issues = FieldIssues::default();
    issues.push(key, reason);
    issues
}

/// Converts `channels:` (each channel on its own, so that all broken channels are reported) and
/// rejects a second channel of a type.
pub(crate) fn channels(raw: &[Value], issues: &mut FieldIssues) -> Vec<ChannelSettings> {
    let mut out = Vec::with_capacity(raw.len());
    let mut seen: BTreeMap<&'static str, usize> = BTreeMap::new();
    for (i, value) in raw.iter().enumerate() {
        let key = index_key("channels", i);
        match convert::<RawChannel, ChannelSettings>(value) {
            Ok(channel) => {
                let type_name = channel.kind.type_name();
                if let Some(first) = seen.insert(type_name, i) {
                    issues.push(format!("{key}.type"), format!("a second {type_name} channel (the first is channels[{first}]); at most one per type"));
                }
                out.push(channel);
            }
            Err(inner) => issues.nest(&key, inner),
        }
    }
    out
}

impl fmt::Display for ChannelSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {:?}", self.kind.type_name(), self.name)?;
        if !self.services.is_empty() {
            write!(f, " services={:?}", self.services)?;
        }
        match &self.kind {
            ChannelKind::GrpcServer(s) => {
                write!(f, " bind={} tls({})", s.bind_address, s.tls)?;
                for limit in &s.tcp_rate_limits {
                    write!(f, " rate={}/{:?}", limit.limit, limit.period)?;
                }
                Ok(())
            }
            ChannelKind::GrpcClient(c) => write!(f, " use_proxy={} tls({})", c.use_proxy, c.tls),
            ChannelKind::JsonRpcServer(s) => write!(f, " {s}"),
            ChannelKind::JsonRpcClient(c) => {
                write!(
                    f,
                    " endpoint={:?} proxy_url={:?} local={}",
                    c.endpoint, c.proxy_url, c.local
                )?;
                match &c.tls {
                    Some(tls) => write!(f, " tls({tls})"),
                    None => Ok(()),
                }
            }
            ChannelKind::Stdout => Ok(()),
        }
    }
}
