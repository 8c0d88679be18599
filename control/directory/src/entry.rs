//! Directory entries (SPEC §3.1) and how a record applies to one (`helpers.IntegrateChangeRecord`): the record's
//! section list replaces the entry's, and the record is appended to the entry's audit trail.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::record::{Section, SignedChangeRecord};

/// One operator's entry. JSON names and `null`/`[]` conventions as the original's `MakeDirectoryEntry`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DirectoryEntry {
    /// Operator name.
    pub name: String,
    /// Groups the operator belongs to.
    pub groups: Vec<String>,
    /// How to reach the operator.
    pub channels: Vec<OperatorChannel>,
    /// Services it offers, with permissions.
    pub services: Vec<OperatorService>,
    /// Pinned certificate fingerprints.
    pub certificates: Vec<OperatorCertificate>,
    /// Settings set by a directory admin.
    pub settings: Vec<OperatorSettings>,
    /// Always `null` in practice (see [`OperatorPreferences`]).
    pub preferences: Option<Vec<OperatorPreferences>>,
    /// Every record applied to this entry, in order.
    pub records: Vec<SignedChangeRecord>,
    /// Display properties; no section sets them.
    pub properties: OperatorProperties,
}

/// `{displayName}`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OperatorProperties {
    /// Display name (always empty: no record section sets it).
    #[serde(rename = "displayName")]
    pub display_name: String,
}

/// A channel: `{type, settings}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OperatorChannel {
    /// `grpc_server`, `grpc_client`, `jsonrpc_server`, `quic`, ...
    #[serde(rename = "type")]
    pub kind: String,
    /// Channel settings (`address`, `proxy`, `internal`, ...); `null` when absent.
    pub settings: Option<Map<String, Value>>,
}

/// A pinned certificate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OperatorCertificate {
    /// Lowercase hex SHA-256 of the leaf DER.
    pub fingerprint: String,
    /// `signing` or `encryption`.
    pub key_usage: String,
}

/// A service with its methods.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OperatorService {
    /// Service name.
    pub name: String,
    /// Permissions for every method of the service.
    pub permissions: Vec<Permission>,
    /// Methods.
    pub methods: Vec<ServiceMethod>,
}

/// A method.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServiceMethod {
    /// Method name (what callers put after `operator.`).
    pub name: String,
    /// Extra permissions for this method.
    pub permissions: Vec<Permission>,
    /// Declared parameters; `null` when absent.
    pub parameters: Option<Vec<ServiceParameter>>,
}

/// `{group, rights}`; the only right is `call`; group `*` means everybody.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Permission {
    /// Group name or `*`.
    pub group: String,
    /// Rights (`call`).
    pub rights: Vec<String>,
}

/// A declared method parameter.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServiceParameter {
    /// Parameter name.
    pub name: String,
    /// Validators; `null` when absent.
    pub validators: Option<Vec<ServiceValidator>>,
}

/// A parameter validator.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServiceValidator {
    /// Validator type.
    #[serde(rename = "type")]
    pub kind: String,
    /// Validator parameters; `null` when absent.
    pub parameters: Option<Map<String, Value>>,
}

/// Settings for (operator, service, environment); empty strings match anything.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OperatorSettings {
    /// Operator the settings are for ("" = any).
    pub operator: String,
    /// Service ("" = any).
    pub service: String,
    /// Environment.
    pub environment: String,
    /// The settings.
    pub settings: Option<Map<String, Value>>,
}

/// Preferences. The original's form for this section has a `settings` field, so `preferences` is never filled.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OperatorPreferences {
    /// Operator.
    pub operator: String,
    /// Service.
    pub service: String,
    /// Environment.
    pub environment: String,
    /// Never populated from records (kept for the JSON shape).
    #[serde(default)]
    pub preferences: Option<Map<String, Value>>,
}

/// A record's data did not match the typed entry shape (cannot happen for normalised data; kept typed anyway).
#[derive(Debug, thiserror::Error)]
#[error("record data does not fit section {section}: {source}")]
pub struct IntegrateError {
    section: Section,
    #[source]
    source: serde_json::Error,
}

impl DirectoryEntry {
    /// An entry read where it only says who someone is (a proxy reading the `_client` its own Hyper
    /// node injected): the audit trail is dropped (a `json` directory's records carry no hash),
    /// and sections older nodes leave out (`properties`, empty lists as `null`) get their empty
    /// values. What the entry grants (groups, channels, settings, certificates) is still read
    /// strictly: a wrong type there is an error.
    pub fn from_informational(value: Value) -> Result<Self, serde_json::Error> {
        let mut value = value;
        if let Value::Object(map) = &mut value {
            map.insert("records".into(), Value::Array(Vec::new()));
            for key in ["groups", "channels", "services", "certificates", "settings"] {
                let slot = map.entry(key).or_insert(Value::Null);
                if slot.is_null() {
                    *slot = Value::Array(Vec::new());
                }
            }
            let properties = map.entry("properties").or_insert(Value::Null);
            if properties.is_null() {
                *properties = serde_json::json!({"displayName": ""});
            }
            map.entry("preferences").or_insert(Value::Null);
        }
        serde_json::from_value(value)
    }

    /// `MakeDirectoryEntry()` with a name: lists empty, `preferences` null, `properties {displayName: ""}`.
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            groups: Vec::new(),
            channels: Vec::new(),
            services: Vec::new(),
            certificates: Vec::new(),
            settings: Vec::new(),
            preferences: None,
            records: Vec::new(),
            properties: OperatorProperties::default(),
        }
    }

    /// The first channel of a type.
    pub fn channel(&self, kind: &str) -> Option<&OperatorChannel> {
        self.channels.iter().find(|c| c.kind == kind)
    }

    /// `SettingsFor(service, operator)`: first settings whose service and operator match or are empty.
    pub fn settings_for(&self, service: &str, operator: &str) -> Option<&OperatorSettings> {
        self.settings.iter().find(|s| {
            (s.service == service || s.service.is_empty())
                && (s.operator == operator || s.operator.is_empty())
        })
    }
}

fn typed<T: serde::de::DeserializeOwned>(
    section: Section,
    data: &Value,
) -> Result<T, IntegrateError> {
    serde_json::from_value(data.clone()).map_err(|source| IntegrateError { section, source })
}

/// Applies a record: replaces the record's section with its data and appends the record to `records`.
/// On error the entry is unchanged.
pub fn integrate(
    entry: &mut DirectoryEntry,
    record: &SignedChangeRecord,
) -> Result<(), IntegrateError> {
    let section = record.record.section;
    let data = &record.record.data;
    match section {
        Section::Groups => entry.groups = typed(section, data)?,
        Section::Channels => entry.channels = typed(section, data)?,
        Section::Services => entry.services = typed(section, data)?,
        Section::Certificates => entry.certificates = typed(section, data)?,
        Section::Settings => entry.settings = typed(section, data)?,
        Section::Preferences => entry.preferences = Some(typed(section, data)?),
    }
    entry.records.push(record.clone());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::ChangeRecord;
    use crate::time::RecordTime;
    use serde_json::json;

    fn record(section: Section, data: Value) -> SignedChangeRecord {
        let t = RecordTime::parse("2021-05-17T10:00:00Z").unwrap();
        let record = ChangeRecord::new("hd-1".into(), section, &data, t).unwrap();
        SignedChangeRecord {
            parent_hash: String::new(),
            hash: "0".repeat(64),
            signature: None,
            record,
        }
    }

    #[test]
    fn new_entry_json_shape() {
        let v = serde_json::to_value(DirectoryEntry::new("hd-1")).unwrap();
        assert_eq!(
            v,
            json!({"name": "hd-1", "groups": [], "channels": [], "services": [], "certificates": [],
                "settings": [], "preferences": null, "records": [], "properties": {"displayName": ""}})
        );
    }

    #[test]
    fn section_is_replaced_not_merged_and_record_appended() {
        let mut entry = DirectoryEntry::new("hd-1");
        integrate(&mut entry, &record(Section::Groups, json!(["a", "b"]))).unwrap();
        integrate(&mut entry, &record(Section::Groups, json!(["c"]))).unwrap();
        assert_eq!(entry.groups, vec!["c".to_string()]);
        assert_eq!(entry.records.len(), 2);
        let channels = json!([{"type": "grpc_server", "settings": {"address": "localhost:8888"}}]);
        integrate(&mut entry, &record(Section::Channels, channels)).unwrap();
        assert_eq!(
            entry
                .channel("grpc_server")
                .and_then(|c| c.settings.as_ref())
                .unwrap()["address"],
            "localhost:8888"
        );
    }

    #[test]
    fn preferences_records_leave_preference_maps_null() {
        let mut entry = DirectoryEntry::new("hd-1");
        let data = json!([{"service": "s", "settings": {"a": 1}, "preferences": {"b": 2}}]);
        integrate(&mut entry, &record(Section::Preferences, data)).unwrap();
        let prefs = entry.preferences.unwrap();
        assert_eq!(prefs[0].service, "s");
        assert_eq!(prefs[0].preferences, None);
    }

    #[test]
    fn settings_for_matches_wildcards() {
        let mut entry = DirectoryEntry::new("hd-1");
        let data = json!([{"service": "proxy", "environment": "production", "settings": {"allowed_domains": [".x"]}}]);
        integrate(&mut entry, &record(Section::Settings, data)).unwrap();
        assert!(entry.settings_for("proxy", "anyone").is_some());
        assert!(entry.settings_for("other", "anyone").is_none());
    }
}
