//! Methods a node answers itself when addressed (SPEC §2.5): `_ping`, `_directory`, and the
//! `_connectionRequest` hand-off to a pluggable [`ConnectionRequestHandler`] (the proxy path).

use crate::broker::ChannelError;
use serde_json::Value;

use super::types::{
    Address, BoxFuture, ClientInfo, DeliveryError, Entries, HyperRequest, HyperResponse,
};
use tandem_contracts::hyper_node::{Directory, DirectoryAnswer, Ping, Pong};
use tandem_contracts::{Call, ContractError, decode_params, encode_result};
use tandem_directory::entry::DirectoryEntry;
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
/// (including `_client`) and our own entry. The response id is the caller's original id
/// (`address.id`), as in the original.
pub fn ping(
    address: &Address,
    request: &HyperRequest,
    own: &DirectoryEntry,
    version: &str,
) -> Result<HyperResponse, DeliveryError> {
    let pong = Pong {
        version: version.to_owned(),
        timestamp: RecordTime::from_utc(chrono::Utc::now()).to_rfc3339_nano(),
        params: request.params.clone(),
        server_info: own.clone(),
    };
    answer::<Ping>(address, &pong)
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
    fn ping_echoes_the_params_and_names_the_server() {
        let address = Address::parse("hd-1._ping(7)").unwrap();
        let own = DirectoryEntry::new("hd-1");
        let pong = ping(&address, &request(json!({"x": 1})), &own, "v1").unwrap();
        assert_eq!(pong.id, "7");
        let result = pong.result.unwrap();
        assert_eq!(result["version"], "v1");
        assert_eq!(result["params"], json!({"x": 1}));
        assert_eq!(result["serverInfo"]["name"], "hd-1");
        assert!(result["timestamp"].as_str().unwrap().contains('T'));
    }
}
