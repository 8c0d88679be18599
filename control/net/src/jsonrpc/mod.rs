//! JSON-RPC 2.0 envelopes, error codes, the sans-IO request decoder and the HTTP mapping shared by
//! every JSON-RPC server and client in Tandem.

mod decode;
mod envelope;
mod id;

pub use decode::{MAX_METHOD_LEN, decode_request, is_json_content_type, params, random_id};
pub use envelope::{
    ErrorObject, INTERNAL_ERROR, INVALID_PARAMS, INVALID_REQUEST, METHOD_NOT_FOUND, NOT_FOUND,
    PARSE_ERROR, RATE_LIMITED, Request, Response,
};
pub use id::{Id, MAX_ID_LEN};
