//! From `serde_json::Value` to `Raw*` structs to typed settings, with every problem keyed.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde_json::Value;

use super::error::{FieldIssues, SettingsError, SettingsIssue, join_key};
use super::loader::Provenance;
use super::paths;

/// Deserialises `value` into `T`; the error names the key (relative to `value`) and the reason.
/// Serde stops at the first problem, so nested free-form parts (`settings:` maps) are parsed
/// separately by their owners to report more than one issue at a time.
pub fn parse_value<T: DeserializeOwned>(value: &Value) -> Result<T, FieldIssues> {
    serde_path_to_error::deserialize(value).map_err(|err| {
        let path = err.path().to_string();
        let path = if path == "." { String::new() } else { path };
        let message = err.inner().to_string();
        let mut issues = FieldIssues::default();
        if let Some(field) = quoted_after(&message, "unknown field `") {
            let expected = message
                .split_once(", expected")
                .map(|(_, e)| e.trim())
                .unwrap_or("");
            let reason = if expected.is_empty() {
                "unknown key".to_owned()
            } else {
                format!("unknown key (expected {expected})")
            };
            // serde_path_to_error already ends the path with the unknown key.
            let key = if path == field || path.ends_with(&format!(".{field}")) {
                path
            } else {
                join_key(&path, field)
            };
            issues.push(key, reason);
        } else if let Some(field) = quoted_after(&message, "missing field `") {
            issues.push(join_key(&path, field), "required key is missing");
        } else {
            issues.push(path, message);
        }
        issues
    })
}

/// Parses `value` as `R` and converts it into `T`, with keys relative to `value`.
pub fn convert<R, T>(value: &Value) -> Result<T, FieldIssues>
where
    R: DeserializeOwned,
    T: TryFrom<R, Error = FieldIssues>,
{
    T::try_from(parse_value::<R>(value)?)
}

/// Turns relative issues of the whole settings value into a [`SettingsError::Invalid`], each
/// issue attributed to the file that set its key (or the key's closest ancestor).
pub fn into_settings_error(issues: FieldIssues, prov: &Provenance) -> SettingsError {
    SettingsError::Invalid(
        issues
            .0
            .into_iter()
            .map(|(key, reason)| SettingsIssue {
                file: prov.file_for(&key).map(Path::to_path_buf),
                key,
                reason,
            })
            .collect(),
    )
}

/// Converts a whole merged settings value into `T` (the top-level typed settings).
pub fn from_merged<R, T>(value: &Value, prov: &Provenance) -> Result<T, SettingsError>
where
    R: DeserializeOwned,
    T: TryFrom<R, Error = FieldIssues>,
{
    let mut value = value.clone();
    crate::legacy::strip_and_warn(&mut value, prov);
    convert::<R, T>(&value).map_err(|issues| into_settings_error(issues, prov))
}

fn quoted_after<'m>(message: &'m str, prefix: &str) -> Option<&'m str> {
    let rest = &message[message.find(prefix)? + prefix.len()..];
    rest.split_once('`').map(|(field, _)| field)
}

/// An absolute, lexically normalised path; relative paths are rejected because the original
/// resolves them against `/` (use `"/$DIR/..."` for paths next to the settings file).
pub fn abs_path(raw: &str, key: &str, issues: &mut FieldIssues) -> Option<PathBuf> {
    let path = Path::new(raw);
    if raw.is_empty() {
        issues.push(key, "must not be empty");
        None
    } else if !path.has_root() {
        issues.push(key, format!("{raw:?} is not an absolute path (write \"/$DIR/...\" for a path next to the settings file)"));
        None
    } else {
        Some(paths::normalize(path))
    }
}

/// [`abs_path`] for each element; with `required`, an empty list is an issue too.
pub fn abs_paths(
    raw: &[String],
    key: &str,
    required: bool,
    issues: &mut FieldIssues,
) -> Vec<PathBuf> {
    if required && raw.is_empty() {
        issues.push(key, "required: list at least one file");
    }
    raw.iter()
        .enumerate()
        .filter_map(|(i, p)| abs_path(p, &format!("{key}[{i}]"), issues))
        .collect()
}

/// Seconds (a number, fractions allowed) within `min..=max`.
pub fn seconds(
    raw: f64,
    key: &str,
    min: f64,
    max: f64,
    issues: &mut FieldIssues,
) -> Option<Duration> {
    if !raw.is_finite() || raw < min || raw > max {
        issues.push(
            key,
            format!("must be between {min} and {max} seconds, got {raw}"),
        );
        return None;
    }
    Some(Duration::from_secs_f64(raw))
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;
    use serde_json::json;

    use super::*;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Inner {
        a: u16,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Outer {
        list: Vec<Inner>,
    }

    #[test]
    fn unknown_missing_and_bad_values_name_their_key() {
        let e =
            parse_value::<Outer>(&json!({"list": [{"a": 1}, {"a": 1, "typo": 2}]})).unwrap_err();
        assert_eq!(e.0[0].0, "list[1].typo");
        assert!(e.0[0].1.starts_with("unknown key"), "{:?}", e);
        let e = parse_value::<Outer>(&json!({"list": [{}]})).unwrap_err();
        assert_eq!(
            e.0[0],
            ("list[0].a".to_owned(), "required key is missing".to_owned())
        );
        let e = parse_value::<Outer>(&json!({"list": [{"a": 70000}]})).unwrap_err();
        assert_eq!(e.0[0].0, "list[0].a");
        let e = parse_value::<Outer>(&json!({})).unwrap_err();
        assert_eq!(e.0[0].0, "list");
    }

    #[test]
    fn paths_must_be_absolute_and_are_normalised() {
        let mut issues = FieldIssues::default();
        assert_eq!(
            abs_path("/a/b/../c", "k", &mut issues),
            Some(PathBuf::from("/a/c"))
        );
        assert_eq!(abs_path("c", "k", &mut issues), None);
        assert_eq!(
            abs_paths(&[], "l", true, &mut issues),
            Vec::<PathBuf>::new()
        );
        assert_eq!(
            issues.0.iter().map(|i| i.0.as_str()).collect::<Vec<_>>(),
            vec!["k", "l"]
        );
    }
}
