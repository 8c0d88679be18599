//! The private proxy's JSON-RPC methods (SPEC §4.7): `announceConnection`,
//! `getAnnouncements` and `incomingConnection`, and the connection task each incoming
//! connection runs (join the pair, then ForwardTLS or TerminateTLS).

use std::net::SocketAddr;
use std::sync::Arc;

use chrono::Utc;
use serde_json::{Map, Value};
use tokio::sync::OwnedSemaphorePermit;
use tracing::{Instrument, debug, info, info_span};

use super::announcements::{Outcome, PrivateAnnouncement, domain_allowed};
use super::caller::{
    ClientInfo, allowed_domains, called, check_endpoint, checked_call, proxy_settings_value,
};
use super::error::CallError;
use super::forward::{forward, proxy_v2_header};
use super::private::{PrivateState, announce_to, lock};
use tandem_contracts::private_proxy::{
    Acknowledged, AnnounceConnection, GetAnnouncements, IncomingConnection, Method,
};
use tandem_contracts::{OkText, Token, decode_params, encode_result};
use tandem_net::http::{Methods, PeerInfo};
use tandem_net::jsonrpc::{ErrorObject, Request};
use tandem_net::pairing::join_pair;

pub(super) struct PrivateMethods {
    pub(super) state: Arc<PrivateState>,
}

impl Methods for PrivateMethods {
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
    state: &Arc<PrivateState>,
    method: &str,
    params: Map<String, Value>,
) -> Result<Value, CallError> {
    let method = method
        .parse::<Method>()
        .map_err(|_| CallError::MethodNotFound)?;
    match method {
        Method::IncomingConnection => {
            let (client, call) = called::<IncomingConnection>(params)?;
            let ack = incoming_connection(state, client, call)?;
            Ok(encode_result::<IncomingConnection>(&ack)?)
        }
        Method::AnnounceConnection => {
            let (client, call) = called::<AnnounceConnection>(params)?;
            let ok = announce_connection(state, client, call).await?;
            Ok(encode_result::<AnnounceConnection>(&ok)?)
        }
        Method::GetAnnouncements => {
            decode_params::<GetAnnouncements>(params)?;
            let live = state.announcements.live(Utc::now());
            Ok(encode_result::<GetAnnouncements>(&live)?)
        }
    }
}

async fn announce_connection(
    state: &PrivateState,
    client: ClientInfo,
    call: AnnounceConnection,
) -> Result<OkText, CallError> {
    let AnnounceConnection {
        proxy,
        domain,
        expires_at: expires,
    } = call;
    let proxy = proxy.into_string();
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
        .announce(client.name.as_str(), &proxy, &domain, expiry, now)
        .await?;
    // The public proxy learns of every live announcement (changed or not, as before) and of a
    // withdrawal; a withdrawal of nothing we hold goes nowhere (we cannot vouch for its owner).
    if outcome != Outcome::NothingToWithdraw {
        let announcement = PrivateAnnouncement {
            expires_at: expiry.expires_at(),
            proxy: proxy.clone(),
            domain,
            operator: Some(client.name.into_string()),
        };
        announce_to(state, &proxy, &[announcement]).await?;
    }
    Ok(OkText)
}

fn incoming_connection(
    state: &Arc<PrivateState>,
    client: ClientInfo,
    call: IncomingConnection,
) -> Result<Acknowledged, CallError> {
    let IncomingConnection {
        domain,
        token,
        endpoint,
        source,
    } = call;
    if !state
        .announcements
        .matches(client.name.as_str(), &domain, Utc::now())
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
    let span = info_span!("incoming", %domain, public_proxy = %client.name, client = ?source);
    let task = connection(state.clone(), endpoint, token, source, permit).instrument(span);
    let mut connections = lock(&state.connections);
    while connections.try_join_next().is_some() {}
    connections.spawn(task);
    Ok(Acknowledged::ok())
}

async fn connection(
    state: Arc<PrivateState>,
    endpoint: String,
    token: Token,
    source: Option<SocketAddr>,
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
    let header = settings
        .internal_endpoint
        .send_proxy_v2
        .then(|| proxy_v2_header(source, paired.peer_addr().ok()));
    let outcome = match &state.terminator {
        None => forward(
            paired,
            &settings.internal_endpoint.address,
            header,
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
