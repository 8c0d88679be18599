//! Keys the original accepted and silently ignored (its forms drop unknown keys), which its own
//! dev roles carry: Tandem takes them out before the typed conversion, so those settings start
//! unchanged, and says so with the file and key (a `WARN` line at start and in `check-settings`),
//! instead of ignoring them without a word. Every other unknown key stays an error.

use serde_json::Value;
use tracing::warn;

use crate::error::{index_key, join_key};
use crate::loader::Provenance;

/// An ignored key found in the settings: where, and what it means.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LegacyKey {
    /// The dotted key (`public.jsonrpc_server.tls.validate_client`).
    pub key: String,
    /// What the original did with it and what to write instead.
    pub meaning: &'static str,
}

/// `validate_client` inside a `tls` block: a typo for `verify_client` in the original's dev roles.
const VALIDATE_CLIENT: &str = "not a key of the original either, which ignored it: client \
     certificates stay required (verify_client: true); write verify_client: false to turn them off, \
     or remove the key";

/// Removes the ignored keys from `value` and returns them.
pub fn strip(value: &mut Value) -> Vec<LegacyKey> {
    let mut found = Vec::new();
    walk(value, "", false, &mut found);
    found
}

fn walk(value: &mut Value, key: &str, in_tls: bool, found: &mut Vec<LegacyKey>) {
    match value {
        Value::Object(map) => {
            if in_tls && map.remove("validate_client").is_some() {
                found.push(LegacyKey {
                    key: join_key(key, "validate_client"),
                    meaning: VALIDATE_CLIENT,
                });
            }
            for (name, child) in map.iter_mut() {
                walk(child, &join_key(key, name), name == "tls", found);
            }
        }
        Value::Array(items) => {
            for (i, child) in items.iter_mut().enumerate() {
                walk(child, &index_key(key, i), false, found);
            }
        }
        _ => {}
    }
}

/// [`strip`], logging each key found with the file it came from.
pub fn strip_and_warn(value: &mut Value, prov: &Provenance) {
    for legacy in strip(value) {
        let file = prov
            .file_for(&legacy.key)
            .map(|f| f.display().to_string())
            .unwrap_or_default();
        warn!(
            file,
            key = legacy.key,
            "ignored settings key: {}",
            legacy.meaning
        );
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn validate_client_is_taken_out_of_tls_blocks_only() {
        let mut v = json!({
            "public": {"jsonrpc_server": {"tls": {"validate_client": false, "key_file": "/k"}}},
            "channels": [{"settings": {"tls": {"validate_client": true}}}],
            "validate_client": 1,
            "other": {"validate_client": 2}
        });
        let keys: Vec<String> = strip(&mut v).into_iter().map(|l| l.key).collect();
        assert_eq!(
            keys,
            [
                "channels[0].settings.tls.validate_client",
                "public.jsonrpc_server.tls.validate_client"
            ]
        );
        assert_eq!(
            v["public"]["jsonrpc_server"]["tls"],
            json!({"key_file": "/k"})
        );
        assert_eq!(
            v["validate_client"], 1,
            "outside a tls block it stays (and is refused)"
        );
        assert_eq!(v["other"]["validate_client"], 2);
    }
}
