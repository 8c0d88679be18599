//! A peer's `grpc_server` channel in its directory entry (`GRPCServerEntrySettings`) and the choice of
//! peers to hold reverse streams to (SPEC §2.6).

use std::collections::BTreeMap;

use serde::Deserialize;

use tandem_directory::entry::DirectoryEntry;
use tandem_directory::permissions::peers;

/// `{address, internal, proxy}` of an entry's `grpc_server` channel.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct GrpcServerEntry {
    /// `host:port` to dial.
    pub address: String,
    /// Not reachable from outside (default false).
    #[serde(default)]
    pub internal: bool,
    /// The proxy operator through which the server is reached ("" = direct).
    #[serde(default, deserialize_with = "null_as_empty")]
    pub proxy: String,
}

fn null_as_empty<'de, D: serde::Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    Ok(Option::<String>::deserialize(d)?.unwrap_or_default())
}

/// Most `grpc_server` channels read from one entry (one per node of an operator); later ones are
/// ignored, so a huge entry cannot make every call's choice of node slow.
pub const MAX_NODES: usize = 64;

impl GrpcServerEntry {
    /// The first `grpc_server` settings of `entry`; `None` without such a channel or with unusable
    /// settings.
    pub fn of(entry: &DirectoryEntry) -> Option<Self> {
        Self::all(entry).into_iter().next()
    }

    /// Every usable `grpc_server` channel of `entry` (one per node of the operator), in entry
    /// order, at most [`MAX_NODES`]; unusable ones are skipped.
    pub fn all(entry: &DirectoryEntry) -> Vec<Self> {
        entry
            .channels
            .iter()
            .filter(|c| c.kind == "grpc_server")
            .filter_map(|c| c.settings.clone())
            .filter_map(|s| serde_json::from_value(serde_json::Value::Object(s)).ok())
            .take(MAX_NODES)
            .collect()
    }

    /// Reachable without a proxy from anywhere.
    pub fn is_public(&self) -> bool {
        !self.internal && self.proxy.is_empty()
    }
}

/// Peers `own` keeps a reverse `ServerCall` stream to, with their addresses: operators that may call
/// us (`peers(.., incoming_only)`) and have a public `grpc_server`, minus ourselves, and minus peers
/// with a `grpc_client` when our own `grpc_server` is public (they can dial us). A peer with several
/// public `grpc_server` channels (the nodes of a proxy operator) appears once per node, so any of
/// its nodes can push a request to us.
pub fn reverse_targets(
    own: &str,
    entries: &BTreeMap<String, DirectoryEntry>,
) -> Vec<(String, String)> {
    let Some(own_entry) = entries.get(own) else {
        return Vec::new();
    };
    let own_public = GrpcServerEntry::of(own_entry).is_some_and(|s| s.is_public());
    peers(own_entry, entries.values(), true)
        .into_iter()
        .filter(|peer| peer.name != own)
        .filter(|peer| !(own_public && peer.channel("grpc_client").is_some()))
        .flat_map(|peer| {
            GrpcServerEntry::all(peer)
                .into_iter()
                .filter(GrpcServerEntry::is_public)
                .map(|server| (peer.name.clone(), server.address))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use tandem_directory::entry::{OperatorChannel, OperatorService, Permission, ServiceMethod};

    fn channel(kind: &str, settings: serde_json::Value) -> OperatorChannel {
        OperatorChannel {
            kind: kind.into(),
            settings: settings.as_object().cloned(),
        }
    }

    fn entry(name: &str, group: &str, channels: Vec<OperatorChannel>) -> DirectoryEntry {
        let mut e = DirectoryEntry::new(name);
        e.groups = vec![group.into()];
        e.channels = channels;
        e
    }

    #[test]
    fn entry_settings_parse_with_defaults() {
        let e = entry(
            "a",
            "g",
            vec![channel(
                "grpc_server",
                json!({"address": "h:1", "proxy": null}),
            )],
        );
        let s = GrpcServerEntry::of(&e).unwrap();
        assert_eq!(
            (s.address.as_str(), s.internal, s.proxy.as_str()),
            ("h:1", false, "")
        );
        assert!(s.is_public());
        let e = entry(
            "a",
            "g",
            vec![channel("grpc_server", json!({"internal": true}))],
        );
        assert!(GrpcServerEntry::of(&e).is_none(), "address is required");
        assert!(GrpcServerEntry::of(&entry("a", "g", vec![])).is_none());
    }

    #[test]
    fn reverse_targets_follow_the_original_skips() {
        // `me` lets group `callers` call it; it has a proxied grpc_server (cannot be dialed).
        let mut me = entry(
            "me",
            "mine",
            vec![channel(
                "grpc_server",
                json!({"address": "me:1", "proxy": "px"}),
            )],
        );
        me.services = vec![OperatorService {
            name: "s".into(),
            permissions: vec![Permission {
                group: "callers".into(),
                rights: vec!["call".into()],
            }],
            methods: vec![ServiceMethod {
                name: "m".into(),
                permissions: vec![],
                parameters: None,
            }],
        }];
        let public = entry(
            "public",
            "callers",
            vec![
                channel("grpc_server", json!({"address": "public:1"})),
                channel("grpc_client", json!({})),
            ],
        );
        let proxied = entry(
            "proxied",
            "callers",
            vec![channel(
                "grpc_server",
                json!({"address": "p:1", "proxy": "px"}),
            )],
        );
        let internal = entry(
            "internal",
            "callers",
            vec![channel(
                "grpc_server",
                json!({"address": "i:1", "internal": true}),
            )],
        );
        let stranger = entry(
            "stranger",
            "others",
            vec![channel("grpc_server", json!({"address": "s:1"}))],
        );
        let entries: BTreeMap<_, _> = [me.clone(), public, proxied, internal, stranger]
            .into_iter()
            .map(|e| (e.name.clone(), e))
            .collect();
        assert_eq!(
            reverse_targets("me", &entries),
            vec![("public".to_string(), "public:1".to_string())]
        );
        // With a public server of our own, peers that have a grpc_client dial us instead.
        let mut entries = entries;
        me.channels = vec![channel("grpc_server", json!({"address": "me:1"}))];
        entries.insert("me".into(), me);
        assert!(reverse_targets("me", &entries).is_empty());
        assert!(reverse_targets("nobody", &entries).is_empty());
    }

    #[test]
    fn every_public_node_of_a_peer_gets_a_stream() {
        let mut me = entry(
            "me",
            "mine",
            vec![channel(
                "grpc_server",
                json!({"address": "me:1", "proxy": "px"}),
            )],
        );
        me.services = vec![OperatorService {
            name: "s".into(),
            permissions: vec![Permission {
                group: "proxies".into(),
                rights: vec!["call".into()],
            }],
            methods: vec![],
        }];
        let px = entry(
            "px",
            "proxies",
            vec![
                channel("grpc_server", json!({"address": "n1:1"})),
                channel("grpc_server", json!({"address": "n2:1"})),
                channel("grpc_server", json!({"address": "n3:1", "internal": true})),
                channel("grpc_server", json!({"nope": 1})),
            ],
        );
        assert_eq!(
            GrpcServerEntry::all(&px).len(),
            3,
            "unusable channel skipped"
        );
        assert_eq!(GrpcServerEntry::of(&px).unwrap().address, "n1:1");
        let entries: BTreeMap<_, _> = [me, px].into_iter().map(|e| (e.name.clone(), e)).collect();
        assert_eq!(
            reverse_targets("me", &entries),
            vec![
                ("px".to_string(), "n1:1".to_string()),
                ("px".to_string(), "n2:1".to_string())
            ]
        );
    }
}
