//! Schema normalisation of a change record's `data`, as the original's `ChangeRecordForm` does it (go-helpers
//! forms): keys not in the schema are dropped (e.g. a method's `params`), defaults are filled (`permissions: []`,
//! `operator: ""`, ...), `null`/`""` count as absent for optional fields, and type errors are rejected. Signer and
//! verifier both hash the normalised value, so this must match the original exactly for hashes to agree.

use serde_json::{Map, Value};

use super::record::Section;

/// Why `data` does not fit its section's schema. `path` is a JSON-pointer-like location, e.g. `/0/methods/1/name`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid record data at {path}: {reason}")]
pub struct SchemaError {
    /// Where in `data` the problem is.
    pub path: String,
    /// What is wrong there.
    pub reason: &'static str,
}

type Res<T> = Result<T, SchemaError>;

/// A form: copies and checks the fields of one JSON object into the normalised output.
type FormFn = fn(&Map<String, Value>, &mut Map<String, Value>, &str) -> Res<()>;

fn fail<T>(path: &str, reason: &'static str) -> Res<T> {
    Err(SchemaError {
        path: path.to_owned(),
        reason,
    })
}

/// Normalises `data` for `section`; the result is what gets hashed, stored and applied.
pub fn normalise(section: Section, data: &Value) -> Res<Value> {
    let Value::Array(items) = data else {
        return fail("", "data must be a list");
    };
    let mut out = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let path = format!("/{i}");
        out.push(match section {
            Section::Groups => match item {
                Value::String(_) => item.clone(),
                _ => return fail(&path, "expected a string"),
            },
            Section::Channels => form(item, &path, channel)?,
            Section::Certificates => form(item, &path, certificate)?,
            Section::Services => form(item, &path, service)?,
            Section::Settings | Section::Preferences => form(item, &path, operator_settings)?,
        });
    }
    Ok(Value::Array(out))
}

/// Runs a form over an item that must be a JSON object (go-helpers `IsStringMap{Form}`).
fn form(item: &Value, path: &str, fields: FormFn) -> Res<Value> {
    let Value::Object(input) = item else {
        return fail(path, "not a map");
    };
    let mut out = Map::new();
    fields(input, &mut out, path)?;
    Ok(Value::Object(out))
}

/// go-helpers `IsOptional`: missing, `null` and `""` are absent.
fn present<'a>(input: &'a Map<String, Value>, key: &str) -> Option<&'a Value> {
    match input.get(key) {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if s.is_empty() => None,
        Some(v) => Some(v),
    }
}

fn required_str(
    input: &Map<String, Value>,
    out: &mut Map<String, Value>,
    path: &str,
    key: &str,
) -> Res<()> {
    match input.get(key) {
        Some(v @ Value::String(_)) => {
            out.insert(key.to_owned(), v.clone());
            Ok(())
        }
        _ => fail(&format!("{path}/{key}"), "expected a string"),
    }
}

fn defaulted_str(
    input: &Map<String, Value>,
    out: &mut Map<String, Value>,
    path: &str,
    key: &str,
) -> Res<()> {
    match present(input, key) {
        None => {
            out.insert(key.to_owned(), Value::String(String::new()));
            Ok(())
        }
        Some(v @ Value::String(_)) => {
            out.insert(key.to_owned(), v.clone());
            Ok(())
        }
        Some(_) => fail(&format!("{path}/{key}"), "expected a string"),
    }
}

/// A free-form string map, copied as is. `required` maps reject absence; optional ones are left out when absent.
fn string_map(
    input: &Map<String, Value>,
    out: &mut Map<String, Value>,
    path: &str,
    key: &str,
    required: bool,
) -> Res<()> {
    let value = if required {
        input.get(key)
    } else {
        present(input, key)
    };
    match value {
        None if !required => Ok(()),
        Some(v @ Value::Object(_)) => {
            out.insert(key.to_owned(), v.clone());
            Ok(())
        }
        _ => fail(&format!("{path}/{key}"), "not a map"),
    }
}

/// A list of sub-forms. `default_empty`: absent becomes `[]` (else it stays absent).
fn list(
    input: &Map<String, Value>,
    out: &mut Map<String, Value>,
    path: &str,
    key: &str,
    default_empty: bool,
    fields: FormFn,
) -> Res<()> {
    match present(input, key) {
        None if default_empty => {
            out.insert(key.to_owned(), Value::Array(Vec::new()));
            Ok(())
        }
        None => Ok(()),
        Some(Value::Array(items)) => {
            let mut normalised = Vec::with_capacity(items.len());
            for (i, item) in items.iter().enumerate() {
                normalised.push(form(item, &format!("{path}/{key}/{i}"), fields)?);
            }
            out.insert(key.to_owned(), Value::Array(normalised));
            Ok(())
        }
        Some(_) => fail(&format!("{path}/{key}"), "not a list"),
    }
}

/// go-helpers `IsStringList` + `IsIn{"call"}` + no duplicates. Quirk kept from the original: a value that is not a
/// list at all (missing, `null`, a string, ...) becomes `[]`.
fn rights(input: &Map<String, Value>, out: &mut Map<String, Value>, path: &str) -> Res<()> {
    let path = format!("{path}/rights");
    let mut rights: Vec<Value> = Vec::new();
    if let Some(Value::Array(items)) = input.get("rights") {
        for item in items {
            match item {
                Value::String(s) if s == "call" => {
                    if rights.iter().any(|r| r == item) {
                        return fail(&path, "duplicate 'rights' string");
                    }
                    rights.push(Value::String(s.clone()));
                }
                Value::String(_) => return fail(&path, "invalid choice, must be one of: call"),
                _ => return fail(&path, "not a string"),
            }
        }
    }
    out.insert("rights".to_owned(), Value::Array(rights));
    Ok(())
}

fn channel(input: &Map<String, Value>, out: &mut Map<String, Value>, path: &str) -> Res<()> {
    required_str(input, out, path, "type")?;
    string_map(input, out, path, "settings", false)
}

fn certificate(input: &Map<String, Value>, out: &mut Map<String, Value>, path: &str) -> Res<()> {
    required_str(input, out, path, "fingerprint")?;
    required_str(input, out, path, "key_usage")
}

/// `OperatorSettingsForm`, and also `OperatorPreferencesForm`, which (as in the original) has a `settings` field, not
/// `preferences` — so preference records never populate `preferences` maps.
fn operator_settings(
    input: &Map<String, Value>,
    out: &mut Map<String, Value>,
    path: &str,
) -> Res<()> {
    defaulted_str(input, out, path, "operator")?;
    defaulted_str(input, out, path, "service")?;
    defaulted_str(input, out, path, "environment")?;
    string_map(input, out, path, "settings", true)
}

fn permission(input: &Map<String, Value>, out: &mut Map<String, Value>, path: &str) -> Res<()> {
    required_str(input, out, path, "group")?;
    rights(input, out, path)
}

fn service(input: &Map<String, Value>, out: &mut Map<String, Value>, path: &str) -> Res<()> {
    required_str(input, out, path, "name")?;
    list(input, out, path, "permissions", true, permission)?;
    list(input, out, path, "methods", true, method)
}

fn method(input: &Map<String, Value>, out: &mut Map<String, Value>, path: &str) -> Res<()> {
    required_str(input, out, path, "name")?;
    list(input, out, path, "permissions", true, permission)?;
    list(input, out, path, "parameters", false, parameter)
}

fn parameter(input: &Map<String, Value>, out: &mut Map<String, Value>, path: &str) -> Res<()> {
    required_str(input, out, path, "name")?;
    list(input, out, path, "validators", false, validator)
}

fn validator(input: &Map<String, Value>, out: &mut Map<String, Value>, path: &str) -> Res<()> {
    required_str(input, out, path, "type")?;
    string_map(input, out, path, "parameters", false)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn drops_unknown_keys_and_fills_defaults() {
        let data = json!([{"name": "locations", "permissions": [{"group": "hd", "rights": ["call"]}],
            "methods": [{"name": "add", "params": [{"name": "x"}]}, {"name": "lookup", "permissions": ""}]}]);
        let want = json!([{"name": "locations", "permissions": [{"group": "hd", "rights": ["call"]}],
            "methods": [{"name": "add", "permissions": []}, {"name": "lookup", "permissions": []}]}]);
        assert_eq!(normalise(Section::Services, &data).unwrap(), want);
    }

    #[test]
    fn settings_and_preferences_share_a_form() {
        let data = json!([{"service": "proxy", "settings": {"a": 1}, "preferences": {"b": 2}, "extra": true}]);
        let want =
            json!([{"operator": "", "service": "proxy", "environment": "", "settings": {"a": 1}}]);
        assert_eq!(normalise(Section::Settings, &data).unwrap(), want);
        assert_eq!(normalise(Section::Preferences, &data).unwrap(), want);
        assert!(
            normalise(Section::Preferences, &json!([{"preferences": {}}])).is_err(),
            "settings map required"
        );
    }

    #[test]
    fn optional_null_and_empty_string_are_absent() {
        let data = json!([{"type": "grpc_client", "settings": null}, {"type": "x", "settings": ""}, {"type": "y", "settings": {}}]);
        let want = json!([{"type": "grpc_client"}, {"type": "x"}, {"type": "y", "settings": {}}]);
        assert_eq!(normalise(Section::Channels, &data).unwrap(), want);
    }

    #[test]
    fn rights_quirks() {
        let norm = |rights: Value| {
            normalise(
                Section::Services,
                &json!([{"name": "s", "permissions": [{"group": "g", "rights": rights}]}]),
            )
        };
        assert!(norm(json!(["call", "call"])).is_err());
        assert!(norm(json!(["write"])).is_err());
        assert!(norm(json!([1])).is_err());
        let empty = norm(json!("call")).unwrap();
        assert_eq!(empty[0]["permissions"][0]["rights"], json!([]));
    }

    #[test]
    fn type_errors_are_rejected() {
        assert!(normalise(Section::Groups, &json!("hd")).is_err());
        assert!(normalise(Section::Groups, &json!([1])).is_err());
        assert!(normalise(Section::Channels, &json!([{"settings": {}}])).is_err());
        assert!(normalise(Section::Certificates, &json!([{"fingerprint": "ab"}])).is_err());
        assert!(normalise(Section::Services, &json!([{"name": "s", "methods": {}}])).is_err());
        assert!(normalise(Section::Services, &json!(["s"])).is_err());
        assert_eq!(normalise(Section::Groups, &json!([])).unwrap(), json!([]));
    }
}
