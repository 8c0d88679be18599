//! Hyper messages ↔ protobuf messages, and the single place where delivery errors become gRPC
//! statuses and gRPC statuses become delivery errors.

use crate::broker::ChannelError;
use serde_json::{Map, Value};
use tandem_proto::hyper as pb;
use tonic::{Code, Status};

use crate::broker::types::{DeliveryError, HyperError, HyperRequest, HyperResponse};

/// A request as sent on the wire (taken by value: its strings and params move into the message,
/// which the `Hyper` codec encodes straight from JSON).
pub fn request_to_pb(request: HyperRequest) -> pb::Request {
    pb::Request {
        method: request.method,
        params: Some(request.params),
        id: request.id,
        client_name: request.client_name,
    }
}

/// A request from the wire (absent params are an empty object, as Go's `AsMap` of nil). A
/// `_client` sent along is dropped (the codec already skips it unread): the broker injects the
/// authenticated caller's own.
pub fn request_from_pb(request: pb::Request) -> HyperRequest {
    HyperRequest {
        method: request.method,
        params: request
            .params
            .map(|mut p| {
                p.remove(tandem_proto::CLIENT_KEY);
                p
            })
            .unwrap_or_default(),
        id: request.id,
        client_name: request.client_name,
    }
}

/// A response as sent on the wire (taken by value). Codes outside `i32` are clamped (the field
/// is `int32`).
pub fn response_to_pb(response: HyperResponse) -> pb::Response {
    pb::Response {
        id: response.id,
        result: response.result,
        error: response.error.map(|e| pb::Error {
            code: i32::try_from(e.code).unwrap_or(if e.code < 0 { i32::MIN } else { i32::MAX }),
            message: e.message,
            data: e.data,
        }),
    }
}

/// A response from the wire. As the original's `result.AsMap()`, an absent result is `{}` unless
/// the response carries an error.
pub fn response_from_pb(response: pb::Response) -> HyperResponse {
    let error = response.error.map(|e| HyperError {
        code: i64::from(e.code),
        message: e.message,
        data: e.data,
    });
    let result = match (response.result, &error) {
        (Some(result), _) => Some(result),
        (None, None) => Some(Map::new()),
        (None, Some(_)) => None,
    };
    HyperResponse {
        id: response.id,
        result,
        error,
    }
}

/// The reverse-stream announcement `Response{id: "1", result: {"name": <own name>}}`.
pub fn announcement(own_name: &str) -> pb::Response {
    let mut result = Map::new();
    result.insert("name".into(), Value::String(own_name.to_owned()));
    pb::Response {
        id: "1".into(),
        result: Some(result),
        error: None,
    }
}

/// The name in an announcement, if it is one.
pub fn announced_name(response: &pb::Response) -> Option<String> {
    match response.result.as_ref()?.get("name") {
        Some(Value::String(name)) if !name.is_empty() => Some(name.clone()),
        _ => None,
    }
}

/// A failed delivery as the gRPC status of `Call` (the original's "error handling gRPC request").
pub fn status_for(error: &DeliveryError) -> Status {
    Status::unknown(format!("{DELIVERY_ERROR_PREFIX}: {error}"))
}

/// The prefix of the delivery errors a Hyper server returns (`status_for`; the original's text).
const DELIVERY_ERROR_PREFIX: &str = "error handling gRPC request";

/// Whether a failed call says the node (its connection) failed rather than the call: a refused or
/// broken connection, a protocol error, a cancelled stream. Such a call may be tried on another
/// node of the operator; a server's own answer (a delivery error, a refusal) is final.
pub fn is_node_failure(status: &Status) -> bool {
    match status.code() {
        Code::Unavailable | Code::Internal | Code::Cancelled => true,
        Code::Unknown => !status.message().starts_with(DELIVERY_ERROR_PREFIX),
        _ => false,
    }
}

/// A failed call to `peer` as a delivery error.
pub fn delivery_error(peer: &str, status: &Status) -> DeliveryError {
    let what = match status.code() {
        Code::Unavailable => "unavailable",
        Code::DeadlineExceeded => "deadline exceeded",
        Code::OutOfRange | Code::ResourceExhausted => "message too large or resources exhausted",
        Code::PermissionDenied | Code::Unauthenticated => "refused",
        _ => "failed",
    };
    DeliveryError::Channel(ChannelError::Grpc {
        peer: peer.to_owned(),
        what,
        message: status.message().to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn obj(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(m) => m,
            _ => unreachable!(),
        }
    }

    #[test]
    fn requests_round_trip_through_protobuf() {
        let request = HyperRequest {
            method: "hd-2._ping".into(),
            params: obj(json!({"a": [1, null], "_client": {"name": "hd-1"}})),
            id: "hd-2._ping(n:1)".into(),
            client_name: "hd-1".into(),
        };
        let back = request_from_pb(request_to_pb(request.clone()));
        assert_eq!(
            back.params,
            obj(json!({"a": [1, null]})),
            "a sent _client is dropped"
        );
        assert_eq!((back.method, back.id), (request.method, request.id));
        assert_eq!(back.client_name, request.client_name);
        let empty = request_from_pb(pb::Request::default());
        assert!(empty.params.is_empty());
    }

    #[test]
    fn responses_round_trip_and_absent_results_are_empty_objects() {
        let ok = HyperResponse::result("x(1)", obj(json!({"_": 3})));
        assert_eq!(response_from_pb(response_to_pb(ok.clone())), ok);
        let mut err = HyperResponse::error("x(1)", 403, "denied");
        if let Some(e) = err.error.as_mut() {
            e.data = Some(obj(json!({"k": "v"})));
        }
        assert_eq!(response_from_pb(response_to_pb(err.clone())), err);
        let bare = response_from_pb(pb::Response {
            id: "x(1)".into(),
            ..Default::default()
        });
        assert_eq!(bare.result, Some(Map::new()));
        let huge = HyperResponse::error("x", i64::MAX, "m");
        assert_eq!(response_to_pb(huge).error.unwrap().code, i32::MAX);
    }

    #[test]
    fn announcements_carry_the_name() {
        assert_eq!(
            announced_name(&announcement("hd-2")).as_deref(),
            Some("hd-2")
        );
        assert_eq!(announced_name(&pb::Response::default()), None);
        let mut bad = announcement("hd-2");
        bad.result = Some(obj(json!({"name": 5})));
        assert_eq!(announced_name(&bad), None);
    }

    #[test]
    fn delivery_errors_become_unknown_statuses() {
        let status = status_for(&DeliveryError::NoChannel);
        assert_eq!(status.code(), Code::Unknown);
        assert_eq!(
            status.message(),
            "error handling gRPC request: no channel can deliver this request"
        );
        assert!(!is_node_failure(&status), "a server's answer is final");
        for failed in [
            Status::unavailable("connection refused"),
            Status::internal("h2 protocol error"),
            Status::cancelled("connection closed"),
            Status::unknown("transport error"),
        ] {
            assert!(is_node_failure(&failed), "{failed:?}");
        }
        assert!(!is_node_failure(&Status::permission_denied("no")));
        let back = delivery_error("hd-2", &Status::unavailable("gone"));
        assert_eq!(back.kind(), "channel");
        assert!(back.to_string().contains("hd-2 unavailable: gone"));
    }
}
