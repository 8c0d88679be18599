//! The `jsonrpc_server` channel's handler (SPEC §2.3): the operator's local JSON-RPC gateway turns
//! `operator.method` calls from local applications into broker requests, and takes `respond` calls
//! that complete asynchronous replies ([`super::pending`]).

use std::future::Future;
use std::sync::Arc;

use serde_json::{Map, Value, json};
use tracing::debug;

use super::admission::GatewayAdmission;
use super::jsonrpc_client::error_object;
use super::message_broker::MessageBroker;
use super::types::{Address, DeliveryError, HyperRequest, HyperResponse};
use super::wrap::{from_hyper_struct, to_hyper_struct};
use tandem_net::http::{Methods, PeerInfo};
use tandem_net::jsonrpc::{ErrorObject, INTERNAL_ERROR, INVALID_PARAMS, NOT_FOUND, Request};

/// The method a local application calls to answer a request later.
pub const RESPOND: &str = "respond";

/// The code of a broker (Go) error, as the original's gateway answers it.
pub const BROKER_ERROR: i64 = 1;

/// The local JSON-RPC gateway of one operator. Every admitted caller is treated as the operator
/// itself (SPEC §6.4); [`GatewayAdmission`] decides who is admitted.
#[derive(Debug, Clone)]
pub struct JsonRpcGateway {
    broker: Arc<MessageBroker>,
    admission: GatewayAdmission,
}

impl JsonRpcGateway {
    /// A gateway delivering through `broker` for the callers `admission` admits.
    pub fn new(broker: Arc<MessageBroker>, admission: GatewayAdmission) -> Self {
        Self { broker, admission }
    }

    async fn handle(&self, request: Request, peer: PeerInfo) -> Result<Value, ErrorObject> {
        self.admission
            .admit(&peer, self.broker.directory().as_ref())
            .await
            .map_err(|refusal| refusal.to_error_object())?;
        if request.method == RESPOND {
            return self.respond(request.params);
        }
        let id = Address::format(&request.method, &request.id.to_internal());
        let name = self.broker.operator().clone();
        let entries = self
            .broker
            .directory()
            .entries()
            .await
            .map_err(|e| broker_error(e.into()))?;
        if !entries.contains_key(name.as_str()) {
            return Err(
                ErrorObject::new(INTERNAL_ERROR, "internal error").with_data(
                    json!({"reason": format!("no directory entry for this operator ({name})")}),
                ),
            );
        }
        let hyper = HyperRequest {
            method: request.method,
            params: request.params,
            id,
            client_name: name.to_string(),
        };
        // The broker takes the entry from the same kind of snapshot: no copy here.
        let response = self
            .broker
            .deliver_from(hyper, name)
            .await
            .map_err(broker_error)?;
        to_jsonrpc(response)
    }

    /// `respond {id, result}` or `respond {id, error: {code, message, data}}`.
    fn respond(&self, mut params: Map<String, Value>) -> Result<Value, ErrorObject> {
        let invalid = |reason: &str| {
            ErrorObject::new(INVALID_PARAMS, "invalid params").with_data(json!(reason))
        };
        let Some(Value::String(id)) = params.remove("id") else {
            return Err(invalid(
                "id: required string (the id of the delivered request)",
            ));
        };
        let result = params.remove("result");
        let error = params.remove("error").filter(|e| !e.is_null());
        let response = match (result, error) {
            (_, Some(error)) => {
                let error = error_object(error)
                    .map_err(|_| invalid("error: must be {code, message, data}"))?;
                HyperResponse {
                    id: id.clone(),
                    result: None,
                    error: Some(error),
                }
            }
            (Some(result), None) => HyperResponse::result(id.clone(), to_hyper_struct(result)),
            (None, None) => return Err(invalid("result or error: one is required")),
        };
        self.broker.pending().complete(&id, response).map_err(|e| {
            debug!(%id, error = %e, "respond for an unknown request");
            ErrorObject::new(NOT_FOUND, e.to_string())
        })?;
        Ok(json!("ok"))
    }
}

/// A broker failure (a Go error in the original): code 1, its text, data `{}`.
fn broker_error(e: DeliveryError) -> ErrorObject {
    debug!(kind = e.kind(), error = %e, "delivery failed");
    ErrorObject::new(BROKER_ERROR, e.to_string()).with_data(json!({}))
}

/// `FromHyperResponse`: error → same code/message/data; result unwrapped from `{"_": v}`; neither
/// (the `stdout` channel) → `{"message": "submitted"}`.
fn to_jsonrpc(response: HyperResponse) -> Result<Value, ErrorObject> {
    match (response.error, response.result) {
        (Some(error), _) => {
            let object = ErrorObject::new(error.code, error.message);
            Err(match error.data {
                Some(data) => object.with_data(from_hyper_struct(data)),
                None => object,
            })
        }
        (None, Some(result)) => Ok(from_hyper_struct(result)),
        (None, None) => Ok(json!({"message": "submitted"})),
    }
}

impl Methods for JsonRpcGateway {
    fn call(
        &self,
        request: Request,
        peer: PeerInfo,
    ) -> impl Future<Output = Result<Value, ErrorObject>> + Send {
        self.handle(request, peer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::broker::types::HyperError;

    #[test]
    fn hyper_responses_map_to_jsonrpc_like_the_original() {
        let r = HyperResponse::result("x", to_hyper_struct(json!(5)));
        assert_eq!(to_jsonrpc(r).unwrap(), json!(5));
        let r = HyperResponse {
            id: "x".into(),
            result: None,
            error: None,
        };
        assert_eq!(to_jsonrpc(r).unwrap(), json!({"message": "submitted"}));
        let error = HyperError {
            code: 403,
            message: "denied".into(),
            data: Some(to_hyper_struct(json!([1]))),
        };
        let r = HyperResponse {
            id: "x".into(),
            result: None,
            error: Some(error),
        };
        let e = to_jsonrpc(r).unwrap_err();
        assert_eq!(
            (e.code, e.message.as_str(), e.data),
            (403, "denied", Some(json!([1])))
        );
    }
}
