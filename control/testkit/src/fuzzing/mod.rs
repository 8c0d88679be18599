//! Fuzz checks for the control plane's parsers of peer input, shared by the `tandem-fuzz` targets and the corpus
//! replay test (`control/testkit/tests/integration/fuzz_corpus.rs`). Each function takes arbitrary bytes, drives the real public API and panics
//! when an invariant breaks; any input must return normally otherwise. Not a stable API.

mod directory;
mod hyper_message;

pub use directory::{directory_record, directory_verifier};
pub use hyper_message::hyper_message;

use tandem_net::jsonrpc::{self, INVALID_REQUEST, Id, MAX_ID_LEN, MAX_METHOD_LEN, PARSE_ERROR};

/// `Content-Type` values byte 0 of a JSON-RPC input selects from (JSON spellings and refusals).
const CONTENT_TYPES: [Option<&str>; 6] = [
    Some("application/json"),
    Some("application/json; charset=utf-8"),
    Some("Application/JSON"),
    None,
    Some("text/plain"),
    Some("application/json-seq"),
];

/// Input: `[content type selector][body]`. A decoded request satisfies the envelope rules, survives an encode and
/// decode unchanged, and its id survives the original's internal string form; a refusal is a parse error or an
/// invalid request, and anything without a JSON content type is refused.
pub fn jsonrpc_request(data: &[u8]) {
    let Some((&selector, body)) = data.split_first() else {
        return;
    };
    let content_type = CONTENT_TYPES[usize::from(selector) % CONTENT_TYPES.len()];
    let request = match jsonrpc::decode_request(content_type, body) {
        Ok(request) => request,
        Err(error) => {
            assert!(
                error.code == PARSE_ERROR || error.code == INVALID_REQUEST,
                "refused with code {}",
                error.code
            );
            return;
        }
    };
    assert!(content_type.is_some_and(jsonrpc::is_json_content_type));
    assert_eq!(request.jsonrpc, "2.0");
    assert!((1..=MAX_METHOD_LEN).contains(&request.method.len()));
    match &request.id {
        Id::Num(n) => assert!(i32::try_from(*n).is_ok(), "id {n} outside int32"),
        Id::Str(s) => assert!(!s.is_empty() && s.len() <= MAX_ID_LEN),
    }
    assert_eq!(Id::from_internal(&request.id.to_internal()), request.id);
    let encoded = serde_json::to_vec(&request).expect("a request is JSON data with string keys");
    match jsonrpc::decode_request(Some("application/json"), &encoded) {
        Ok(again) => assert_eq!(again, request, "encode then decode changed the request"),
        Err(e) => panic!("an encoded request does not decode: {e:?}"),
    }
}
