//! The `Hyper` service's message decoder ([`tandem_proto::wire`], the bytes a peer sends on
//! `/Hyper/Call` and `/Hyper/ServerCall`).

use tandem_proto::wire::{FastDecode, FastEncode};
use tandem_proto::{CLIENT_KEY, Request, Response};

fn encode(message: &impl FastEncode) -> Vec<u8> {
    let mut out = Vec::new();
    message.encode_fast(&mut out);
    out
}

/// Input: any bytes, decoded as a `Request` and as a `Response`. Anything either decoder accepts
/// encodes and decodes again to the same message (numbers, keys and nesting survive; a request
/// never holds a sender's `_client`); anything else is an error, never a panic or a hang.
pub fn hyper_message(data: &[u8]) {
    if let Ok(request) = Request::decode_fast(data) {
        if let Some(params) = &request.params {
            assert!(
                !params.contains_key(CLIENT_KEY),
                "a sender's _client is kept"
            );
        }
        let again = Request::decode_fast(&encode(&request)).expect("an encoded request decodes");
        assert_eq!(again, request, "encode then decode changed the request");
    }
    if let Ok(response) = Response::decode_fast(data) {
        let again = Response::decode_fast(&encode(&response)).expect("an encoded response decodes");
        assert_eq!(again, response, "encode then decode changed the response");
    }
}
