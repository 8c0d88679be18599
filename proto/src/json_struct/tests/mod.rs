use prost::Message;
use prost_types::value::Kind;
use prost_types::{Struct, Value as PbValue};
use serde_json::{Map, Value, json};

use super::*;
use crate::wire::{CLIENT_KEY, Error, FastDecode, FastEncode, Request, Response};
use crate::{into_map, struct_from_map};

mod generator;
use generator::{Gen, reference};

fn fast<T: FastEncode>(m: &T) -> Vec<u8> {
    let mut out = Vec::new();
    m.encode_fast(&mut out);
    out
}

fn without_client(mut map: Map<String, Value>) -> Map<String, Value> {
    map.remove(CLIENT_KEY);
    map
}

#[test]
fn requests_encode_byte_for_byte_as_prost() {
    let mut g = Gen(0x9e37_79b9_7f4a_7c15);
    for i in 0..2_000 {
        let r = Request {
            method: if i % 3 == 0 {
                String::new()
            } else {
                g.string()
            },
            params: (i % 5 != 0).then(|| g.object(1 + (i % 7) as u32)),
            id: g.string(),
            client_name: g.string(),
        };
        let prost = reference::Request {
            method: r.method.clone(),
            params: r.params.as_ref().map(struct_from_map),
            id: r.id.clone(),
            client_name: r.client_name.clone(),
        };
        let bytes = fast(&r);
        assert_eq!(bytes, prost.encode_to_vec(), "case {i}: {r:?}");
        let back = Request::decode_fast(&bytes).unwrap();
        assert_eq!(
            back.params,
            r.params.clone().map(without_client),
            "case {i}"
        );
        assert_eq!((back.method, back.id), (r.method, r.id));
    }
    assert_eq!(fast(&Request::default()), Vec::<u8>::new());
    let empty = Request {
        params: Some(Map::new()),
        ..Request::default()
    };
    assert_eq!(Request::decode_fast(&fast(&empty)).unwrap(), empty);
}

#[test]
fn responses_and_errors_encode_byte_for_byte_as_prost() {
    let mut g = Gen(42);
    for i in 0..2_000 {
        let error = (i % 2 == 0).then(|| Error {
            code: match i % 4 {
                0 => 0,
                2 => -100,
                _ => 403,
            },
            message: g.string(),
            data: (i % 3 == 0).then(|| g.object(3)),
        });
        let r = Response {
            id: g.string(),
            result: (i % 3 != 1).then(|| g.object(1 + (i % 9) as u32)),
            error,
        };
        let prost = reference::Response {
            id: r.id.clone(),
            result: r.result.as_ref().map(struct_from_map),
            error: r.error.as_ref().map(|e| reference::Error {
                code: e.code,
                message: e.message.clone(),
                data: e.data.as_ref().map(struct_from_map),
            }),
        };
        let bytes = fast(&r);
        assert_eq!(bytes, prost.encode_to_vec(), "case {i}: {r:?}");
        assert_eq!(Response::decode_fast(&bytes).unwrap(), r, "case {i}");
    }
}

#[test]
fn any_prost_encoding_decodes_as_prost_then_into_map_would() {
    let mut g = Gen(7);
    for i in 0..2_000 {
        let params = g.pb_struct(1 + (i % 6) as u32);
        let result = g.pb_struct(1 + (i % 5) as u32);
        let request = reference::Request {
            params: Some(params.clone()),
            id: "hd-2._ping(1)".into(),
            ..Default::default()
        };
        let decoded = Request::decode_fast(&request.encode_to_vec()).unwrap();
        assert_eq!(
            decoded.params,
            Some(without_client(into_map(params))),
            "case {i}"
        );
        let response = reference::Response {
            result: Some(result.clone()),
            error: Some(reference::Error {
                code: -32_601,
                message: "m".into(),
                data: None,
            }),
            ..Default::default()
        };
        let decoded = Response::decode_fast(&response.encode_to_vec()).unwrap();
        assert_eq!(decoded.result, Some(into_map(result)), "case {i}");
        assert_eq!(decoded.error.map(|e| e.code), Some(-32_601));
    }
}

/// A `Struct` with one entry `key: value`, the value written before the key when `value_first`.
fn entry_bytes(key: &str, value: &PbValue, value_first: bool) -> Vec<u8> {
    let mut key_field = Vec::new();
    prost::encoding::string::encode(1, &key.to_owned(), &mut key_field);
    let mut value_field = Vec::new();
    prost::encoding::message::encode(2, value, &mut value_field);
    let body = if value_first {
        [value_field, key_field].concat()
    } else {
        [key_field, value_field].concat()
    };
    let mut out = Vec::new();
    prost::encoding::bytes::encode(1, &body, &mut out);
    out
}

#[test]
fn a_senders_client_is_skipped_in_either_field_order_and_only_in_requests() {
    let client = PbValue {
        kind: Some(Kind::StringValue("sender's".into())),
    };
    let other = PbValue {
        kind: Some(Kind::BoolValue(true)),
    };
    for value_first in [false, true] {
        let body = [
            entry_bytes(CLIENT_KEY, &client, value_first),
            entry_bytes("x", &other, value_first),
        ]
        .concat();
        let mut request = Vec::new();
        prost::encoding::bytes::encode(2, &body, &mut request);
        let decoded = Request::decode_fast(&request).unwrap();
        assert_eq!(decoded.params, Some(into_object(json!({"x": true}))));
        assert_eq!(
            decode_struct(&body).unwrap(),
            into_object(json!({"_client": "sender's", "x": true})),
            "results keep every key"
        );
    }
}

fn into_object(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        _ => unreachable!(),
    }
}

#[test]
fn repeated_fields_merge_and_unknown_fields_are_skipped() {
    let a = reference::Response {
        id: "first".into(),
        result: Some(struct_from_map(&into_object(json!({"a": 1, "l": [1]})))),
        error: None,
    };
    let b = reference::Response {
        id: "second".into(),
        result: Some(struct_from_map(&into_object(json!({"b": 2, "a": 3})))),
        error: None,
    };
    let mut bytes = a.encode_to_vec();
    // Unknown fields of every wire type, then a second copy of the message.
    prost::encoding::uint64::encode(9, &5, &mut bytes);
    prost::encoding::fixed64::encode(10, &5, &mut bytes);
    prost::encoding::fixed32::encode(11, &5, &mut bytes);
    prost::encoding::string::encode(12, &"unknown".to_owned(), &mut bytes);
    bytes.extend(b.encode_to_vec());
    let prost = reference::Response::decode(bytes.as_slice()).unwrap();
    let fast = Response::decode_fast(&bytes).unwrap();
    assert_eq!(fast.id, "second");
    assert_eq!(fast.result, prost.result.map(into_map));
    assert_eq!(
        fast.result,
        Some(into_object(json!({"a": 3, "b": 2, "l": [1]})))
    );
}

fn nested(levels: u32) -> Map<String, Value> {
    let mut v = json!(1);
    for i in 0..levels - 1 {
        v = if i % 2 == 0 {
            json!([v])
        } else {
            json!({"k": v})
        };
    }
    into_object(json!({ "top": v }))
}

#[test]
fn nesting_up_to_max_depth_decodes_and_deeper_is_refused() {
    let fits = Response {
        result: Some(nested(MAX_DEPTH)),
        ..Response::default()
    };
    assert_eq!(Response::decode_fast(&fast(&fits)).unwrap(), fits);
    let deep = Response {
        result: Some(nested(MAX_DEPTH + 1)),
        ..Response::default()
    };
    assert_eq!(
        Response::decode_fast(&fast(&deep)),
        Err(DecodeError::TooDeep)
    );
}

#[test]
fn corrupt_bytes_are_errors_never_panics() {
    let mut g = Gen(99);
    let r = Response {
        id: "x(1)".into(),
        result: Some(g.object(4)),
        error: Some(Error {
            code: 7,
            message: "m".into(),
            data: Some(g.object(2)),
        }),
    };
    let bytes = fast(&r);
    for cut in 0..bytes.len() {
        // A prefix is either a valid (shorter) message or an error.
        let _ = Response::decode_fast(&bytes[..cut]);
    }
    let mut truncated = bytes.clone();
    truncated.pop();
    assert!(Response::decode_fast(&truncated).is_err());
    for i in 0..5_000 {
        let mut b = bytes.clone();
        let at = g.below(b.len() as u64) as usize;
        b[at] ^= 1 << g.below(8);
        let _ = (Response::decode_fast(&b), Request::decode_fast(&b), i);
    }
    let bad_utf8 = [0x0a, 0x02, 0xc3, 0x28];
    assert_eq!(Response::decode_fast(&bad_utf8), Err(DecodeError::Utf8));
    let group = [0x0b];
    assert!(matches!(
        Response::decode_fast(&group),
        Err(DecodeError::WireType { field: 1, wire: 3 })
    ));
    let wrong_wire = [0x10, 0x01];
    assert!(matches!(
        Response::decode_fast(&wrong_wire),
        Err(DecodeError::WireType { field: 2, wire: 0 })
    ));
}

#[test]
fn numbers_travel_as_doubles_and_integral_ones_come_back_as_integers() {
    let map = into_object(json!({"i": 1, "neg": -7, "f": 1.5, "big": 9007199254740993_u64}));
    let r = Response {
        result: Some(map),
        ..Response::default()
    };
    let back = Response::decode_fast(&fast(&r)).unwrap().result.unwrap();
    // 2^53 + 1 is not a double: it comes back rounded, as in the original.
    let expected = json!({"i": 1, "neg": -7, "f": 1.5, "big": 9007199254740992_u64});
    assert_eq!(back, into_object(expected));
    let nan = PbValue {
        kind: Some(Kind::NumberValue(f64::NAN)),
    };
    let s = Struct {
        fields: [("n".to_owned(), nan)].into_iter().collect(),
    };
    assert_eq!(
        decode_struct(&s.encode_to_vec()).unwrap(),
        into_object(json!({"n": null}))
    );
}
