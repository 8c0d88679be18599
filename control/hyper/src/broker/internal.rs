//! Methods a node answers itself when addressed (SPEC §2.5): `_ping`, `_directory`, and the
//! `_connectionRequest` hand-off to a pluggable [`ConnectionRequestHandler`] (the proxy path).

use crate::broker::ChannelError;
use serde_json::{Map, Value, json};

use super::types::{
    Address, BoxFuture, ClientInfo, DeliveryError, Entries, HyperRequest, HyperResponse,
};
use tandem_directory::entry::DirectoryEntry;
use tandem_directory::permissions::{DirectoryQuery, filter};
use tandem_directory::time::RecordTime;

/// The internal method names.
pub const PING: &str = "_ping";
/// See [`PING`].
pub const DIRECTORY: &str = "_directory";
/// See [`PING`].
pub const CONNECTION_REQUEST: &str = "_connectionRequest";

/// Handles `_connectionRequest` (SPEC §4.5): set by the proxy issue (the `grpc_server` channel dials
/// the proxy's internal endpoint with the token). `Ok(None)` means "not mine, ask the next handler".
pub trait ConnectionRequestHandler: Send + Sync + 'static {
    /// Handles one request addressed to this node's `_connectionRequest`, sent by `caller` (the
    /// authenticated last hop, with its directory entry: the proxy operator on the proxy path).
    fn handle_connection_request<'a>(
        &'a self,
        address: &'a Address,
        request: &'a HyperRequest,
        caller: &'a ClientInfo,
    ) -> BoxFuture<'a, Result<Option<HyperResponse>, DeliveryError>>;
}

/// `_ping`: `{version, timestamp (RFC 3339 with nanoseconds), params (incl. _client), serverInfo}`.
/// The response id is the caller's original id (`address.id`), as in the original.
pub fn ping(
    address: &Address,
    request: &HyperRequest,
    own: &DirectoryEntry,
    version: &str,
) -> Result<HyperResponse, DeliveryError> {
    let server_info =
        serde_json::to_value(own).map_err(|e| internal(format!("serverInfo: {e}")))?;
    let mut result = Map::new();
    result.insert("version".into(), json!(version));
    result.insert(
        "timestamp".into(),
        json!(RecordTime::from_utc(chrono::Utc::now()).to_rfc3339_nano()),
    );
    result.insert("params".into(), Value::Object(request.params.clone()));
    result.insert("serverInfo".into(), server_info);
    Ok(HyperResponse::result(address.id.clone(), result))
}

/// `_directory`: params `group`, `operator` (strings) and `channels` (list of strings), all optional;
/// result `{"entries": [...]}` in name order.
pub fn directory(
    address: &Address,
    request: &HyperRequest,
    entries: &Entries,
) -> Result<HyperResponse, DeliveryError> {
    let query = query(&request.params)?;
    let found = filter(entries.values(), &query);
    let entries = serde_json::to_value(found).map_err(|e| internal(format!("entries: {e}")))?;
    let mut result = Map::new();
    result.insert("entries".into(), entries);
    Ok(HyperResponse::result(address.id.clone(), result))
}

/// Reads the query form: unknown keys (such as `_client`) are ignored, as the original's form does.
fn query(params: &Map<String, Value>) -> Result<DirectoryQuery, DeliveryError> {
    let text = |key: &str| match params.get(key) {
        None | Some(Value::Null) => Ok(String::new()),
        Some(Value::String(s)) => Ok(s.clone()),
        Some(_) => Err(internal(format!("{key}: must be a string"))),
    };
    let channels = match params.get("channels") {
        None | Some(Value::Null) => None,
        Some(Value::Array(items)) => Some(
            items
                .iter()
                .map(|v| v.as_str().map(str::to_owned))
                .collect::<Option<Vec<_>>>()
                .ok_or_else(|| internal("channels: must be a list of strings".into()))?,
        ),
        Some(_) => return Err(internal("channels: must be a list of strings".into())),
    };
    Ok(DirectoryQuery {
        group: text("group")?,
        operator: text("operator")?,
        channels,
    })
}

/// An internal method failed: the original returns a Go error ("error handling internal request").
pub(crate) fn internal(reason: String) -> DeliveryError {
    DeliveryError::Channel(ChannelError::Internal(reason))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_query_form_reads_optional_fields_and_refuses_wrong_types() {
        let params = |v: Value| v.as_object().cloned().unwrap();
        let q = query(&params(
            json!({"group": "g", "channels": ["grpc_server"], "_client": {}}),
        ));
        assert_eq!(
            q.unwrap(),
            DirectoryQuery {
                group: "g".into(),
                operator: String::new(),
                channels: Some(vec!["grpc_server".into()])
            }
        );
        assert!(query(&params(json!({"operator": 5}))).is_err());
        assert!(query(&params(json!({"channels": [1]}))).is_err());
        assert!(query(&params(json!({"channels": "x"}))).is_err());
        assert_eq!(
            query(&params(json!({}))).unwrap(),
            DirectoryQuery::default()
        );
    }
}
