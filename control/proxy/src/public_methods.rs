//! The public proxy's JSON-RPC methods (SPEC §4.2): `requestConnection`, `announceConnections`,
//! `getAnnouncements`; only our own Hyper node may call them (see `caller::check_peer`).

use std::sync::Arc;

use chrono::Utc;
use serde_json::{Map, Value, json};
use tracing::{info, warn};

use super::announcements::{Outcome, Refusal};
use super::caller::{allowed_domains, check_peer, client_info, expires_at, string};
use super::error::CallError;
use super::public::{MAX_CONNECTIONS_PER_CALL, PublicState};
use super::stats::ProxyCounters;
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
        let checked = check_peer(&peer, &state.name, state.check_callers, state.pins.as_ref());
        let result = match checked.await {
            Err(e) => Err(e),
            Ok(()) => match request.method.as_str() {
                "requestConnection" => {
                    super::broker::request_connection(state, request.params).await
                }
                "announceConnections" => announce_connections(state, request.params).await,
                "getAnnouncements" => Ok(json!(state.announcements.live(Utc::now()))),
                _ => Err(CallError::MethodNotFound),
            },
        };
        result.map_err(|e| {
            info!(method = %request.method, kind = e.kind(), error = %e, "call refused");
            e.to_error_object()
        })
    }
}

async fn announce_connections(
    state: &PublicState,
    mut params: Map<String, Value>,
) -> Result<Value, CallError> {
    let client = client_info(&mut params)?;
    let now = Utc::now();
    let Some(Value::Array(items)) = params.get("connections") else {
        return Err(CallError::InvalidParams(
            "connections: required list".into(),
        ));
    };
    if items.len() > MAX_CONNECTIONS_PER_CALL {
        return Err(CallError::InvalidParams(format!(
            "connections: at most {MAX_CONNECTIONS_PER_CALL} per call"
        )));
    }
    let rules = state.announcements.rules();
    let mut requested = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let Value::Object(item) = item else {
            return Err(CallError::InvalidParams(format!(
                "connections[{i}]: must be an object"
            )));
        };
        let domain = string(item, "domain")?;
        let expires = expires_at(item.get("expires_at"), "expires_at")?;
        let expiry = rules
            .expiry(expires, now)
            .map_err(|e| CallError::InvalidParams(format!("connections[{i}].expires_at: {e}")))?;
        requested.push((domain, expiry));
    }
    let allowed = allowed_domains(&client.entry, &state.name)?;
    let plan = state
        .announcements
        .announce(&client.name, &allowed, &requested, now)
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
    Ok(Value::Array(results))
}

/// Counts one item's result and returns its JSON (`null` or `{code, message}`).
fn count(counters: &ProxyCounters, result: &Result<Outcome, Refusal>) -> Value {
    match result {
        Ok(outcome) => {
            ProxyCounters::inc(&counters.announcements_accepted);
            match outcome {
                Outcome::Withdrawn => ProxyCounters::inc(&counters.announcements_withdrawn),
                Outcome::Renewed => ProxyCounters::inc(&counters.announcements_deferred),
                _ => {}
            }
            Value::Null
        }
        Err(refusal) => {
            ProxyCounters::inc(&counters.announcements_refused);
            match refusal {
                Refusal::Taken => ProxyCounters::inc(&counters.announcements_taken),
                Refusal::OverQuota { .. } => ProxyCounters::inc(&counters.announcements_over_quota),
                _ => {}
            }
            let (code, message) = refusal.code_message();
            json!({"code": code, "message": message})
        }
    }
}
