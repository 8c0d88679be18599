//! JSON-RPC 2.0 request and response envelopes, and the error codes Tandem uses.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::id::Id;

/// Parse error: the body is not JSON or not an object.
pub const PARSE_ERROR: i64 = -32700;
/// The envelope is not a valid request.
pub const INVALID_REQUEST: i64 = -32600;
/// No such method.
pub const METHOD_NOT_FOUND: i64 = -32601;
/// The params do not fit the method.
pub const INVALID_PARAMS: i64 = -32602;
/// The server failed; the reason is logged, not sent.
pub const INTERNAL_ERROR: i64 = -32603;
/// Not found (the original's `NotFound`, used by `getEntry`).
pub const NOT_FOUND: i64 = 404;
/// Too many requests from this client (Tandem's rate limiter).
pub const RATE_LIMITED: i64 = 429;

/// A decoded request. `params` is always an object (the original rejects positional params).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Request {
    /// Always `"2.0"`.
    pub jsonrpc: String,
    /// The method name (1..=100 bytes).
    pub method: String,
    /// The params object.
    pub params: Map<String, Value>,
    /// The id as the client sent it, or a generated one when the client sent none.
    pub id: Id,
}

impl Request {
    /// A request with the given method, params and id.
    pub fn new(method: impl Into<String>, params: Map<String, Value>, id: Id) -> Self {
        Self {
            jsonrpc: "2.0".into(),
            method: method.into(),
            params,
            id,
        }
    }
}

/// An error object.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorObject {
    /// The code (JSON-RPC standard codes or the original's 400/403/404/500 family).
    pub code: i64,
    /// A short human-readable message.
    pub message: String,
    /// Optional structured details.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<Value>,
}

impl ErrorObject {
    /// An error with a code and message and no data.
    pub fn new(code: i64, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            data: None,
        }
    }

    /// Adds structured details.
    pub fn with_data(mut self, data: Value) -> Self {
        self.data = Some(data);
        self
    }
}

/// A response: exactly one of `result` and `error`; `id` always present (null when unknown).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Response {
    /// Always `"2.0"` (the original's `"2.0,"` typo is not reproduced).
    pub jsonrpc: String,
    /// The result, absent on error.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<Value>,
    /// The error, absent on success.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorObject>,
    /// The caller's id, or null when the request could not be read.
    pub id: Option<Id>,
}

impl Response {
    /// A success.
    pub fn result(id: Option<Id>, result: Value) -> Self {
        Self {
            jsonrpc: "2.0".into(),
            result: Some(result),
            error: None,
            id,
        }
    }

    /// A failure.
    pub fn error(id: Option<Id>, error: ErrorObject) -> Self {
        Self {
            jsonrpc: "2.0".into(),
            result: None,
            error: Some(error),
            id,
        }
    }

    /// The HTTP status the original uses: 200 without error, 400 with one.
    pub fn http_status(&self) -> u16 {
        if self.error.is_some() { 400 } else { 200 }
    }
}
