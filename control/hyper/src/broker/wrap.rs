//! The `{"_": value}` convention (SPEC §2.3): gRPC carries only objects, so any other JSON value
//! travels wrapped in a one-key object and is unwrapped at the JSON-RPC edge.

use serde_json::{Map, Value};

/// The key of a wrapped value.
pub const WRAP_KEY: &str = "_";

/// `toHyperStruct`: an object stays as it is; anything else becomes `{"_": value}`.
pub fn to_hyper_struct(value: Value) -> Map<String, Value> {
    match value {
        Value::Object(map) => map,
        other => [(WRAP_KEY.to_owned(), other)].into_iter().collect(),
    }
}

/// `fromHyperStruct`: an object whose only key is `"_"` becomes that key's value.
pub fn from_hyper_struct(mut map: Map<String, Value>) -> Value {
    if map.len() == 1
        && let Some(value) = map.remove(WRAP_KEY)
    {
        return value;
    }
    Value::Object(map)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn wrapping_round_trips_and_leaves_objects_alone() {
        for v in [
            json!(1),
            json!("s"),
            json!([1, {"a": null}]),
            json!(null),
            json!(true),
        ] {
            assert_eq!(from_hyper_struct(to_hyper_struct(v.clone())), v);
        }
        let obj = json!({"a": 1, "_": 2});
        assert_eq!(Value::Object(to_hyper_struct(obj.clone())), obj);
        assert_eq!(
            from_hyper_struct(to_hyper_struct(obj.clone())),
            obj,
            "two keys: not unwrapped"
        );
        assert_eq!(from_hyper_struct(Map::new()), json!({}));
    }
}
