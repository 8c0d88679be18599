//! Permissions and peers (SPEC §3.6).

use std::collections::BTreeSet;

use super::entry::{DirectoryEntry, OperatorService, Permission};

/// The wildcard group: everybody.
pub const ANY_GROUP: &str = "*";

/// `ServiceFor`: the first service (list order) with a method of that exact name.
pub fn service_for<'a>(entry: &'a DirectoryEntry, method: &str) -> Option<&'a OperatorService> {
    entry
        .services
        .iter()
        .find(|s| s.methods.iter().any(|m| m.name == method))
}

/// `CanCall`: the service's and the matching method's permissions; allowed if one names a group of the caller or
/// `*` and has the `call` right. No service → deny. (The local JSON-RPC caller skips this check; the broker decides.)
pub fn can_call(caller: &DirectoryEntry, callee: &DirectoryEntry, method: &str) -> bool {
    let Some(service) = service_for(callee, method) else {
        return false;
    };
    let method_permissions = service
        .methods
        .iter()
        .find(|m| m.name == method)
        .map(|m| &m.permissions[..])
        .unwrap_or(&[]);
    let allows = |p: &Permission| {
        (p.group == ANY_GROUP || caller.groups.contains(&p.group))
            && p.rights.iter().any(|r| r == "call")
    };
    service
        .permissions
        .iter()
        .chain(method_permissions)
        .any(allows)
}

/// `GetPeerGroups`: every group named in any service or method permission (sorted).
pub fn peer_groups(entry: &DirectoryEntry) -> BTreeSet<&str> {
    entry
        .services
        .iter()
        .flat_map(|s| {
            s.permissions
                .iter()
                .chain(s.methods.iter().flat_map(|m| m.permissions.iter()))
        })
        .map(|p| p.group.as_str())
        .collect()
}

fn intersects(groups: &[String], peer_groups: &BTreeSet<&str>) -> bool {
    peer_groups.contains(ANY_GROUP) || groups.iter().any(|g| peer_groups.contains(g.as_str()))
}

/// `GetPeers`: entries that can call `base` (their groups meet base's peer groups), plus, unless `incoming_only`,
/// entries `base` can call. Fix over the original: a `*` permission makes everybody a peer (the original treated
/// `*` as a literal group name here although `can_call` honours it).
pub fn peers<'a>(
    base: &DirectoryEntry,
    entries: impl IntoIterator<Item = &'a DirectoryEntry>,
    incoming_only: bool,
) -> Vec<&'a DirectoryEntry> {
    let base_peer_groups = peer_groups(base);
    entries
        .into_iter()
        .filter(|e| e.name != base.name)
        .filter(|e| {
            (!incoming_only && intersects(&base.groups, &peer_groups(e)))
                || intersects(&e.groups, &base_peer_groups)
        })
        .collect()
}

/// `DirectoryQuery`: exact operator name, group membership, any of the channel types (`None` = no channel filter).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct DirectoryQuery {
    /// Group the entry must be in ("" = any).
    #[serde(default)]
    pub group: String,
    /// Operator name ("" = any).
    #[serde(default)]
    pub operator: String,
    /// Channel types, any of which must be present.
    #[serde(default)]
    pub channels: Option<Vec<String>>,
}

/// `FilterDirectoryEntriesByQuery`.
pub fn filter<'a>(
    entries: impl IntoIterator<Item = &'a DirectoryEntry>,
    query: &DirectoryQuery,
) -> Vec<&'a DirectoryEntry> {
    entries
        .into_iter()
        .filter(|e| query.operator.is_empty() || e.name == query.operator)
        .filter(|e| query.group.is_empty() || e.groups.contains(&query.group))
        .filter(|e| {
            query
                .channels
                .as_ref()
                .is_none_or(|types| types.iter().any(|t| e.channel(t).is_some()))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn entry(name: &str, groups: &[&str], services: serde_json::Value) -> DirectoryEntry {
        let mut e = DirectoryEntry::new(name);
        e.groups = groups.iter().map(|g| g.to_string()).collect();
        e.services = serde_json::from_value(services).unwrap();
        e
    }

    fn dev() -> (DirectoryEntry, DirectoryEntry, DirectoryEntry) {
        let hd = json!([
            {"name": "connection-requests", "permissions": [{"group": "proxy-providers", "rights": ["call"]}],
             "methods": [{"name": "_connectionRequest", "permissions": [], "parameters": null}]},
            {"name": "internals", "permissions": [{"group": "health-departments", "rights": ["call"]}],
             "methods": [{"name": "_ping", "permissions": [], "parameters": null}]}]);
        let proxy = json!([{"name": "internals", "permissions": [{"group": "*", "rights": ["call"]}],
             "methods": [{"name": "_ping", "permissions": [], "parameters": null}]},
            {"name": "private-proxy.ga", "permissions": [],
             "methods": [{"name": "announceConnection", "permissions": [{"group": "health-departments", "rights": ["call"]}], "parameters": null}]}]);
        (
            entry("hd-1", &["health-departments"], hd.clone()),
            entry("hd-2", &["health-departments"], hd),
            entry("private-proxy-1.ga", &["proxy-users"], proxy),
        )
    }

    #[test]
    fn can_call_cases() {
        let (hd1, hd2, proxy) = dev();
        let public = entry("public-proxy-1.ga", &["proxy-providers"], json!([]));
        assert!(can_call(&hd1, &hd2, "_ping"));
        assert!(!can_call(&public, &hd2, "_ping"));
        assert!(can_call(&public, &hd2, "_connectionRequest"));
        assert!(!can_call(&hd1, &hd2, "_connectionRequest"));
        assert!(
            !can_call(&hd1, &hd2, "unlisted"),
            "methods not listed are denied"
        );
        assert!(can_call(&public, &proxy, "_ping"), "* allows everybody");
        assert!(
            can_call(&hd1, &proxy, "announceConnection"),
            "method-level permission"
        );
        assert!(!can_call(&public, &proxy, "announceConnection"));
        let no_right = entry(
            "x",
            &[],
            json!([{"name": "s", "permissions": [{"group": "*", "rights": []}], "methods": [{"name": "m", "permissions": []}]}]),
        );
        assert!(!can_call(&hd1, &no_right, "m"), "needs the call right");
    }

    #[test]
    fn peers_and_star() {
        let (hd1, hd2, proxy) = dev();
        let loner = entry("loner", &["nobody"], json!([]));
        let all = [hd1.clone(), hd2.clone(), proxy.clone(), loner.clone()];
        let names =
            |v: Vec<&DirectoryEntry>| v.into_iter().map(|e| e.name.clone()).collect::<Vec<_>>();
        assert_eq!(names(peers(&hd1, &all, true)), vec!["hd-2"]);
        assert_eq!(
            names(peers(&hd1, &all, false)),
            vec!["hd-2", "private-proxy-1.ga"]
        );
        assert_eq!(
            names(peers(&proxy, &all, true)),
            vec!["hd-1", "hd-2", "loner"],
            "* makes everybody a peer"
        );
        assert!(peer_groups(&hd1).contains("proxy-providers"));
    }

    #[test]
    fn query_filter() {
        let (mut hd1, hd2, proxy) = dev();
        hd1.channels =
            serde_json::from_value(json!([{"type": "grpc_server", "settings": null}])).unwrap();
        let all = [hd1, hd2, proxy];
        let q = |v: serde_json::Value| serde_json::from_value::<DirectoryQuery>(v).unwrap();
        assert_eq!(filter(&all, &q(json!({}))).len(), 3);
        assert_eq!(
            filter(&all, &q(json!({"operator": "hd-2"})))[0].name,
            "hd-2"
        );
        assert_eq!(filter(&all, &q(json!({"group": "proxy-users"}))).len(), 1);
        assert_eq!(
            filter(&all, &q(json!({"channels": ["grpc_server", "quic"]})))[0].name,
            "hd-1"
        );
        assert!(filter(&all, &q(json!({"channels": []}))).is_empty());
    }
}
