//! `private:` block (SPEC §4.7): the private proxy that dials out to the public proxy for each
//! incoming TLS connection and forwards or terminates it.

use std::fmt;
use std::time::Duration;

use serde::Deserialize;
use serde_json::Value;

use super::announcements::{AnnouncementSettings, RawAnnouncementSettings};
use super::client::{ProxyClientSettings, RawProxyClientSettings};
use super::{DEFAULT_CALL_TIMEOUT_SECS, check_name, secs_or};
use tandem_settings::datastore::{DatastoreSettings, RawDatastoreSettings};
use tandem_settings::error::FieldIssues;
use tandem_settings::listeners::{
    HostPort, JsonRpcServerSettings, RawJsonRpcServerSettings, host_port, optional, required,
};
use tandem_settings::tls::{RawTlsSettings, TlsSettings};

/// Default re-announcement period (seconds): the original re-announces every 10 minutes.
pub const DEFAULT_REANNOUNCE_SECS: f64 = 600.0;
/// Default `internal_endpoint.timeout` (seconds): a terminated connection's lifetime.
pub const DEFAULT_TERMINATE_TIMEOUT_SECS: f64 = 30.0;
/// Default `internal_endpoint.idle_timeout` (seconds): a ForwardTLS connection with no byte
/// either way for this long is closed. Shorter than the public engine's 300 s idle timeout, so
/// a silent client (a flood of ClientHellos that never go on) frees this proxy's connection
/// slot after a minute; TLS clients and servers that keep a connection open longer send
/// keep-alives (HTTP/2 PING, TCP-level traffic) well within it.
pub const DEFAULT_FORWARD_IDLE_SECS: f64 = 60.0;
/// Default deadline to dial the public proxy's pairing port or the internal address (seconds).
pub const DEFAULT_DIAL_TIMEOUT_SECS: f64 = 5.0;

/// Validated `private:` block.
#[derive(Debug, Clone)]
pub struct PrivateProxySettings {
    /// Our operator name (`private-proxy-1.ga`).
    pub name: String,
    /// Where announcements are kept.
    pub datastore: DatastoreSettings,
    /// Our Hyper node's JSON-RPC endpoint.
    pub jsonrpc_client: ProxyClientSettings,
    /// Our JSON-RPC server, called by our Hyper node.
    pub jsonrpc_server: JsonRpcServerSettings,
    /// Where incoming connections go.
    pub internal_endpoint: InternalEndpointSettings,
    /// Deadline of one call to our Hyper node (seconds, default 10).
    pub call_timeout: Duration,
    /// Deadline to join the public proxy's pair (connect and token write together, see
    /// `tandem_net::pairing`) or to dial the internal address (seconds, default 5).
    pub dial_timeout: Duration,
    /// Re-announcement period (seconds, default 600, 1..=86400).
    pub reannounce_interval: Duration,
    /// Per-tenant quota and maximum lifetime of announcements (`announcements:`).
    pub announcements: AnnouncementSettings,
}

/// `internal_endpoint:`.
#[derive(Debug, Clone)]
pub struct InternalEndpointSettings {
    /// The internal server (default `localhost:8888`).
    pub address: HostPort,
    /// Set: terminate TLS here with this server certificate (TerminateTLS); unset: forward raw.
    pub tls: Option<TlsSettings>,
    /// With `tls`: forward requests as JSON-RPC to this endpoint instead of plain HTTP.
    pub jsonrpc_client: Option<ProxyClientSettings>,
    /// With `jsonrpc_client`: the path served (default `/jsonrpc`).
    pub jsonrpc_path: String,
    /// Lifetime of a terminated connection (seconds, default 30).
    pub timeout: Duration,
    /// ForwardTLS: close a forwarded connection after this long with no byte either way
    /// (seconds, default 60, 0.1 ..= 86400).
    pub idle_timeout: Duration,
    /// ForwardTLS: start each connection to `address` with a PROXY protocol v2 header naming the
    /// TLS client (`send_proxy_v2: true`; default false). Only for ForwardTLS (with `tls`, the
    /// backend speaks HTTP to us, not to the client).
    pub send_proxy_v2: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawPrivateProxySettings {
    name: String,
    datastore: Option<Value>,
    jsonrpc_client: Option<Value>,
    jsonrpc_server: Option<Value>,
    internal_endpoint: Option<Value>,
    call_timeout: Option<f64>,
    dial_timeout: Option<f64>,
    reannounce_interval: Option<f64>,
    announcements: Option<Value>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawInternalEndpoint {
    #[serde(default = "default_internal_address")]
    address: String,
    tls: Option<Value>,
    jsonrpc_client: Option<Value>,
    #[serde(default = "default_jsonrpc_path")]
    jsonrpc_path: String,
    timeout: Option<f64>,
    idle_timeout: Option<f64>,
    #[serde(default)]
    send_proxy_v2: bool,
}

fn default_internal_address() -> String {
    "localhost:8888".to_owned()
}

fn default_jsonrpc_path() -> String {
    "/jsonrpc".to_owned()
}

impl TryFrom<RawInternalEndpoint> for InternalEndpointSettings {
    type Error = FieldIssues;

    fn try_from(raw: RawInternalEndpoint) -> Result<Self, FieldIssues> {
        let mut issues = FieldIssues::default();
        let address = host_port(&raw.address, "address", &mut issues);
        let tls = optional::<RawTlsSettings, TlsSettings>(raw.tls.as_ref(), "tls", &mut issues);
        let client = optional::<RawProxyClientSettings, ProxyClientSettings>(
            raw.jsonrpc_client.as_ref(),
            "jsonrpc_client",
            &mut issues,
        );
        if !raw.jsonrpc_path.starts_with('/') {
            issues.push("jsonrpc_path", "must start with /");
        }
        let timeout = secs_or(
            raw.timeout,
            DEFAULT_TERMINATE_TIMEOUT_SECS,
            "timeout",
            0.1,
            3600.0,
            &mut issues,
        );
        let idle_timeout = secs_or(
            raw.idle_timeout,
            DEFAULT_FORWARD_IDLE_SECS,
            "idle_timeout",
            0.1,
            86_400.0,
            &mut issues,
        );
        if let Some(Some(tls)) = &tls
            && (tls.certificate_file.is_none() || tls.key_file.is_none())
        {
            issues.push("tls", "terminating TLS needs certificate_file and key_file");
        }
        if raw.send_proxy_v2 && matches!(tls, Some(Some(_))) {
            issues.push(
                "send_proxy_v2",
                "only with ForwardTLS (no tls): a terminated connection's backend talks to us",
            );
        }
        match (address, tls, client) {
            (Some(address), Some(tls), Some(jsonrpc_client)) if issues.is_empty() => Ok(Self {
                address,
                tls,
                jsonrpc_client,
                jsonrpc_path: raw.jsonrpc_path,
                timeout,
                idle_timeout,
                send_proxy_v2: raw.send_proxy_v2,
            }),
            _ => Err(issues),
        }
    }
}

impl TryFrom<RawPrivateProxySettings> for PrivateProxySettings {
    type Error = FieldIssues;

    fn try_from(raw: RawPrivateProxySettings) -> Result<Self, FieldIssues> {
        let mut issues = FieldIssues::default();
        check_name(&raw.name, &mut issues);
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
        let internal = required::<RawInternalEndpoint, InternalEndpointSettings>(
            raw.internal_endpoint.as_ref(),
            "internal_endpoint",
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
        let dial_timeout = secs_or(
            raw.dial_timeout,
            DEFAULT_DIAL_TIMEOUT_SECS,
            "dial_timeout",
            0.01,
            600.0,
            &mut issues,
        );
        let reannounce_interval = secs_or(
            raw.reannounce_interval,
            DEFAULT_REANNOUNCE_SECS,
            "reannounce_interval",
            1.0,
            86_400.0,
            &mut issues,
        );
        let announcements = optional::<RawAnnouncementSettings, AnnouncementSettings>(
            raw.announcements.as_ref(),
            "announcements",
            &mut issues,
        );
        match (datastore, client, server, internal, announcements) {
            (
                Some(datastore),
                Some(jsonrpc_client),
                Some(jsonrpc_server),
                Some(internal_endpoint),
                Some(announcements),
            ) if issues.is_empty() => Ok(Self {
                name: raw.name,
                datastore,
                jsonrpc_client,
                jsonrpc_server,
                internal_endpoint,
                call_timeout,
                dial_timeout,
                reannounce_interval,
                announcements: announcements.unwrap_or_default(),
            }),
            _ => Err(issues),
        }
    }
}

impl fmt::Display for PrivateProxySettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "private.name: {}", self.name)?;
        writeln!(f, "private.datastore: {}", self.datastore)?;
        writeln!(f, "private.jsonrpc_client: {}", self.jsonrpc_client)?;
        writeln!(f, "private.jsonrpc_server: {}", self.jsonrpc_server)?;
        let ie = &self.internal_endpoint;
        let mode = match (&ie.tls, &ie.jsonrpc_client) {
            (None, _) => "forward-tls".to_owned(),
            (Some(_), None) => "terminate-tls->http".to_owned(),
            (Some(_), Some(c)) => format!("terminate-tls->jsonrpc({})", c.endpoint),
        };
        writeln!(
            f,
            "private.internal_endpoint: address={} mode={mode} timeout={:?} idle_timeout={:?} send_proxy_v2={}",
            ie.address, ie.timeout, ie.idle_timeout, ie.send_proxy_v2
        )?;
        writeln!(
            f,
            "private.timeouts: call={:?} dial={:?} reannounce={:?}",
            self.call_timeout, self.dial_timeout, self.reannounce_interval
        )?;
        writeln!(
            f,
            "private.announcements: per_operator_quota={} max_lifetime={:?}",
            self.announcements.per_operator_quota, self.announcements.max_lifetime
        )
    }
}
