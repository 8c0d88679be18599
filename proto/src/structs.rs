//! `google.protobuf.Struct` ↔ `serde_json` (SPEC §1 encoding consequences): every number becomes
//! a double, `null` survives as `NullValue`, arrays as `ListValue`.
//!
//! Going back to JSON, a double that holds an integer of at most 2^53 in magnitude becomes a JSON
//! integer (as Go's encoder prints float64 `1` as `1`); other doubles stay floats; NaN and the
//! infinities, which JSON cannot carry, become `null`. Nesting depth needs no bound of its own here:
//! the input was either parsed by serde_json (recursion limit 128) or decoded by prost (limit 100).

use prost_types::value::Kind;
use prost_types::{ListValue, Struct, Value as PbValue};
use serde_json::{Map, Number, Value};

/// The largest integer a double holds exactly (2^53).
const MAX_EXACT_INTEGER: f64 = 9_007_199_254_740_992.0;

/// A JSON object as a `Struct`.
pub fn struct_from_map(map: &Map<String, Value>) -> Struct {
    Struct {
        fields: map
            .iter()
            .map(|(k, v)| (k.clone(), value_from_json(v)))
            .collect(),
    }
}

/// A `Struct` as a JSON object.
pub fn map_from_struct(s: &Struct) -> Map<String, Value> {
    s.fields
        .iter()
        .map(|(k, v)| (k.clone(), json_from_value(v)))
        .collect()
}

/// A JSON value as a protobuf `Value` (numbers as doubles).
pub fn value_from_json(value: &Value) -> PbValue {
    let kind = match value {
        Value::Null => Kind::NullValue(0),
        Value::Bool(b) => Kind::BoolValue(*b),
        Value::Number(n) => Kind::NumberValue(n.as_f64().unwrap_or(f64::NAN)),
        Value::String(s) => Kind::StringValue(s.clone()),
        Value::Array(items) => Kind::ListValue(ListValue {
            values: items.iter().map(value_from_json).collect(),
        }),
        Value::Object(map) => Kind::StructValue(struct_from_map(map)),
    };
    PbValue { kind: Some(kind) }
}

/// A protobuf `Value` as JSON (an unset kind is `null`, as Go's `AsInterface`).
pub fn json_from_value(value: &PbValue) -> Value {
    match &value.kind {
        None | Some(Kind::NullValue(_)) => Value::Null,
        Some(Kind::BoolValue(b)) => Value::Bool(*b),
        Some(Kind::NumberValue(n)) => number(*n),
        Some(Kind::StringValue(s)) => Value::String(s.clone()),
        Some(Kind::ListValue(list)) => {
            Value::Array(list.values.iter().map(json_from_value).collect())
        }
        Some(Kind::StructValue(s)) => Value::Object(map_from_struct(s)),
    }
}

/// [`struct_from_map`] taking the object: strings and keys move instead of being copied (the
/// broker's call path converts whole directory entries per call).
pub fn into_struct(map: Map<String, Value>) -> Struct {
    Struct {
        fields: map
            .into_iter()
            .map(|(k, v)| (k, into_pb_value(v)))
            .collect(),
    }
}

/// [`value_from_json`] taking the value.
pub fn into_pb_value(value: Value) -> PbValue {
    let kind = match value {
        Value::Null => Kind::NullValue(0),
        Value::Bool(b) => Kind::BoolValue(b),
        Value::Number(n) => Kind::NumberValue(n.as_f64().unwrap_or(f64::NAN)),
        Value::String(s) => Kind::StringValue(s),
        Value::Array(items) => Kind::ListValue(ListValue {
            values: items.into_iter().map(into_pb_value).collect(),
        }),
        Value::Object(map) => Kind::StructValue(into_struct(map)),
    };
    PbValue { kind: Some(kind) }
}

/// [`map_from_struct`] taking the `Struct`: strings and keys move instead of being copied.
pub fn into_map(s: Struct) -> Map<String, Value> {
    s.fields
        .into_iter()
        .map(|(k, v)| (k, into_json(v)))
        .collect()
}

/// [`json_from_value`] taking the value.
pub fn into_json(value: PbValue) -> Value {
    match value.kind {
        None | Some(Kind::NullValue(_)) => Value::Null,
        Some(Kind::BoolValue(b)) => Value::Bool(b),
        Some(Kind::NumberValue(n)) => number(n),
        Some(Kind::StringValue(s)) => Value::String(s),
        Some(Kind::ListValue(list)) => {
            Value::Array(list.values.into_iter().map(into_json).collect())
        }
        Some(Kind::StructValue(s)) => Value::Object(into_map(s)),
    }
}

pub(crate) fn number(n: f64) -> Value {
    if n.fract() == 0.0 && n.abs() <= MAX_EXACT_INTEGER {
        // Exact: |n| <= 2^53 is integral and fits an i64 without rounding.
        #[allow(clippy::cast_possible_truncation)]
        return Value::Number(Number::from(n as i64));
    }
    Number::from_f64(n).map_or(Value::Null, Value::Number)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn round_trip(v: Value) -> Value {
        json_from_value(&value_from_json(&v))
    }

    #[test]
    fn objects_lists_null_and_bools_round_trip() {
        let v =
            json!({"a": null, "b": [1, "x", true, null, {"c": []}], "d": {"e": false}, "f": ""});
        assert_eq!(round_trip(v.clone()), v);
        let Value::Object(map) = v else {
            unreachable!()
        };
        assert_eq!(map_from_struct(&struct_from_map(&map)), map);
    }

    #[test]
    fn owned_conversions_equal_the_borrowing_ones() {
        let v = json!({"a": null, "b": [1, "x", true, 2.5, {"c": []}], "d": {"e": -3}, "n": 1e300});
        let Value::Object(map) = v else {
            unreachable!()
        };
        let owned = into_struct(map.clone());
        assert_eq!(owned, struct_from_map(&map));
        assert_eq!(into_map(owned.clone()), map_from_struct(&owned));
        assert_eq!(into_map(owned), map);
        let nan = PbValue {
            kind: Some(Kind::NumberValue(f64::NAN)),
        };
        assert_eq!(into_json(nan.clone()), json_from_value(&nan));
        assert_eq!(into_json(PbValue { kind: None }), Value::Null);
    }

    #[test]
    fn numbers_become_doubles() {
        let pb = value_from_json(&json!(1));
        assert_eq!(pb.kind, Some(Kind::NumberValue(1.0)));
        assert_eq!(
            round_trip(json!(1)),
            json!(1),
            "integral doubles print as integers"
        );
        assert_eq!(round_trip(json!(-7)), json!(-7));
        assert_eq!(round_trip(json!(1.5)), json!(1.5));
        assert_eq!(
            round_trip(json!(9007199254740992_u64)),
            json!(9007199254740992_u64)
        );
        // 2^53 + 1 is not representable: it comes back rounded, as in the original.
        assert_eq!(
            round_trip(json!(9007199254740993_u64)),
            json!(9007199254740992_u64)
        );
        assert_eq!(
            round_trip(json!(1e300)),
            json!(1e300),
            "large doubles stay floats"
        );
    }

    #[test]
    fn null_value_and_unset_kind_are_null() {
        let pb = value_from_json(&Value::Null);
        assert_eq!(pb.kind, Some(Kind::NullValue(0)));
        assert_eq!(json_from_value(&PbValue { kind: None }), Value::Null);
    }

    #[test]
    fn non_finite_doubles_become_null() {
        for n in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
            let pb = PbValue {
                kind: Some(Kind::NumberValue(n)),
            };
            assert_eq!(json_from_value(&pb), Value::Null);
        }
    }

    #[test]
    fn struct_encodes_to_protobuf_and_back() {
        use prost::Message;
        let Value::Object(map) = json!({"name": "hd-1", "n": 3, "l": [null, 2.25]}) else {
            unreachable!()
        };
        let bytes = struct_from_map(&map).encode_to_vec();
        let decoded = Struct::decode(bytes.as_slice()).expect("valid protobuf");
        assert_eq!(map_from_struct(&decoded), map);
    }
}
