//! Which pairing endpoints an operator owns, by its directory entry: a proxy operator lists the
//! endpoints its nodes hand out (each node's `internal_endpoint`) in a channel of type
//! [`PROXY_CHANNEL`]:
//!
//! ```json
//! {"type": "proxy", "settings": {"endpoints": ["proxy.example.org:9999"]}}
//! ```
//!
//! A node dials a pairing endpoint only when the operator that asked for the connection (the proxy
//! that sent `_connectionRequest` or `incomingConnection`, the proxy that answered
//! `requestConnection`) lists it here. Hosts compare without regard to ASCII case, ports exactly;
//! names are not resolved (the entry must list the endpoint as the proxy hands it out).
//! The original ignores channel types it does not know, so such an entry is compatible with it.

use serde_json::Value;

use super::entry::DirectoryEntry;
use tandem_types::HostPort;

/// The channel type listing a proxy operator's pairing endpoints.
pub const PROXY_CHANNEL: &str = "proxy";
/// The key of that channel's settings holding the `HOST:PORT` list.
pub const ENDPOINTS_KEY: &str = "endpoints";
/// Most endpoints read from one entry (one per proxy node); later ones are ignored, so a huge
/// entry cannot make each check slow.
pub const MAX_PROXY_ENDPOINTS: usize = 256;

/// The pairing endpoints `entry` lists, as written (malformed items are skipped).
pub fn proxy_endpoints(entry: &DirectoryEntry) -> Vec<HostPort> {
    entry
        .channels
        .iter()
        .filter(|c| c.kind == PROXY_CHANNEL)
        .filter_map(|c| c.settings.as_ref()?.get(ENDPOINTS_KEY)?.as_array())
        .flatten()
        .filter_map(Value::as_str)
        .filter_map(|text| text.parse::<HostPort>().ok())
        .take(MAX_PROXY_ENDPOINTS)
        .collect()
}

/// Whether `entry` lists `endpoint` (`HOST:PORT`) among its pairing endpoints.
pub fn owns_endpoint(entry: &DirectoryEntry, endpoint: &str) -> bool {
    let Ok(wanted) = endpoint.parse::<HostPort>() else {
        return false;
    };
    proxy_endpoints(entry)
        .iter()
        .any(|e| e.port == wanted.port && e.host.eq_ignore_ascii_case(&wanted.host))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::entry::OperatorChannel;

    fn proxy(settings: Value) -> DirectoryEntry {
        let mut entry = DirectoryEntry::new("public-proxy-1.ga");
        entry.channels.push(OperatorChannel {
            kind: "grpc_server".into(),
            settings: json!({"address": "localhost:5556"}).as_object().cloned(),
        });
        entry.channels.push(OperatorChannel {
            kind: PROXY_CHANNEL.into(),
            settings: settings.as_object().cloned(),
        });
        entry
    }

    #[test]
    fn only_the_listed_endpoints_are_owned() {
        let entry = proxy(json!({"endpoints": ["localhost:9999", "[::1]:9998", 5, "nohost"]}));
        assert_eq!(proxy_endpoints(&entry).len(), 2, "malformed items skipped");
        for ok in ["localhost:9999", "LocalHost:9999", "[::1]:9998"] {
            assert!(owns_endpoint(&entry, ok), "{ok}");
        }
        for foreign in [
            "127.0.0.1:9999",
            "localhost:9998",
            "localhost:5556",
            "127.0.0.1:7001",
            "localhost",
            "",
        ] {
            assert!(!owns_endpoint(&entry, foreign), "{foreign}");
        }
    }

    #[test]
    fn an_entry_without_a_proxy_channel_owns_nothing() {
        assert!(!owns_endpoint(
            &DirectoryEntry::new("hd-1"),
            "localhost:9999"
        ));
        let no_list = proxy(json!({"endpoint": "localhost:9999"}));
        assert!(!owns_endpoint(&no_list, "localhost:9999"));
    }
}
