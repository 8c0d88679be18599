//! `$include` (other files, relative to the including file) and `$ref` (a dotted path in the same
//! file), expanded before variables.

use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

use super::provenance::Provenance;
use super::{FileBudget, Loader, MAX_INCLUDE_DEPTH, MAX_REF_DEPTH, merge};
use crate::error::{SettingsError, index_key, join_key};
use crate::paths;

const INCLUDE: &str = "$include";
const REF: &str = "$ref";

/// Expands every `$include` in `value`, which was read from `file`. `stack` holds the files being
/// included right now (for cycle detection and the depth bound).
pub(super) fn expand(
    loader: &Loader<'_>,
    value: Value,
    file: &Path,
    key: &str,
    stack: &mut Vec<PathBuf>,
    budget: &mut FileBudget,
) -> Result<Value, SettingsError> {
    match value {
        Value::Object(mut map) => {
            let Some(include) = map.remove(INCLUDE) else {
                return expand_map(loader, map, file, key, stack, budget).map(Value::Object);
            };
            let lone = map.is_empty();
            let ikey = join_key(key, INCLUDE);
            let mut included = Map::new();
            let mut list: Option<Vec<Value>> = None;
            for target in include_targets(include, file, &ikey)? {
                match load_included(loader, file, &target, &ikey, stack, budget)? {
                    Value::Object(m) => merge_quiet(&mut included, m),
                    Value::Array(items) if lone => list.get_or_insert_with(Vec::new).extend(items),
                    _ => {
                        return Err(SettingsError::load(
                            Some(file.into()),
                            ikey,
                            format!(
                                "{target} must hold a map (or a list when $include is the only key)"
                            ),
                        ));
                    }
                }
            }
            if let Some(list) = list {
                if !included.is_empty() {
                    return Err(SettingsError::load(
                        Some(file.into()),
                        ikey,
                        "cannot include both maps and lists",
                    ));
                }
                return Ok(Value::Array(list));
            }
            let own = expand_map(loader, map, file, key, stack, budget)?;
            merge_quiet(&mut included, own);
            Ok(Value::Object(included))
        }
        Value::Array(items) => {
            let mut out = Vec::with_capacity(items.len());
            for (i, item) in items.into_iter().enumerate() {
                let had_include = item.as_object().is_some_and(|m| m.contains_key(INCLUDE));
                match expand(loader, item, file, &index_key(key, i), stack, budget)? {
                    Value::Array(spliced) if had_include => out.extend(spliced),
                    other => out.push(other),
                }
            }
            Ok(Value::Array(out))
        }
        other => Ok(other),
    }
}

fn expand_map(
    loader: &Loader<'_>,
    map: Map<String, Value>,
    file: &Path,
    key: &str,
    stack: &mut Vec<PathBuf>,
    budget: &mut FileBudget,
) -> Result<Map<String, Value>, SettingsError> {
    let mut out = Map::new();
    for (k, v) in map {
        let child = join_key(key, &k);
        out.insert(k, expand(loader, v, file, &child, stack, budget)?);
    }
    Ok(out)
}

fn include_targets(include: Value, file: &Path, key: &str) -> Result<Vec<String>, SettingsError> {
    let bad = || {
        SettingsError::load(
            Some(file.into()),
            key,
            "$include must be a string or a list of strings",
        )
    };
    match include {
        Value::String(s) => Ok(vec![s]),
        Value::Array(items) => items
            .into_iter()
            .map(|i| match i {
                Value::String(s) => Ok(s),
                _ => Err(bad()),
            })
            .collect(),
        _ => Err(bad()),
    }
}

fn load_included(
    loader: &Loader<'_>,
    file: &Path,
    target: &str,
    key: &str,
    stack: &mut Vec<PathBuf>,
    budget: &mut FileBudget,
) -> Result<Value, SettingsError> {
    let err = |reason: String| SettingsError::load(Some(file.into()), key, reason);
    if Path::new(target).has_root() {
        return Err(err(format!(
            "absolute path {target} is not allowed in $include (paths are relative to the including file)"
        )));
    }
    let dir = file.parent().unwrap_or(Path::new("/"));
    let path = paths::normalize(&dir.join(target));
    if stack.contains(&path) {
        return Err(err(format!(
            "include cycle: {} includes itself",
            path.display()
        )));
    }
    if stack.len() >= MAX_INCLUDE_DEPTH {
        return Err(err(format!(
            "$include nested deeper than {MAX_INCLUDE_DEPTH} levels"
        )));
    }
    let doc = loader.read_document(&path, budget)?;
    stack.push(path.clone());
    let expanded = expand(loader, doc, &path, "", stack, budget);
    stack.pop();
    expanded
}

/// Deep merge without provenance (inside one top-level file, whose provenance is the file itself).
fn merge_quiet(acc: &mut Map<String, Value>, new: Map<String, Value>) {
    let mut scratch = Provenance::default();
    merge::merge_map(acc, new, "", 0, &mut scratch);
}

/// Replaces every `{"$ref": "a.b.0.c"}` (the only key of its map) with the value at that dotted
/// path of `root` (numeric components index lists), following refs in the target.
pub(super) fn resolve_refs(
    root: &Value,
    value: &Value,
    file: &Path,
    key: &str,
    depth: usize,
) -> Result<Value, SettingsError> {
    match value {
        Value::Object(map) if map.len() == 1 && map.contains_key(REF) => {
            let err =
                |reason: String| SettingsError::load(Some(file.into()), join_key(key, REF), reason);
            let Some(Value::String(path)) = map.get(REF) else {
                return Err(err("$ref must be a string".into()));
            };
            if depth >= MAX_REF_DEPTH {
                return Err(err(format!(
                    "$ref chain longer than {MAX_REF_DEPTH} (a cycle?)"
                )));
            }
            let target =
                lookup(root, path).ok_or_else(|| err(format!("$ref target {path} not found")))?;
            resolve_refs(root, target, file, key, depth + 1)
        }
        Value::Object(map) => {
            let mut out = Map::new();
            for (k, v) in map {
                out.insert(
                    k.clone(),
                    resolve_refs(root, v, file, &join_key(key, k), depth)?,
                );
            }
            Ok(Value::Object(out))
        }
        Value::Array(items) => items
            .iter()
            .enumerate()
            .map(|(i, v)| resolve_refs(root, v, file, &index_key(key, i), depth))
            .collect::<Result<Vec<_>, _>>()
            .map(Value::Array),
        other => Ok(other.clone()),
    }
}

fn lookup<'v>(root: &'v Value, path: &str) -> Option<&'v Value> {
    path.split('.')
        .try_fold(root, |current, component| match current {
            Value::Array(items) => component.parse::<usize>().ok().and_then(|i| items.get(i)),
            Value::Object(map) => map.get(component),
            _ => None,
        })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn refs_follow_dotted_paths_with_list_indexes() {
        let doc = json!({"a": {"b": [{"c": 7}]}, "x": {"$ref": "a.b.0.c"}, "y": {"$ref": "x"}});
        let out = resolve_refs(&doc, &doc, Path::new("/f.yml"), "", 0).unwrap();
        assert_eq!(out["x"], json!(7));
        assert_eq!(out["y"], json!(7));
    }

    #[test]
    fn ref_cycles_and_missing_targets_fail_with_the_key() {
        let doc = json!({"a": {"$ref": "b"}, "b": {"$ref": "a"}});
        let err = resolve_refs(&doc, &doc, Path::new("/f.yml"), "", 0).unwrap_err();
        assert!(err.to_string().contains("chain longer"), "{err}");
        let doc = json!({"a": [1, {"$ref": "nope.x"}]});
        let err = resolve_refs(&doc, &doc, Path::new("/f.yml"), "", 0).unwrap_err();
        assert_eq!(err.issues()[0].key, "a[1].$ref");
        assert!(err.to_string().contains("nope.x not found"), "{err}");
    }
}
