//! Sans-IO decoding of a JSON-RPC request body, with the original's validation rules and error codes.

use rand::RngCore;
use serde_json::{Map, Value};

use super::envelope::{ErrorObject, INVALID_REQUEST, PARSE_ERROR, Request};
use super::id::{Id, MAX_ID_LEN};

/// The longest method name accepted, in bytes (the original's form: 1..100).
pub const MAX_METHOD_LEN: usize = 100;

/// Decodes and validates a request body.
///
/// `content_type` must be `application/json` (parameters allowed); the body must be a JSON object with
/// `jsonrpc: "2.0"`, a method of 1..=100 bytes, an object `params` (required), and an optional id that is
/// a string of at most 1024 bytes or an int32. A missing or empty id is replaced by 32 random hex digits,
/// as the original does. Errors come back as the JSON-RPC error object to send (HTTP 400).
pub fn decode_request(content_type: Option<&str>, body: &[u8]) -> Result<Request, ErrorObject> {
    if !content_type.is_some_and(is_json_content_type) {
        return Err(ErrorObject::new(PARSE_ERROR, "JSON required"));
    }
    let value: Value =
        serde_json::from_slice(body).map_err(|_| ErrorObject::new(PARSE_ERROR, "JSON required"))?;
    let Value::Object(mut obj) = value else {
        return Err(ErrorObject::new(PARSE_ERROR, "JSON required"));
    };
    let invalid = |reason: &str| {
        ErrorObject::new(INVALID_REQUEST, format!("invalid request: {reason}"))
            .with_data(Value::String(reason.to_owned()))
    };
    match obj.get("jsonrpc") {
        Some(Value::String(v)) if v == "2.0" => {}
        _ => return Err(invalid("jsonrpc: must be \"2.0\"")),
    }
    let method = match obj.remove("method") {
        Some(Value::String(m)) if !m.is_empty() && m.len() <= MAX_METHOD_LEN => m,
        Some(Value::String(_)) => return Err(invalid("method: must be 1 to 100 characters")),
        _ => return Err(invalid("method: required string")),
    };
    let params = match obj.remove("params") {
        Some(Value::Object(p)) => p,
        Some(_) => return Err(invalid("params: must be an object")),
        None => return Err(invalid("params: required")),
    };
    let id = decode_id(obj.remove("id")).map_err(invalid)?;
    Ok(Request::new(method, params, id.unwrap_or_else(random_id)))
}

/// Whether a `Content-Type` header value names JSON (`(?i)^application/json(?:;.*)?$`).
pub fn is_json_content_type(value: &str) -> bool {
    let essence = value.split(';').next().unwrap_or_default().trim();
    essence.eq_ignore_ascii_case("application/json")
}

fn decode_id(raw: Option<Value>) -> Result<Option<Id>, &'static str> {
    match raw {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.is_empty() => Ok(None),
        Some(Value::String(s)) if s.len() <= MAX_ID_LEN => Ok(Some(Id::Str(s))),
        Some(Value::String(_)) => Err("id: string longer than 1024 characters"),
        Some(Value::Number(n)) => match n.as_i64() {
            Some(i) if i32::try_from(i).is_ok() => Ok(Some(Id::Num(i))),
            _ => Err("id: integers must fit in 32 bits"),
        },
        Some(_) => Err("id: must be a string or an integer"),
    }
}

/// A fresh id: hex of 16 random bytes.
pub fn random_id() -> Id {
    let mut bytes = [0u8; 16];
    rand::rng().fill_bytes(&mut bytes);
    Id::Str(hex::encode(bytes))
}

/// Builds a params object from `key: value` pairs (a convenience for clients).
pub fn params<const N: usize>(pairs: [(&str, Value); N]) -> Map<String, Value> {
    pairs.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jsonrpc::envelope::INVALID_REQUEST;

    const JSON: Option<&str> = Some("application/json; charset=utf-8");

    fn decode(body: &str) -> Result<Request, ErrorObject> {
        decode_request(JSON, body.as_bytes())
    }

    #[test]
    fn accepts_a_valid_request_and_keeps_the_id_type() {
        let r = decode(r#"{"jsonrpc":"2.0","method":"getTip","params":{},"id":7}"#).unwrap();
        assert_eq!(r.method, "getTip");
        assert_eq!(r.id, Id::Num(7));
        let r = decode(r#"{"jsonrpc":"2.0","method":"m","params":{"a":1},"id":"x"}"#).unwrap();
        assert_eq!(r.id, Id::Str("x".into()));
        assert_eq!(r.params["a"], 1);
    }

    #[test]
    fn missing_or_empty_id_gets_a_random_hex_id() {
        for body in [
            r#"{"jsonrpc":"2.0","method":"m","params":{}}"#,
            r#"{"jsonrpc":"2.0","method":"m","params":{},"id":""}"#,
        ] {
            let Id::Str(id) = decode(body).unwrap().id else {
                panic!("expected a string id")
            };
            assert_eq!(id.len(), 32);
            assert!(id.bytes().all(|b| b.is_ascii_hexdigit()));
        }
    }

    #[test]
    fn refuses_what_the_original_refuses() {
        let code = |body: &str| decode(body).unwrap_err().code;
        assert_eq!(code("not json"), PARSE_ERROR);
        assert_eq!(code("[1,2]"), PARSE_ERROR);
        assert_eq!(
            code(r#"{"jsonrpc":"1.0","method":"m","params":{}}"#),
            INVALID_REQUEST
        );
        assert_eq!(code(r#"{"jsonrpc":"2.0","params":{}}"#), INVALID_REQUEST);
        assert_eq!(
            code(r#"{"jsonrpc":"2.0","method":"","params":{}}"#),
            INVALID_REQUEST
        );
        assert_eq!(code(r#"{"jsonrpc":"2.0","method":"m"}"#), INVALID_REQUEST);
        assert_eq!(
            code(r#"{"jsonrpc":"2.0","method":"m","params":[1]}"#),
            INVALID_REQUEST
        );
        assert_eq!(
            code(r#"{"jsonrpc":"2.0","method":"m","params":{},"id":4294967296}"#),
            INVALID_REQUEST
        );
        assert_eq!(
            code(r#"{"jsonrpc":"2.0","method":"m","params":{},"id":1.5}"#),
            INVALID_REQUEST
        );
        assert_eq!(
            code(r#"{"jsonrpc":"2.0","method":"m","params":{},"id":[1]}"#),
            INVALID_REQUEST
        );
        let long = "m".repeat(101);
        assert_eq!(
            code(&format!(
                r#"{{"jsonrpc":"2.0","method":"{long}","params":{{}}}}"#
            )),
            INVALID_REQUEST
        );
    }

    #[test]
    fn requires_a_json_content_type() {
        let body = br#"{"jsonrpc":"2.0","method":"m","params":{}}"#;
        assert_eq!(decode_request(None, body).unwrap_err().code, PARSE_ERROR);
        assert_eq!(
            decode_request(Some("text/plain"), body).unwrap_err().code,
            PARSE_ERROR
        );
        assert!(decode_request(Some("Application/JSON"), body).is_ok());
    }
}
