//! The target side (SPEC §4.5): [`GrpcConnectionHandler`] answers `_connectionRequest` for the
//! `grpc_server` channel by dialing the pairing endpoint and handing the socket to the gRPC server.
//! Only an endpoint the asking proxy operator lists in its directory entry is dialed
//! (`directory::endpoints`); anything else is refused, counted, and nothing is dialed.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Map, Value};
use tracing::{Instrument, debug, debug_span, info};

use super::endpoint::endpoint;
use super::{GRPC_SERVER_CHANNEL, P2pError};
use crate::broker::ConnectionRequestHandler;
use crate::broker::internal::internal;
use crate::broker::types::{
    Address, BoxFuture, ClientInfo, DeliveryError, HyperRequest, HyperResponse,
};
use crate::grpc::InjectHandle;
use tandem_contracts::decode_params;
use tandem_contracts::hyper_node::{ChannelOf, ConnectionRequest, Requester};
use tandem_net::metrics::Refusals;
use tandem_net::pairing::join_pair;

/// Answers `_connectionRequest {channel: "grpc_server", endpoint, token, client}` from a proxy
/// operator: when its directory entry lists `endpoint`, dial it (within the connect deadline),
/// write the token, inject the socket into the local gRPC server, which runs the mTLS server
/// handshake on it as on any accepted connection. Other channels are left to the next handler.
#[derive(Debug)]
pub struct GrpcConnectionHandler {
    inject: InjectHandle,
    /// Deadline of dialing the endpoint and writing the token (settings `timeouts.connect`).
    connect_timeout: Duration,
    /// Refused endpoints, by reason (`foreign_endpoint`).
    refused: Refusals,
}

impl GrpcConnectionHandler {
    /// A handler injecting into `inject`, dialing within `connect_timeout`, counting refused
    /// endpoints in `refused`.
    pub fn new(inject: InjectHandle, connect_timeout: Duration, refused: Refusals) -> Arc<Self> {
        Arc::new(Self {
            inject,
            connect_timeout,
            refused,
        })
    }

    async fn connect(
        &self,
        request: ConnectionRequest<Requester>,
        caller: &ClientInfo,
    ) -> Result<(), P2pError> {
        if let Err(refusal) = P2pError::check_owner(&caller.entry, &request.endpoint) {
            self.refused.count(refusal.kind());
            info!(proxy = %caller.name, endpoint = %request.endpoint, "_connectionRequest for an endpoint the proxy does not own refused");
            return Err(refusal);
        }
        let stream = join_pair(&request.endpoint, &request.token, self.connect_timeout).await?;
        self.inject.inject(stream).await?;
        // The requester as the proxy names it (informational: the proxy is the authenticated caller).
        let requester = request.client.as_ref().map(|c| c.name.as_str());
        debug!(requester, "brokered connection handed to the gRPC server");
        Ok(())
    }
}

/// `Ok(None)` when the request is for another channel (whatever its other params).
fn parse(params: &Map<String, Value>) -> Result<Option<ConnectionRequest<Requester>>, P2pError> {
    if decode_params::<ChannelOf>(params.clone())?.channel != GRPC_SERVER_CHANNEL {
        return Ok(None);
    }
    let request: ConnectionRequest<Requester> = decode_params(params.clone())?;
    endpoint(&request.endpoint)?;
    Ok(Some(request))
}

impl ConnectionRequestHandler for GrpcConnectionHandler {
    fn handle_connection_request<'a>(
        &'a self,
        address: &'a Address,
        request: &'a HyperRequest,
        caller: &'a ClientInfo,
    ) -> BoxFuture<'a, Result<Option<HyperResponse>, DeliveryError>> {
        let span = debug_span!("connection_request", id = %address.id, proxy = %caller.name);
        Box::pin(
            async move {
                let outcome = match parse(&request.params) {
                    Ok(None) => return Ok(None),
                    Ok(Some(parsed)) => self.connect(parsed, caller).await,
                    Err(e) => Err(e),
                };
                match outcome {
                    // The result is `{}` (`tandem_contracts::Empty`).
                    Ok(()) => Ok(Some(HyperResponse::result(address.id.clone(), Map::new()))),
                    Err(e) => {
                        debug!(kind = e.kind(), error = %e, "connection request failed");
                        Err(internal(e.to_string()))
                    }
                }
            }
            .instrument(span),
        )
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn params(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap()
    }

    #[test]
    fn other_channels_are_not_ours_and_bad_fields_are_named() {
        let token = tandem_types::Token::from_bytes([3; 32]).to_base64();
        assert!(
            parse(&params(json!({"channel": "quic"})))
                .unwrap()
                .is_none()
        );
        let good = params(json!({"channel": "grpc_server", "endpoint": "h:1",
            "token": token, "client": {"name": "hd-1"}}));
        let ok = parse(&good).unwrap().unwrap();
        assert_eq!(
            (ok.endpoint.as_str(), ok.client.unwrap().name.as_str()),
            ("h:1", "hd-1")
        );
        for (p, field) in [
            (json!({}), "channel"),
            (
                json!({"channel": "grpc_server", "token": token}),
                "endpoint",
            ),
            (
                json!({"channel": "grpc_server", "endpoint": "h:1"}),
                "token",
            ),
            (
                json!({"channel": "grpc_server", "endpoint": "h:1", "token": "AAAA"}),
                "token",
            ),
            (
                json!({"channel": "grpc_server", "endpoint": "nohost", "token": token}),
                "endpoint",
            ),
        ] {
            match parse(&params(p.clone())) {
                Err(e) => {
                    assert_eq!(e.kind(), "invalid", "{p}: {e}");
                    assert!(e.to_string().contains(field), "{p}: {e}");
                }
                Ok(_) => panic!("{p}: accepted"),
            }
        }
    }
}
