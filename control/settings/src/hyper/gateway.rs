//! The Hyper `jsonrpc_server` channel (the operator's local gateway): the shared JSON-RPC server
//! settings plus `allowed_clients`, the certificate names it serves besides its own operator.
//!
//! ```yaml
//! - type: jsonrpc_server
//!   settings:
//!     bind_address: "127.0.0.1:5555"
//!     allowed_clients: ["demo-app"]   # Tandem addition; the operator's own name is always allowed
//!     tls: {...}                      # verify_client (default) or request_client_cert: callers are checked
//! ```
//!
//! Every caller of the gateway acts as the operator (SPEC §6.4), so only the operator's local
//! applications may call it. With client certificates (`tls` with `verify_client` or
//! `request_client_cert`), a caller is served only when a name of its certificate is the operator's
//! or in `allowed_clients`, and, where the directory pins `encryption` certificates for that
//! name, its certificate is pinned (`directory::identity::allowed_name`). Without client
//! certificates the gateway cannot tell callers apart and serves everyone who reaches it, as the
//! original: start-up and `check-settings` warn.

use std::fmt;

use serde_json::Value;

use crate::convert::convert;
use crate::error::{FieldIssues, index_key};
use crate::listeners::{JsonRpcServerSettings, RawJsonRpcServerSettings};

/// The key of the allow-list inside the channel's `settings`.
pub const ALLOWED_CLIENTS_KEY: &str = "allowed_clients";
/// Most names in `allowed_clients` (local applications of one operator; a longer list is a
/// settings mistake).
pub const MAX_ALLOWED_CLIENTS: usize = 64;
/// Longest name in `allowed_clients`, in bytes (a DNS name).
pub const MAX_CLIENT_NAME_BYTES: usize = 253;

/// `jsonrpc_server` settings of a Hyper node.
#[derive(Debug, Clone)]
pub struct GatewaySettings {
    /// Listener, path, CORS, TLS and rate limits (as every JSON-RPC server).
    pub server: JsonRpcServerSettings,
    /// Certificate names served besides the operator itself (local applications with their own
    /// certificates); empty by default.
    pub allowed_clients: Vec<String>,
}

impl From<JsonRpcServerSettings> for GatewaySettings {
    /// A gateway serving only its own operator.
    fn from(server: JsonRpcServerSettings) -> Self {
        Self {
            server,
            allowed_clients: Vec::new(),
        }
    }
}

impl GatewaySettings {
    /// Whether callers present certificates the gateway can check (TLS with `verify_client` or
    /// `request_client_cert`).
    pub fn verifies_clients(&self) -> bool {
        self.server
            .tls
            .as_ref()
            .is_some_and(|t| t.verify_client || t.request_client_cert)
    }

    /// The warning for a gateway that cannot tell its callers apart, if this is one.
    pub fn unverified_warning(&self, operator: &str) -> Option<String> {
        if self.verifies_clients() {
            return None;
        }
        let how = match &self.server.tls {
            None => "plain HTTP",
            Some(_) => "TLS without client certificates",
        };
        Some(format!(
            "the JSON-RPC gateway on {} ({how}) cannot verify its callers: anyone who reaches it acts as operator {operator}; keep it on a local address or set tls with verify_client",
            self.server.bind_address
        ))
    }
}

/// Converts the channel's `settings` (the allow-list, then the server settings without it).
pub(crate) fn gateway(settings: &Value) -> Result<GatewaySettings, FieldIssues> {
    let mut issues = FieldIssues::default();
    let mut rest = settings.clone();
    let raw = rest
        .as_object_mut()
        .and_then(|m| m.remove(ALLOWED_CLIENTS_KEY));
    let allowed_clients = allowed_clients(raw, &mut issues);
    match convert::<RawJsonRpcServerSettings, JsonRpcServerSettings>(&rest) {
        Ok(server) => issues.into_result(GatewaySettings {
            server,
            allowed_clients,
        }),
        Err(inner) => {
            issues.nest("", inner);
            Err(issues)
        }
    }
}

fn allowed_clients(raw: Option<Value>, issues: &mut FieldIssues) -> Vec<String> {
    let items = match raw {
        None | Some(Value::Null) => return Vec::new(),
        Some(Value::Array(items)) => items,
        Some(_) => {
            issues.push(ALLOWED_CLIENTS_KEY, "must be a list of certificate names");
            return Vec::new();
        }
    };
    if items.len() > MAX_ALLOWED_CLIENTS {
        issues.push(
            ALLOWED_CLIENTS_KEY,
            format!("at most {MAX_ALLOWED_CLIENTS} names"),
        );
        return Vec::new();
    }
    let mut names = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        match item.as_str() {
            Some(name) if !name.is_empty() && name.len() <= MAX_CLIENT_NAME_BYTES => {
                names.push(name.to_owned());
            }
            _ => issues.push(
                index_key(ALLOWED_CLIENTS_KEY, i),
                format!("must be a certificate name of 1 to {MAX_CLIENT_NAME_BYTES} bytes"),
            ),
        }
    }
    names
}

impl fmt::Display for GatewaySettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.server)?;
        if !self.verifies_clients() {
            return f.write_str(" callers=UNVERIFIED (every caller acts as the operator)");
        }
        write!(f, " callers=operator")?;
        for name in &self.allowed_clients {
            write!(f, ",{name}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn tls() -> Value {
        json!({"ca_certificate_files": ["/ca.crt"], "certificate_file": "/s.crt", "key_file": "/s.key"})
    }

    #[test]
    fn the_allow_list_is_read_beside_the_server_settings() {
        let g = gateway(&json!({"bind_address": "127.0.0.1:0", "tls": tls(),
            "allowed_clients": ["demo-app", "ls-app"]}))
        .unwrap();
        assert_eq!(g.allowed_clients, ["demo-app", "ls-app"]);
        assert!(g.verifies_clients());
        assert_eq!(g.unverified_warning("hd-1"), None);
        assert!(
            g.to_string().ends_with("callers=operator,demo-app,ls-app"),
            "{g}"
        );

        let plain = gateway(&json!({"bind_address": "127.0.0.1:0"})).unwrap();
        assert!(plain.allowed_clients.is_empty());
        let warning = plain.unverified_warning("hd-1").unwrap();
        assert!(
            warning.contains("plain HTTP") && warning.contains("hd-1"),
            "{warning}"
        );
        assert!(plain.to_string().contains("UNVERIFIED"));

        let mut no_auth = tls();
        no_auth["verify_client"] = json!(false);
        let g = gateway(&json!({"bind_address": "127.0.0.1:0", "tls": no_auth})).unwrap();
        assert!(
            g.unverified_warning("hd-1")
                .unwrap()
                .contains("without client certificates")
        );
    }

    #[test]
    fn bad_allow_lists_and_server_keys_are_all_reported() {
        let keys = |v: Value| -> Vec<String> {
            gateway(&v)
                .unwrap_err()
                .0
                .into_iter()
                .map(|(k, _)| k)
                .collect()
        };
        assert_eq!(
            keys(json!({"bind_address": "nohost", "allowed_clients": ["ok", "", 5]})),
            ["allowed_clients[1]", "allowed_clients[2]", "bind_address"]
        );
        assert_eq!(
            keys(json!({"bind_address": "h:1", "allowed_clients": "demo-app"})),
            ["allowed_clients"]
        );
        let many: Vec<String> = (0..=MAX_ALLOWED_CLIENTS).map(|i| format!("a{i}")).collect();
        assert_eq!(
            keys(json!({"bind_address": "h:1", "allowed_clients": many})),
            ["allowed_clients"]
        );
        assert_eq!(
            keys(json!({"bind_address": "h:1", "alowed_clients": []})),
            ["alowed_clients"],
            "a typo is an unknown key"
        );
    }
}
