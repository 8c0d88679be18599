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

/// Whether a failed call provably never reached the server's application, so sending it again
/// cannot run it twice (gRPC's "transparent retry"):
/// - hyper's `Canceled`: the connection closed before the request was written;
/// - an HTTP/2 `RST_STREAM(REFUSED_STREAM)` from the server (RFC 9113 §8.7: not processed);
/// - an HTTP/2 `GOAWAY(NO_ERROR)` from the server that h2 applied to our stream (it does so only
///   for streams above the server's last processed stream id, or not yet opened).
///
/// Anything else (another reset, a connection broken mid-call, a deadline) may come after the
/// server ran the call, and is not a never-sent failure.
pub fn never_sent(status: &Status) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(status);
    while let Some(error) = source {
        if error
            .downcast_ref::<hyper::Error>()
            .is_some_and(hyper::Error::is_canceled)
        {
            return true;
        }
        if let Some(h2) = error.downcast_ref::<h2::Error>() {
            return h2_never_sent(h2);
        }
        source = error.source();
    }
    false
}

/// The h2 half of [`never_sent`]: only errors the server sent, with the two "not processed" reasons.
fn h2_never_sent(error: &h2::Error) -> bool {
    if !error.is_remote() {
        return false;
    }
    match error.reason() {
        Some(h2::Reason::REFUSED_STREAM) => error.is_reset(),
        Some(h2::Reason::NO_ERROR) => error.is_go_away(),
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
        assert!(
            !never_sent(&Status::unavailable("gone")),
            "no source: may have run"
        );
        assert_eq!(back.kind(), "channel");
        assert!(back.to_string().contains("hd-2 unavailable: gone"));
    }
}

#[cfg(test)]
mod never_sent_tests {
    use super::*;

    /// A real hyper `Canceled`: a request handed to an HTTP/2 client connection whose connection
    /// task is gone (what a cached channel meets when its connection closed under it), as tonic
    /// turns it into a status.
    async fn canceled_status() -> Status {
        let (ours, _theirs) = tokio::io::duplex(1024);
        let (mut send, connection) =
            hyper::client::conn::http2::handshake::<_, _, http_body_util::Empty<bytes::Bytes>>(
                hyper_util::rt::TokioExecutor::new(),
                hyper_util::rt::TokioIo::new(ours),
            )
            .await
            .unwrap();
        drop(connection);
        let error = send
            .send_request(http::Request::new(http_body_util::Empty::new()))
            .await
            .unwrap_err();
        assert!(error.is_canceled(), "{error:?}");
        Status::from_error(Box::new(error))
    }

    #[tokio::test]
    async fn a_request_canceled_before_it_was_sent_was_never_sent() {
        let status = canceled_status().await;
        assert!(never_sent(&status), "{status:?}");
        // The same error nested deeper in the chain still counts.
        let wrapped = Status::from_error(Box::new(std::io::Error::other(status)));
        assert!(never_sent(&wrapped), "{wrapped:?}");
    }

    #[test]
    fn errors_not_received_from_the_server_are_not_never_sent() {
        // h2 errors of our own making (a user reason) are not the server's refusal.
        for reason in [h2::Reason::REFUSED_STREAM, h2::Reason::NO_ERROR] {
            let status = Status::from_error(Box::new(h2::Error::from(reason)));
            assert!(!never_sent(&status), "{status:?}");
        }
        let io = Status::from_error(Box::new(std::io::Error::new(
            std::io::ErrorKind::BrokenPipe,
            "connection closed",
        )));
        assert!(!never_sent(&io));
        assert!(!never_sent(&Status::deadline_exceeded("late")));
        assert!(!never_sent(&Status::cancelled("cancelled")));
    }
}
