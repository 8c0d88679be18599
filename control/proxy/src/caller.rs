//! Who is calling: the peer check (only our own Hyper node may call a proxy over TLS), the
//! `_client` that Hyper injects, and small params readers.

use serde::Deserialize;
use serde_json::{Map, Value};

use super::error::CallError;
use tandem_directory::endpoints::owns_endpoint;
use tandem_directory::entry::DirectoryEntry;
use tandem_directory::identity::{NameRefusal, allowed_name};
use tandem_directory::source::DirectorySource;
use tandem_net::http::PeerInfo;
use tandem_net::tls::certificate_names;

/// `_client`: the operator that made the call (last hop) and its directory entry (SPEC §2.4).
#[derive(Debug, Clone, Deserialize, serde::Serialize)]
pub struct ClientInfo {
    /// Operator name.
    pub name: String,
    /// Its directory entry.
    pub entry: DirectoryEntry,
}

/// Checks that the HTTP peer is our Hyper node: when the server asks for client certificates
/// (`check`), the verified certificate must carry our operator name (our Hyper node presents
/// our certificate, SPEC §5.3) and, where the directory (`pins`, through our Hyper node) pins
/// `encryption` certificates for our name, be one of them (`allowed_name`, the rule of every
/// door). Without client certificates (the dev private proxy on plain HTTP on localhost) the
/// caller cannot be told apart and is accepted; start-up logs that.
pub async fn check_peer(
    peer: &PeerInfo,
    own_name: &str,
    check: bool,
    pins: &dyn DirectorySource,
) -> Result<(), CallError> {
    if !check {
        return Ok(());
    }
    let leaf = peer.leaf.as_deref().ok_or(CallError::NotOurHyper)?;
    // Names first: a stranger does not make us read the directory.
    if !certificate_names(leaf).iter().any(|n| n == own_name) {
        return Err(CallError::NotOurHyper);
    }
    let entries = pins.entries().await.map_err(CallError::CallerCheck)?;
    match allowed_name(leaf, |n| n == own_name, &entries) {
        Ok(_) => Ok(()),
        Err(NameRefusal::NotPinned { .. }) => Err(CallError::NotPinned),
        Err(NameRefusal::NotListed { .. }) => Err(CallError::NotOurHyper),
    }
}

/// Checks that `endpoint` is a pairing endpoint of `caller` (a public proxy, from the directory
/// entry our Hyper node injected into `_client`): a proxy makes us dial only its own endpoints.
pub fn check_endpoint(caller: &ClientInfo, endpoint: &str) -> Result<(), CallError> {
    if owns_endpoint(&caller.entry, endpoint) {
        return Ok(());
    }
    Err(CallError::ForeignEndpoint {
        endpoint: endpoint.to_owned(),
        operator: caller.name.clone(),
    })
}

/// Reads and removes `_client`.
pub fn client_info(params: &mut Map<String, Value>) -> Result<ClientInfo, CallError> {
    let raw = params
        .remove("_client")
        .ok_or_else(|| CallError::InvalidParams("_client: required (injected by Hyper)".into()))?;
    let info: ClientInfo = serde_json::from_value(raw)
        .map_err(|e| CallError::InvalidParams(format!("_client: {e}")))?;
    if info.name.is_empty() {
        return Err(CallError::InvalidParams("_client.name: empty".into()));
    }
    Ok(info)
}

/// A required string param.
pub fn string(params: &Map<String, Value>, key: &str) -> Result<String, CallError> {
    match params.get(key) {
        Some(Value::String(s)) => Ok(s.clone()),
        Some(_) => Err(CallError::InvalidParams(format!("{key}: must be a string"))),
        None => Err(CallError::InvalidParams(format!("{key}: required"))),
    }
}

/// An optional `expires_at` (RFC 3339); `null` and absent mean "never".
pub fn expires_at(
    value: Option<&Value>,
    key: &str,
) -> Result<Option<chrono::DateTime<chrono::Utc>>, CallError> {
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => chrono::DateTime::parse_from_rfc3339(s)
            .map(|t| Some(t.with_timezone(&chrono::Utc)))
            .map_err(|e| CallError::InvalidParams(format!("{key}: {e}"))),
        Some(_) => Err(CallError::InvalidParams(format!(
            "{key}: must be an RFC 3339 string"
        ))),
    }
}

/// `allowed_domains` of the caller's `proxy` settings for `proxy_name` (SPEC §4.2):
/// none → 403 "not authorized"; malformed (not a list of strings starting with `.`) → 500.
pub fn allowed_domains(entry: &DirectoryEntry, proxy_name: &str) -> Result<Vec<String>, CallError> {
    let settings = entry
        .settings_for("proxy", proxy_name)
        .ok_or(CallError::NotAuthorized)?;
    let list = settings
        .settings
        .as_ref()
        .and_then(|s| s.get("allowed_domains"))
        .and_then(Value::as_array)
        .ok_or(CallError::InvalidDirectorySettings)?;
    list.iter()
        .map(|d| match d.as_str() {
            Some(s) if s.starts_with('.') => Ok(s.to_owned()),
            _ => Err(CallError::InvalidDirectorySettings),
        })
        .collect()
}

/// The raw settings of the caller's `proxy` settings item (error data of a refusal).
pub fn proxy_settings_value(entry: &DirectoryEntry, proxy_name: &str) -> Value {
    entry
        .settings_for("proxy", proxy_name)
        .and_then(|s| s.settings.clone())
        .map(Value::Object)
        .unwrap_or(Value::Null)
}
