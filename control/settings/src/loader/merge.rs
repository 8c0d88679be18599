//! Deep merge of one file's settings into the accumulated settings, recording provenance.
//!
//! Maps merge recursively; lists are concatenated (a later file appends channels); scalars: the
//! later file wins; `null` in the later file keeps the earlier value; a key ending in `!`
//! (`channels!:`) replaces the earlier value instead of merging, and the `!` is stripped.

use serde_json::{Map, Value};

use super::provenance::Provenance;
use crate::error::{index_key, join_key};

/// Merges `new` (set by file `file`) into `acc` at key path `key`.
pub(crate) fn merge_value(
    acc: &mut Value,
    new: Value,
    key: &str,
    file: usize,
    prov: &mut Provenance,
) {
    match (acc, new) {
        (_, Value::Null) => {}
        (Value::Object(acc), Value::Object(new)) => merge_map(acc, new, key, file, prov),
        (Value::Array(acc), Value::Array(new)) => {
            let start = acc.len();
            for (i, item) in new.into_iter().enumerate() {
                prov.set(&index_key(key, start + i), file);
                acc.push(strip_bangs(item));
            }
        }
        (acc, new) => {
            prov.clear_below(key);
            prov.set(key, file);
            *acc = strip_bangs(new);
        }
    }
}

/// Merges the map `new` into the map `acc` at key path `key`.
pub(crate) fn merge_map(
    acc: &mut Map<String, Value>,
    new: Map<String, Value>,
    key: &str,
    file: usize,
    prov: &mut Provenance,
) {
    for (k, v) in new {
        if let Some(plain) = k.strip_suffix('!') {
            let child = join_key(key, plain);
            prov.clear_below(&child);
            prov.set(&child, file);
            acc.insert(plain.to_owned(), strip_bangs(v));
            continue;
        }
        let child = join_key(key, &k);
        match acc.get_mut(&k) {
            Some(existing) => merge_value(existing, v, &child, file, prov),
            None => {
                prov.set(&child, file);
                acc.insert(k, strip_bangs(v));
            }
        }
    }
}

/// Strips the replace marker `!` from every key of a value that is inserted whole.
fn strip_bangs(value: Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.into_iter()
                .map(|(k, v)| {
                    let k = match k.strip_suffix('!') {
                        Some(plain) => plain.to_owned(),
                        None => k,
                    };
                    (k, strip_bangs(v))
                })
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.into_iter().map(strip_bangs).collect()),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use serde_json::json;

    use super::*;

    fn merged(files: Vec<Value>) -> (Value, Provenance) {
        let mut prov = Provenance::default();
        let mut acc = Value::Object(Map::new());
        for (i, v) in files.into_iter().enumerate() {
            let index = prov.add_file(Path::new(&format!("/{i}.yml")));
            merge_value(&mut acc, v, "", index, &mut prov);
        }
        (acc, prov)
    }

    #[test]
    fn lists_concatenate_and_maps_merge() {
        let (v, p) = merged(vec![
            json!({"channels": [{"name": "a"}], "tls": {"x": 1, "y": 2}}),
            json!({"channels": [{"name": "b"}], "tls": {"y": 3}}),
        ]);
        assert_eq!(
            v,
            json!({"channels": [{"name": "a"}, {"name": "b"}], "tls": {"x": 1, "y": 3}})
        );
        assert_eq!(p.file_for("channels[1].name"), Some(Path::new("/1.yml")));
        assert_eq!(p.file_for("channels[0].name"), Some(Path::new("/0.yml")));
        assert_eq!(p.file_for("tls.x"), Some(Path::new("/0.yml")));
        assert_eq!(p.file_for("tls.y"), Some(Path::new("/1.yml")));
    }

    #[test]
    fn bang_replaces_and_is_stripped_everywhere() {
        let (v, p) = merged(vec![
            json!({"channels": [{"name": "a"}], "m": {"k!": {"z!": 1}}}),
            json!({"channels!": [{"name": "b"}]}),
        ]);
        assert_eq!(
            v,
            json!({"channels": [{"name": "b"}], "m": {"k": {"z": 1}}})
        );
        assert_eq!(p.file_for("channels[0].name"), Some(Path::new("/1.yml")));
    }

    #[test]
    fn null_keeps_the_earlier_value_and_scalars_later_win() {
        let (v, _) = merged(vec![
            json!({"a": 1, "b": "x"}),
            json!({"a": null, "b": "y", "c": null}),
        ]);
        assert_eq!(v, json!({"a": 1, "b": "y", "c": null}));
    }

    #[test]
    fn type_change_replaces_and_forgets_deeper_provenance() {
        let (v, p) = merged(vec![json!({"a": {"b": [1]}}), json!({"a": 5})]);
        assert_eq!(v, json!({"a": 5}));
        assert_eq!(p.file_for("a.b[0]"), Some(Path::new("/1.yml")));
    }
}
