//! `vars:` and interpolation of `$NAME` in every string value.
//!
//! A var is `{type: string|int|float|json|yaml|any, source: env|literal|prompt, ...}`: `env` takes
//! `variable` (required), `required` (default false) and `default`; `literal` takes `value`;
//! `prompt` asks on the terminal (without echo when `sensitive: true`), as the original does, and is
//! a clear error when stdin is not a terminal (a service under systemd). An `env` var that is unset, not
//! required and has no default is `null`. The block is kept as `_vars`. Context variables `DIR`
//! (the file's absolute directory without the leading `/`, so `"/$DIR/x"` is absolute) and `PATH`
//! (the file, likewise) override same-named vars.
//!
//! Interpolation: a string that is exactly `$NAME` becomes the value (keeping its type); otherwise
//! each `$NAME` (`[a-zA-Z][a-zA-Z0-9_]*`) is replaced by the value's string form; `$$` is a literal
//! `$`, and a `$` not followed by a name stays as it is (regexes end in `$`). Keys are not
//! interpolated.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;
use serde_json::{Map, Value};

use super::EnvLookup;
use crate::error::{SettingsError, index_key, join_key};

type Vars = BTreeMap<String, Value>;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawVar {
    #[serde(rename = "type")]
    kind: VarType,
    source: VarSource,
    variable: Option<String>,
    #[serde(default)]
    required: bool,
    default: Option<Value>,
    value: Option<Value>,
    /// A `prompt` var's answer is not echoed.
    #[serde(default)]
    sensitive: bool,
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "lowercase")]
enum VarType {
    String,
    Int,
    Float,
    Json,
    Yaml,
    Any,
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "lowercase")]
enum VarSource {
    Env,
    Literal,
    Prompt,
}

/// Resolves `vars`, interpolates every string of `doc` and renames `vars` to `_vars`.
pub(super) fn apply(
    mut doc: Map<String, Value>,
    file: &Path,
    env: EnvLookup<'_>,
) -> Result<Map<String, Value>, SettingsError> {
    let defs = doc.remove("vars");
    let mut vars = match &defs {
        Some(defs) => parse_vars(defs, file, env)?,
        None => Vars::new(),
    };
    for (name, value) in context(file) {
        if vars.insert(name.to_owned(), Value::String(value)).is_some() {
            tracing::warn!(file = %file.display(), var = name, "context variable overrides a var of the same name");
        }
    }
    let mut out = Map::new();
    for (k, v) in doc {
        let value = interpolate(v, &vars, file, &k)?;
        out.insert(k, value);
    }
    if let Some(defs) = defs {
        out.insert("_vars".to_owned(), defs);
    }
    Ok(out)
}

fn context(file: &Path) -> [(&'static str, String); 2] {
    let strip = |p: &Path| p.to_string_lossy().trim_start_matches('/').to_owned();
    let dir = file.parent().map(strip).unwrap_or_default();
    [("DIR", dir), ("PATH", strip(file))]
}

fn parse_vars(defs: &Value, file: &Path, env: EnvLookup<'_>) -> Result<Vars, SettingsError> {
    let Value::Object(defs) = defs else {
        return Err(SettingsError::load(
            Some(file.into()),
            "vars",
            "must be a map of variable definitions",
        ));
    };
    let mut vars = Vars::new();
    for (name, def) in defs {
        let key = join_key("vars", name);
        let err = |reason: String| SettingsError::load(Some(file.into()), key.clone(), reason);
        let raw: RawVar = serde_json::from_value(def.clone()).map_err(|e| err(e.to_string()))?;
        let value = resolve(&raw, name, env).map_err(err)?;
        vars.insert(name.clone(), value);
    }
    Ok(vars)
}

/// The longest answer read for a `prompt` variable, in bytes.
const MAX_PROMPT_ANSWER: u64 = 64 * 1024;

/// Asks for `name` on the terminal (stderr for the question, stdin for the answer).
fn prompt(name: &str, sensitive: bool) -> Result<String, String> {
    use std::io::{BufRead, IsTerminal, Read, Write};
    if !std::io::stdin().is_terminal() {
        return Err(format!(
            "variable {name} asks for its value on a terminal (source: prompt), but stdin is not a \
             terminal (a service or a pipe): give it with `source: env` instead"
        ));
    }
    let question = format!("{name}: ");
    let answer = if sensitive {
        rpassword::prompt_password(&question).map_err(|e| format!("reading {name}: {e}"))?
    } else {
        let mut err = std::io::stderr();
        let _ = err
            .write_all(question.as_bytes())
            .and_then(|()| err.flush());
        let mut line = String::new();
        std::io::stdin()
            .lock()
            .take(MAX_PROMPT_ANSWER)
            .read_line(&mut line)
            .map_err(|e| format!("reading {name}: {e}"))?;
        line
    };
    Ok(answer.trim_end_matches(['\r', '\n']).to_owned())
}

fn resolve(raw: &RawVar, name: &str, env: EnvLookup<'_>) -> Result<Value, String> {
    let value = match raw.source {
        VarSource::Prompt => Value::String(prompt(name, raw.sensitive)?),
        VarSource::Literal => raw
            .value
            .clone()
            .ok_or("a literal variable needs `value`")?,
        VarSource::Env => {
            let variable = raw
                .variable
                .as_deref()
                .ok_or("an env variable needs `variable`")?;
            match (env(variable), &raw.default) {
                (Some(v), _) => Value::String(v),
                (None, Some(default)) => default.clone(),
                (None, None) if raw.required => {
                    return Err(format!(
                        "environment variable {variable} is required but not set"
                    ));
                }
                (None, None) => return Ok(Value::Null),
            }
        }
    };
    coerce(value, raw.kind).map_err(|reason| format!("variable {name}: {reason}"))
}

fn coerce(value: Value, kind: VarType) -> Result<Value, String> {
    match (kind, value) {
        (VarType::Any, v) => Ok(v),
        (VarType::String, v @ Value::String(_)) => Ok(v),
        (VarType::String, _) => Err("is not a string".into()),
        (VarType::Int, v @ Value::Number(_)) if v.as_i64().is_some() || v.as_u64().is_some() => {
            Ok(v)
        }
        (VarType::Int, Value::String(s)) => s
            .trim()
            .parse::<i64>()
            .map(Value::from)
            .map_err(|_| format!("{s:?} is not an integer")),
        (VarType::Int, _) => Err("is not an integer".into()),
        (VarType::Float, Value::Number(n)) => n
            .as_f64()
            .map(Value::from)
            .ok_or_else(|| "is not a float".into()),
        (VarType::Float, Value::String(s)) => s
            .trim()
            .parse::<f64>()
            .map(Value::from)
            .map_err(|_| format!("{s:?} is not a float")),
        (VarType::Float, _) => Err("is not a float".into()),
        (VarType::Json, Value::String(s)) => {
            serde_json::from_str(&s).map_err(|e| format!("is not JSON: {e}"))
        }
        (VarType::Yaml, Value::String(s)) => {
            serde_yaml::from_str(&s).map_err(|e| format!("is not YAML: {e}"))
        }
        (VarType::Json | VarType::Yaml, v) => Ok(v),
    }
}

fn interpolate(value: Value, vars: &Vars, file: &Path, key: &str) -> Result<Value, SettingsError> {
    match value {
        Value::String(s) => interpolate_str(&s, vars)
            .map_err(|reason| SettingsError::load(Some(file.into()), key, reason)),
        Value::Array(items) => items
            .into_iter()
            .enumerate()
            .map(|(i, v)| interpolate(v, vars, file, &index_key(key, i)))
            .collect::<Result<Vec<_>, _>>()
            .map(Value::Array),
        Value::Object(map) => {
            let mut out = Map::new();
            for (k, v) in map {
                let child = join_key(key, &k);
                out.insert(k, interpolate(v, vars, file, &child)?);
            }
            Ok(Value::Object(out))
        }
        other => Ok(other),
    }
}

fn is_name_start(c: char) -> bool {
    c.is_ascii_alphabetic()
}

fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

fn lookup<'v>(vars: &'v Vars, name: &str) -> Result<&'v Value, String> {
    vars.get(name)
        .ok_or_else(|| format!("undefined variable ${name}"))
}

/// Interpolates one string; the error is the reason (the caller adds file and key).
fn interpolate_str(s: &str, vars: &Vars) -> Result<Value, String> {
    if let Some(name) = s.strip_prefix('$')
        && name.starts_with(is_name_start)
        && name.chars().all(is_name_char)
    {
        return lookup(vars, name).cloned();
    }
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(pos) = rest.find('$') {
        out.push_str(&rest[..pos]);
        let after = &rest[pos + 1..];
        if let Some(tail) = after.strip_prefix('$') {
            out.push('$');
            rest = tail;
        } else if after.starts_with(is_name_start) {
            let end = after
                .find(|c: char| !is_name_char(c))
                .unwrap_or(after.len());
            let name = &after[..end];
            out.push_str(&string_form(name, lookup(vars, name)?)?);
            rest = &after[end..];
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    Ok(Value::String(out))
}

fn string_form(name: &str, value: &Value) -> Result<String, String> {
    match value {
        Value::String(s) => Ok(s.clone()),
        Value::Number(n) => Ok(match n.as_f64() {
            Some(f) if !n.is_i64() && !n.is_u64() => f.to_string(),
            _ => n.to_string(),
        }),
        Value::Bool(b) => Ok(b.to_string()),
        Value::Null => Err(format!(
            "variable ${name} has no value (unset and without default)"
        )),
        Value::Array(_) | Value::Object(_) => Err(format!(
            "variable ${name} is a list or map and cannot be embedded in a string"
        )),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn vars() -> Vars {
        [
            ("A", json!("x")),
            ("N", json!(5)),
            ("F", json!(1.5)),
            ("L", json!([1])),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect()
    }

    #[test]
    fn exact_reference_keeps_the_type() {
        assert_eq!(interpolate_str("$N", &vars()).unwrap(), json!(5));
        assert_eq!(interpolate_str("$L", &vars()).unwrap(), json!([1]));
    }

    #[test]
    fn embedded_references_use_the_string_form() {
        assert_eq!(
            interpolate_str("a-$A-$N-$F/", &vars()).unwrap(),
            json!("a-x-5-1.5/")
        );
        assert_eq!(
            interpolate_str("/$A_", &vars()).unwrap_err(),
            "undefined variable $A_"
        );
    }

    #[test]
    fn dollar_escapes_and_regex_anchors_survive() {
        assert_eq!(
            interpolate_str("cost $$A", &vars()).unwrap(),
            json!("cost $A")
        );
        assert_eq!(
            interpolate_str("^http://localhost\\:\\d+$", &vars()).unwrap(),
            json!("^http://localhost\\:\\d+$")
        );
        assert_eq!(interpolate_str("$1 $", &vars()).unwrap(), json!("$1 $"));
    }

    #[test]
    fn lists_and_maps_cannot_be_embedded() {
        assert!(
            interpolate_str("x$L", &vars())
                .unwrap_err()
                .contains("cannot be embedded")
        );
    }

    #[test]
    fn env_vars_use_default_then_required() {
        let env = |name: &str| (name == "SET").then(|| "42".to_owned());
        let var = |v: Value| serde_json::from_value::<RawVar>(v).unwrap();
        let set = var(json!({"type": "int", "source": "env", "variable": "SET"}));
        assert_eq!(resolve(&set, "S", &env).unwrap(), json!(42));
        let dflt =
            var(json!({"type": "int", "source": "env", "variable": "UNSET", "default": "7"}));
        assert_eq!(resolve(&dflt, "D", &env).unwrap(), json!(7));
        let req =
            var(json!({"type": "string", "source": "env", "variable": "UNSET", "required": true}));
        assert!(
            resolve(&req, "R", &env)
                .unwrap_err()
                .contains("UNSET is required")
        );
        let opt = var(json!({"type": "string", "source": "env", "variable": "UNSET"}));
        assert_eq!(resolve(&opt, "O", &env).unwrap(), Value::Null);
        let prompt = var(json!({"type": "string", "source": "prompt"}));
        // The test runner's stdin is not a terminal, as a service's is not.
        assert!(!std::io::IsTerminal::is_terminal(&std::io::stdin()));
        let err = resolve(&prompt, "P", &env).unwrap_err();
        assert!(
            err.contains("variable P asks for its value on a terminal")
                && err.contains("source: env"),
            "{err}"
        );
    }

    #[test]
    fn types_parse_strings() {
        assert_eq!(coerce(json!("2.5"), VarType::Float).unwrap(), json!(2.5));
        assert_eq!(
            coerce(json!("{\"a\": [1]}"), VarType::Json).unwrap(),
            json!({"a": [1]})
        );
        assert_eq!(
            coerce(json!("a: 1"), VarType::Yaml).unwrap(),
            json!({"a": 1})
        );
        assert!(coerce(json!("x"), VarType::Int).is_err());
        assert!(coerce(json!(1), VarType::String).is_err());
    }
}
