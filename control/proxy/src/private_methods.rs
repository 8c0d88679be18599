//! The private proxy's JSON-RPC methods (SPEC §4.7): `announceConnection`,
//! `getAnnouncements` and `incomingConnection`, and the connection task each incoming
//! connection runs (join the pair, then ForwardTLS or TerminateTLS).

use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use chrono::{DateTime, Utc};
use serde_json::{Map, Value, json};
use tokio::sync::OwnedSemaphorePermit;
use tracing::{Instrument, debug, info, info_span};

use super::announcements::{Outcome, PrivateAnnouncement, domain_allowed};
use super::caller::{
    allowed_domains, check_endpoint, check_peer, client_info, expires_at, proxy_settings_value,
    string,
};
use super::error::CallError;
use super::forward::{forward, join_pair};
use super::private::{PrivateState, announce_to, lock};
use tandem_net::http::{Methods, PeerInfo};
use tandem_net::jsonrpc::{ErrorObject, Request};

pub(super) struct PrivateMethods {
    pub(super) state: Arc<PrivateState>,
}

impl Methods for PrivateMethods {
    async fn call(&self, request: Request, peer: PeerInfo) -> Result<Value, ErrorObject> {
        let state = &self.state;
        let checked = check_peer(&peer, &state.name, state.check_callers, state.pins.as_ref());
        let result = match checked.await {
            Err(e) => Err(e),
            Ok(()) => match request.method.as_str() {
                "incomingConnection" => incoming_connection(state, request.params),
                "announceConnection" => announce_connection(state, request.params).await,
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

async fn announce_connection(
    state: &PrivateState,
    mut params: Map<String, Value>,
) -> Result<Value, CallError> {
    let client = client_info(&mut params)?;
    let proxy = string(&params, "proxy")?;
    let domain = string(&params, "domain")?;
    let expires: Option<DateTime<Utc>> = expires_at(params.get("expires_at"), "expires_at")?;
    if proxy == state.name {
        return Err(CallError::BadRequest(
            "trying to announce with private proxy name".into(),
        ));
    }
    let allowed = allowed_domains(&client.entry, &state.name)?;
    if !domain_allowed(&domain, &allowed) {
        return Err(CallError::DomainNotAllowed(proxy_settings_value(
            &client.entry,
            &state.name,
        )));
    }
    let now = Utc::now();
    let expiry = state
        .announcements
        .rules()
        .expiry(expires, now)
        .map_err(|e| CallError::InvalidParams(format!("expires_at: {e}")))?;
    let outcome = state
        .announcements
        .announce(&client.name, &proxy, &domain, expiry, now)
        .await?;
    // The public proxy learns of every live announcement (changed or not, as before) and of a
    // withdrawal; a withdrawal of nothing we hold goes nowhere (we cannot vouch for its owner).
    if outcome != Outcome::NothingToWithdraw {
        let announcement = PrivateAnnouncement {
            expires_at: expiry.expires_at(),
            proxy: proxy.clone(),
            domain,
            operator: Some(client.name),
        };
        announce_to(state, &proxy, &[announcement]).await?;
    }
    Ok(Value::String("ok".into()))
}

fn incoming_connection(
    state: &Arc<PrivateState>,
    mut params: Map<String, Value>,
) -> Result<Value, CallError> {
    let client = client_info(&mut params)?;
    let domain = string(&params, "domain")?;
    let endpoint = string(&params, "endpoint")?;
    let token: [u8; 32] = STANDARD
        .decode(string(&params, "token")?)
        .ok()
        .and_then(|t| t.try_into().ok())
        .ok_or_else(|| CallError::InvalidParams("token: base64 of exactly 32 bytes".into()))?;
    if !state
        .announcements
        .matches(&client.name, &domain, Utc::now())
    {
        return Err(CallError::NoMatchingConnection);
    }
    // Only the calling public proxy's own pairing endpoint is dialed (its directory entry,
    // injected by our Hyper node, lists it).
    if let Err(refusal) = check_endpoint(&client, &endpoint) {
        state.refused.count(refusal.kind());
        return Err(refusal);
    }
    let permit = state
        .slots
        .clone()
        .try_acquire_owned()
        .map_err(|_| CallError::Busy("too many connections"))?;
    let span = info_span!("incoming", %domain, public_proxy = %client.name);
    let task = connection(state.clone(), endpoint, token, permit).instrument(span);
    let mut connections = lock(&state.connections);
    while connections.try_join_next().is_some() {}
    connections.spawn(task);
    Ok(json!({"message": "ok"}))
}

async fn connection(
    state: Arc<PrivateState>,
    endpoint: String,
    token: [u8; 32],
    _permit: OwnedSemaphorePermit,
) {
    let settings = &state.settings;
    let paired = match join_pair(&endpoint, &token, settings.dial_timeout).await {
        Ok(s) => s,
        Err(e) => {
            info!(kind = e.kind(), error = %e, "cannot join the pair");
            return;
        }
    };
    let outcome = match &state.terminator {
        None => forward(
            paired,
            &settings.internal_endpoint.address,
            settings.dial_timeout,
            settings.internal_endpoint.idle_timeout,
        )
        .await
        .map(|_| ())
        .map_err(|e| (e.kind(), e.to_string())),
        Some(t) => t.serve(paired).await.map_err(|e| (e.kind(), e.to_string())),
    };
    match outcome {
        Ok(()) => debug!("connection done"),
        Err((kind, e)) => debug!(kind, error = %e, "connection ended with an error"),
    }
}
