//! `requestConnection` (SPEC §4.3): issue a pair, tell the target its token with
//! `_connectionRequest`, hand the requester the other. With Tandem's fixes: the requester must be
//! allowed to reach the target, each side gets its own single-use token, the target is told
//! with a deadline, and the pair is cancelled when telling it fails (the original leaked it).
//!
//! Authorisation rule: the target must have a directory entry (read through our Hyper node's
//! internal `_directory` method, so the proxy needs no directory client of its own), and one
//! of the requester's groups (from the `_client` entry Hyper injects) — or `*` — must appear
//! in a permission of any of the target's services or methods: the requester is a peer that
//! the target accepts calls from (SPEC §3.6 `GetPeers`, incoming direction).

use std::sync::Arc;
use std::time::SystemTime;

use tandem_contracts::hyper_node::ConnectionRequest;
use tandem_contracts::public_proxy::{Offer, RequestConnection};
use tandem_engine::{PairKind, Token};
use tracing::{debug, info, warn};

use serde_json::{Map, Value};

use super::caller::{ClientInfo, called};
use super::error::CallError;
use super::hyper_link::LinkError;
use super::public::PublicState;
use super::stats::ProxyCounters;
use tandem_directory::entry::DirectoryEntry;
use tandem_directory::permissions::{ANY_GROUP, peer_groups};

/// Whether `requester` may reach `target` (see the module docs for the rule).
pub fn may_reach(requester: &DirectoryEntry, target: &DirectoryEntry) -> bool {
    let accepted = peer_groups(target);
    accepted.contains(ANY_GROUP)
        || requester
            .groups
            .iter()
            .any(|g| accepted.contains(g.as_str()))
}

/// Handles `requestConnection {to, channel, _client}` → `{token, endpoint}` (`Offer`), counting
/// every request and every refusal (malformed params included).
pub async fn request_connection(
    state: &Arc<PublicState>,
    params: Map<String, Value>,
) -> Result<Offer, CallError> {
    ProxyCounters::inc(&state.counters.pairs_requested);
    let result = match called::<RequestConnection>(params) {
        Ok((client, call)) => pair(state, client, call).await,
        Err(e) => Err(e),
    };
    if result.is_err() {
        ProxyCounters::inc(&state.counters.requests_refused);
    }
    result
}

async fn pair(
    state: &Arc<PublicState>,
    client: ClientInfo,
    call: RequestConnection,
) -> Result<Offer, CallError> {
    let RequestConnection { to, channel } = call;
    let target = state
        .hyper
        .directory_entry(to.as_str())
        .await
        .map_err(CallError::Directory)?
        .ok_or_else(|| CallError::UnknownOperator(to.to_string()))?;
    if !may_reach(&client.entry, &target) {
        return Err(CallError::NotAllowed {
            requester: client.name.to_string(),
            target: to.to_string(),
        });
    }
    let quotas = &state.quotas;
    let now = SystemTime::now();
    let admitted = quotas
        .admit(client.name.as_str(), now)
        .await
        .map_err(CallError::Quota)?;
    let ttl = state.engine.pair_ttl();
    let created =
        state
            .engine
            .create_pair_limited(PairKind::Direct, ttl, None, admitted.bandwidth());
    let ticket = match created {
        Ok(t) => {
            quotas.issued(admitted, t.id, now + ttl);
            t
        }
        Err(e) => {
            quotas.abandoned(admitted);
            return Err(e.into());
        }
    };
    debug!(pair = %ticket.id, requester = %client.name, target = %to, "pair issued");
    if let Some(log) = &state.access_log {
        log.annotate(ticket.id, client.name.as_ref(), to.as_ref());
    }
    let notify = connection_request(state, to.as_str(), channel, client, ticket.side_b);
    if let Err(e) = notify.await {
        // The target never got its token: nobody can use this pair, so free it now.
        if let Err(cancel) = state.engine.cancel_pair(ticket.id) {
            warn!(pair = %ticket.id, error = %cancel, "cancelling a failed pair");
        }
        ProxyCounters::inc(&state.counters.pairs_cancelled);
        info!(pair = %ticket.id, target = %to, kind = e.kind(), error = %e, "_connectionRequest failed; pair cancelled");
        return Err(CallError::Peer(e));
    }
    ProxyCounters::inc(&state.counters.pairs_issued);
    Ok(Offer {
        token: ticket.side_a,
        endpoint: state.endpoint.clone(),
    })
}

/// `<to>._connectionRequest {endpoint, client, channel, token}` through our Hyper node. A request
/// that cannot be encoded is a [`LinkError::Contract`] (nothing is sent; the pair is cancelled).
async fn connection_request(
    state: &PublicState,
    to: &str,
    channel: String,
    client: ClientInfo,
    token: Token,
) -> Result<(), LinkError> {
    let call = ConnectionRequest {
        endpoint: state.endpoint.clone(),
        client: Some(client),
        channel,
        token,
    };
    state.hyper.call(to, &call).await.map(|_accepted| ())
}

#[cfg(test)]
mod tests {
    use super::*;
    use tandem_directory::entry::{OperatorService, Permission};

    fn entry(name: &str, groups: &[&str], permitted: &[&str]) -> DirectoryEntry {
        let mut e = DirectoryEntry::new(name);
        e.groups = groups.iter().map(|g| g.to_string()).collect();
        if !permitted.is_empty() {
            e.services.push(OperatorService {
                name: "internals".into(),
                permissions: permitted
                    .iter()
                    .map(|g| Permission {
                        group: g.to_string(),
                        rights: vec!["call".into()],
                    })
                    .collect(),
                methods: Vec::new(),
            });
        }
        e
    }

    #[test]
    fn the_requester_must_be_in_a_group_the_target_permits() {
        let hd1 = entry("hd-1", &["health-departments"], &[]);
        let ls1 = entry("ls-1", &["labs"], &[]);
        let hd2 = entry("hd-2", &["health-departments"], &["health-departments"]);
        assert!(may_reach(&hd1, &hd2));
        assert!(!may_reach(&ls1, &hd2));
        assert!(!may_reach(&hd1, &entry("closed", &[], &[])));
        assert!(may_reach(&ls1, &entry("open", &[], &["*"])));
    }
}
