//! The public proxy's JSON-RPC methods (SPEC §4.2): `requestConnection`, `announceConnections`,
//! `getAnnouncements`; only our own Hyper node may call them (see `caller::checked_call`).

use std::sync::Arc;

use chrono::Utc;
use serde_json::{Map, Value};
use tracing::{info, warn};

use super::announcements::{Outcome, Refusal};
use super::caller::{ClientInfo, allowed_domains, called, checked_call};
use super::error::CallError;
use super::public::{MAX_CONNECTIONS_PER_CALL, PublicState};
use super::stats::ProxyCounters;
use tandem_contracts::public_proxy::{
    AnnounceConnections, GetAnnouncements, ItemRefusal, Method, RequestConnection,
};
use tandem_contracts::{Call, decode_params, encode_result};
use tandem_net::http::{Methods, PeerInfo};
use tandem_net::jsonrpc::{ErrorObject, Request};

/// The public proxy's JSON-RPC methods, called by its own Hyper node.
pub(crate) struct PublicMethods {
    state: Arc<PublicState>,
}

impl PublicMethods {
    pub(crate) fn new(state: Arc<PublicState>) -> Self {
        Self { state }
    }
}

impl Methods for PublicMethods {
    async fn call(&self, request: Request, peer: PeerInfo) -> Result<Value, ErrorObject> {
        let state = &self.state;
        let pins = state.pins.as_ref();
        checked_call(
            &peer,
            &state.name,
            state.check_callers,
            pins,
            request,
            |m, p| async move { dispatch(state, &m, p).await },
        )
        .await
    }
}

/// One call by its contract: the method from [`Method`], the typed params, the typed result.
async fn dispatch(
    state: &Arc<PublicState>,
    method: &str,
    params: Map<String, Value>,
) -> Result<Value, CallError> {
    let method = method
        .parse::<Method>()
        .map_err(|_| CallError::MethodNotFound)?;
    match method {
        Method::RequestConnection => {
            let offer = super::request_connection::request_connection(state, params).await?;
            Ok(encode_result::<RequestConnection>(&offer)?)
        }
        Method::AnnounceConnections => {
            let (client, call) = called::<AnnounceConnections>(params)?;
            let results = announce_connections(state, client, call).await?;
            Ok(encode_result::<AnnounceConnections>(&results)?)
        }
        Method::GetAnnouncements => {
            decode_params::<GetAnnouncements>(params)?;
            let live = state.announcements.live(Utc::now());
            Ok(encode_result::<GetAnnouncements>(&live)?)
        }
    }
}

async fn announce_connections(
    state: &PublicState,
    client: ClientInfo,
    call: AnnounceConnections,
) -> Result<<AnnounceConnections as Call>::Result, CallError> {
    let now = Utc::now();
    let items = call.connections;
    if items.len() > MAX_CONNECTIONS_PER_CALL {
        return Err(CallError::InvalidParams(format!(
            "connections: at most {MAX_CONNECTIONS_PER_CALL} per call"
        )));
    }
    let rules = state.announcements.rules();
    let mut requested = Vec::with_capacity(items.len());
    for (i, item) in items.into_iter().enumerate() {
        let expiry = rules
            .expiry(item.expires_at, now)
            .map_err(|e| CallError::InvalidParams(format!("connections[{i}].expires_at: {e}")))?;
        requested.push((item.domain, expiry));
    }
    let allowed = allowed_domains(&client.entry, &state.name)?;
    let plan = state
        .announcements
        .announce(client.name.as_str(), &allowed, &requested, now)
        .await?;
    let results = plan
        .results
        .iter()
        .map(|r| count(&state.counters, r))
        .collect();
    let taken = plan
        .results
        .iter()
        .filter(|r| matches!(r, Err(Refusal::Taken)))
        .count();
    if taken > 0 {
        warn!(operator = %client.name, taken, "refused changes of other operators' live announcements");
    }
    if let Some(Err(Refusal::OverQuota { quota })) = plan
        .results
        .iter()
        .find(|r| matches!(r, Err(Refusal::OverQuota { .. })))
    {
        info!(operator = %client.name, quota, "announcement quota reached");
    }
    Ok(results)
}

/// Counts one item's result and returns it (`null` or `{code, message}` on the wire).
fn count(counters: &ProxyCounters, result: &Result<Outcome, Refusal>) -> Option<ItemRefusal> {
    match result {
        Ok(outcome) => {
            ProxyCounters::inc(&counters.announcements_accepted);
            match outcome {
                Outcome::Withdrawn => ProxyCounters::inc(&counters.announcements_withdrawn),
                Outcome::Renewed => ProxyCounters::inc(&counters.announcements_deferred),
                _ => {}
            }
            None
        }
        Err(refusal) => {
            ProxyCounters::inc(&counters.announcements_refused);
            match refusal {
                Refusal::Taken => ProxyCounters::inc(&counters.announcements_taken),
                Refusal::OverQuota { .. } => ProxyCounters::inc(&counters.announcements_over_quota),
                _ => {}
            }
            let (code, message) = refusal.code_message();
            Some(ItemRefusal { code, message })
        }
    }
}
