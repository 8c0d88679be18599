//! Who is calling: the peer check (only our own Hyper node may call a proxy over TLS), the
//! `_client` that Hyper injects, and the caller's `proxy` settings.

use std::future::Future;

use serde_json::{Map, Value};
use tracing::info;

use super::error::CallError;
pub use tandem_contracts::ClientInfo;
use tandem_contracts::{CLIENT_KEY, Call, decode_params};
use tandem_directory::endpoints::owns_endpoint;
use tandem_directory::entry::DirectoryEntry;
use tandem_directory::identity::{NameRefusal, allowed_name};
use tandem_directory::source::DirectorySource;
use tandem_net::http::PeerInfo;
use tandem_net::jsonrpc::{ErrorObject, Request};
use tandem_net::tls::certificate_names;

/// One JSON-RPC call to a proxy: the peer check ([`check_peer`]), then `dispatch` with the
/// method and params; a refusal is logged once and becomes the call's error object.
pub async fn checked_call<F>(
    peer: &PeerInfo,
    own_name: &str,
    check: bool,
    pins: &dyn DirectorySource,
    request: Request,
    dispatch: impl FnOnce(String, Map<String, Value>) -> F,
) -> Result<Value, ErrorObject>
where
    F: Future<Output = Result<Value, CallError>>,
{
    let method = request.method.clone();
    let result = match check_peer(peer, own_name, check, pins).await {
        Err(e) => Err(e),
        Ok(()) => dispatch(request.method, request.params).await,
    };
    result.map_err(|e| {
        info!(%method, kind = e.kind(), error = %e, "call refused");
        e.to_error_object()
    })
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
        operator: caller.name.to_string(),
    })
}

/// A routed call's typed params and its caller: removes and decodes `_client` (injected by our
/// Hyper node on every hop), then decodes the rest as `C`'s params.
pub fn called<C: Call>(mut params: Map<String, Value>) -> Result<(ClientInfo, C), CallError> {
    let raw = params.remove(CLIENT_KEY).ok_or_else(|| {
        CallError::InvalidParams(format!("{CLIENT_KEY}: required (injected by Hyper)"))
    })?;
    let client = client_info(raw)?;
    Ok((client, decode_params::<C>(params)?))
}

/// `_client` as a proxy needs it: the name (validated) and the entry read with
/// [`DirectoryEntry::from_informational`], so that a Hyper node on a `json` directory or an older
/// node's entry shape is served; the parts that grant something stay strict.
fn client_info(raw: Value) -> Result<ClientInfo, CallError> {
    let invalid = |reason: String| CallError::InvalidParams(format!("{CLIENT_KEY}: {reason}"));
    let Value::Object(mut map) = raw else {
        return Err(invalid("must be an object {name, entry}".into()));
    };
    let name = map
        .remove("name")
        .ok_or_else(|| invalid("name: required".into()))
        .and_then(|n| serde_json::from_value(n).map_err(|e| invalid(format!("name: {e}"))))?;
    let entry = map
        .remove("entry")
        .ok_or_else(|| invalid("entry: required".into()))
        .and_then(|e| {
            DirectoryEntry::from_informational(e).map_err(|e| invalid(format!("entry: {e}")))
        })?;
    Ok(ClientInfo { name, entry })
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

#[cfg(test)]
mod client_tests {
    use serde_json::json;

    use super::*;

    fn entry(extra: Value) -> Value {
        let mut e = json!({
            "name": "hd-1", "groups": ["health-departments"], "channels": [],
            "services": [], "certificates": [], "settings": [], "preferences": null
        });
        for (k, v) in extra.as_object().unwrap() {
            e[k] = v.clone();
        }
        e
    }

    #[test]
    fn client_is_read_tolerantly_where_it_only_informs() {
        // A json directory's records (no hash) and an older node's entry (no properties, null lists).
        let unsigned = json!([{"hash": "", "record": {"name": "hd-1"}}]);
        let raw =
            json!({"name": "hd-1", "entry": entry(json!({"records": unsigned, "channels": null}))});
        let client = client_info(raw).unwrap();
        assert_eq!(client.name.as_str(), "hd-1");
        assert_eq!(client.entry.groups, ["health-departments"]);
        assert!(client.entry.records.is_empty() && client.entry.channels.is_empty());
    }

    #[test]
    fn what_grants_something_stays_strict() {
        for (raw, says) in [
            (
                json!({"name": "hd-1", "entry": entry(json!({"groups": "all"}))}),
                "entry",
            ),
            (
                json!({"name": "bad name", "entry": entry(json!({}))}),
                "name",
            ),
            (json!({"entry": entry(json!({}))}), "name: required"),
            (json!("hd-1"), "must be an object"),
        ] {
            match client_info(raw) {
                Err(CallError::InvalidParams(reason)) => assert!(reason.contains(says), "{reason}"),
                other => panic!("{other:?}"),
            }
        }
    }
}
