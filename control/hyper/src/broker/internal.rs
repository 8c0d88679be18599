//! Methods a node answers itself when addressed (SPEC §2.5): `_ping`, `_directory`, and the
//! `_connectionRequest` hand-off to a pluggable [`ConnectionRequestHandler`] (the proxy path).

use crate::broker::ChannelError;
use serde_json::{Map, Value};

use super::types::{
    Address, BoxFuture, ClientInfo, DeliveryError, Entries, HyperRequest, HyperResponse,
};
#[cfg(doc)]
use tandem_contracts::hyper_node::Pong;
use tandem_contracts::hyper_node::{Directory, DirectoryAnswer};
use tandem_contracts::{Call, ContractError, decode_params, encode_result};
use tandem_directory::permissions::filter;
use tandem_directory::time::RecordTime;

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

/// `_ping` ([`Pong`]): the version, the clock (RFC 3339 with nanoseconds), the params as received
/// (including `_client`, moved in) and our own entry as JSON (`server_info`, made once per
/// directory snapshot by the broker). The object is [`Pong`]'s serde form, built by hand so that
/// neither the params nor the entry are copied or serialised per call (a test compares it with
/// [`encode_result`] of the typed [`Pong`]). The response id is the caller's original id
/// (`address.id`), as in the original.
pub fn ping(
    address: &Address,
    params: Map<String, Value>,
    server_info: Value,
    version: &str,
) -> HyperResponse {
    let mut result = Map::new();
    result.insert("version".into(), Value::String(version.to_owned()));
    let now = RecordTime::from_utc(chrono::Utc::now()).to_rfc3339_nano();
    result.insert("timestamp".into(), Value::String(now));
    result.insert("params".into(), Value::Object(params));
    result.insert("serverInfo".into(), server_info);
    HyperResponse::result(address.id.clone(), result)
}

/// `_directory` ([`Directory`]): the entries matching the query, `{"entries": [...]}` in name
/// order.
pub fn directory(
    address: &Address,
    request: &HyperRequest,
    entries: &Entries,
) -> Result<HyperResponse, DeliveryError> {
    let query = decode_params::<Directory>(request.params.clone())
        .map_err(|e| internal(e.to_string()))?
        .into_query();
    let found = DirectoryAnswer {
        entries: filter(entries.values(), &query)
            .into_iter()
            .cloned()
            .collect(),
    };
    answer::<Directory>(address, &found)
}

/// The response carrying `result` (an object, as every internal method's result is).
fn answer<C: Call>(address: &Address, result: &C::Result) -> Result<HyperResponse, DeliveryError> {
    match encode_result::<C>(result) {
        Ok(Value::Object(map)) => Ok(HyperResponse::result(address.id.clone(), map)),
        Ok(_) => Err(internal(
            ContractError::NotAnObject {
                method: C::method(),
            }
            .to_string(),
        )),
        Err(e) => Err(internal(e.to_string())),
    }
}

/// An internal method failed: the original returns a Go error ("error handling internal request").
pub(crate) fn internal(reason: String) -> DeliveryError {
    DeliveryError::Channel(ChannelError::Internal(reason))
}

#[cfg(test)]
mod tests {
    use serde_json::json;
    use tandem_directory::entry::DirectoryEntry;

    use super::*;

    fn request(params: Value) -> HyperRequest {
        HyperRequest {
            method: "hd-1._directory".into(),
            params: params.as_object().cloned().unwrap(),
            id: "hd-1._directory(1)".into(),
            client_name: "hd-1".into(),
        }
    }

    #[test]
    fn directory_filters_by_operator_and_refuses_wrong_types() {
        let address = Address::parse("hd-1._directory(1)").unwrap();
        let entries: Entries = std::sync::Arc::new(
            ["hd-1", "hd-2"]
                .map(|n| (n.to_owned(), DirectoryEntry::new(n)))
                .into_iter()
                .collect(),
        );
        let found = directory(
            &address,
            &request(json!({"operator": "hd-2", "_client": {}})),
            &entries,
        )
        .unwrap();
        let listed = &found.result.unwrap()["entries"];
        assert_eq!(listed.as_array().unwrap().len(), 1);
        assert_eq!(listed[0]["name"], "hd-2");
        let all = directory(&address, &request(json!({})), &entries).unwrap();
        assert_eq!(all.result.unwrap()["entries"].as_array().unwrap().len(), 2);
        let err = directory(&address, &request(json!({"channels": "x"})), &entries).unwrap_err();
        assert!(err.to_string().contains("channels"), "{err}");
    }

    #[test]
    fn ping_echoes_the_params_and_names_the_server_as_the_typed_pong() {
        use tandem_contracts::hyper_node::{Ping, Pong};
        let address = Address::parse("hd-1._ping(7)").unwrap();
        let own = DirectoryEntry::new("hd-1");
        let params = request(json!({"x": 1})).params;
        let info = serde_json::to_value(&own).unwrap();
        let pong = ping(&address, params.clone(), info, "v1");
        assert_eq!(pong.id, "7");
        let result = pong.result.unwrap();
        assert_eq!(result["version"], "v1");
        assert_eq!(result["params"], json!({"x": 1}));
        assert_eq!(result["serverInfo"]["name"], "hd-1");
        let timestamp = result["timestamp"].as_str().unwrap().to_owned();
        assert!(timestamp.contains('T'));
        let typed = Pong {
            version: "v1".into(),
            timestamp,
            params,
            server_info: own,
        };
        let Value::Object(expected) = encode_result::<Ping>(&typed).unwrap() else {
            panic!("a Pong is an object")
        };
        assert_eq!(result, expected, "the hand-built answer is the contract's");
    }
}
