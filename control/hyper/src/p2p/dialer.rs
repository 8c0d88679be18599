//! The requesting side (SPEC §4.4): [`BrokerProxyDialer`], the `grpc_client`'s [`ProxyDialer`].

use crate::broker::ChannelError;
use std::sync::{Arc, Weak};
use std::time::Duration;

use rand::RngCore;
use tokio::net::TcpStream;
use tracing::{Instrument, debug, debug_span, info};

use super::endpoint::endpoint;
use super::{GRPC_SERVER_CHANNEL, P2pError};
use crate::broker::MessageBroker;
use crate::broker::types::{
    Address, BoxFuture, ClientInfo, DeliveryError, HyperRequest, HyperResponse,
};
use crate::grpc::ProxyDialer;
use tandem_contracts::public_proxy::{Offer, RequestConnection};
use tandem_contracts::{Call, OperatorName, decode_result, encode_params};
use tandem_directory::entry::DirectoryEntry;
use tandem_net::metrics::Refusals;
use tandem_net::pairing::join_pair;

/// Asks the proxy for a pairing token through the local broker (so the request travels
/// hyper → proxy hyper → public proxy), then dials the endpoint — only one the proxy's directory
/// entry lists — and writes the token.
///
/// Holds the broker by `Weak`: the broker owns the `grpc_client`, which owns this dialer.
#[derive(Debug)]
pub struct BrokerProxyDialer {
    broker: Weak<MessageBroker>,
    /// Deadline of dialing the endpoint and writing the token (settings `timeouts.connect`).
    connect_timeout: Duration,
    /// Offered endpoints not dialed, by reason (`foreign_endpoint`).
    refused: Refusals,
}

impl BrokerProxyDialer {
    /// A dialer that sends its requests through `broker` and dials within `connect_timeout`,
    /// counting offered endpoints it refuses in `refused`.
    pub fn new(
        broker: &Arc<MessageBroker>,
        connect_timeout: Duration,
        refused: Refusals,
    ) -> Arc<Self> {
        Arc::new(Self {
            broker: Arc::downgrade(broker),
            connect_timeout,
            refused,
        })
    }

    async fn connect(&self, operator: &str, proxy: &str) -> Result<TcpStream, P2pError> {
        let offer = self.request_connection(operator, proxy).await?;
        self.check_offer(proxy, &offer.endpoint).await?;
        let stream = join_pair(&offer.endpoint, &offer.token, self.connect_timeout).await?;
        debug!(endpoint = %offer.endpoint, "connected to the proxy's pairing endpoint");
        Ok(stream)
    }

    /// The offered endpoint must be one the proxy's directory entry lists.
    async fn check_offer(&self, proxy: &str, endpoint: &str) -> Result<(), P2pError> {
        let broker = self.broker.upgrade().ok_or(P2pError::BrokerGone)?;
        let entries = broker
            .directory()
            .entries()
            .await
            .map_err(|source| P2pError::Delivery {
                proxy: proxy.to_owned(),
                source: source.into(),
            })?;
        let owner = entries
            .get(proxy)
            .cloned()
            .unwrap_or_else(|| DirectoryEntry::new(proxy));
        P2pError::check_owner(&owner, endpoint).inspect_err(|e| {
            self.refused.count(e.kind());
            info!(%endpoint, "the proxy offered an endpoint it does not own; not dialed");
        })
    }

    /// `<proxy>.requestConnection {to, channel: "grpc_server"}` with a fresh addressable id, from
    /// ourselves.
    async fn request_connection(&self, operator: &str, proxy: &str) -> Result<Offer, P2pError> {
        let broker = self.broker.upgrade().ok_or(P2pError::BrokerGone)?;
        let own = broker.operator().clone();
        let call = RequestConnection {
            to: OperatorName::new(operator).map_err(|e| P2pError::invalid("to", e.to_string()))?,
            channel: GRPC_SERVER_CHANNEL.to_owned(),
        };
        let method = format!("{proxy}.{}", RequestConnection::method());
        let request = HyperRequest {
            id: Address::format(&method, &random_id()),
            method,
            params: encode_params(&call)?,
            client_name: own.to_string(),
        };
        // The broker replaces the entry with the directory's own entry before routing.
        let client = ClientInfo {
            entry: DirectoryEntry::new(own.as_str()),
            name: own,
        };
        let response =
            broker
                .deliver(request, client)
                .await
                .map_err(|source| P2pError::Delivery {
                    proxy: proxy.to_owned(),
                    source,
                })?;
        offer(proxy, response)
    }
}

/// 8 random bytes as 16 hex characters (unique per node, not secret; as the original).
fn random_id() -> String {
    let mut bytes = [0u8; 8];
    rand::rng().fill_bytes(&mut bytes);
    hex::encode(bytes)
}

/// Reads the [`Offer`] `{token, endpoint}` from the proxy's answer.
fn offer(proxy: &str, response: HyperResponse) -> Result<Offer, P2pError> {
    if let Some(error) = response.error {
        return Err(P2pError::Refused {
            proxy: proxy.to_owned(),
            code: error.code,
            message: error.message,
        });
    }
    let result = serde_json::Value::Object(response.result.unwrap_or_default());
    let offer = decode_result::<RequestConnection>(result)?;
    endpoint(&offer.endpoint)?;
    Ok(offer)
}

impl ProxyDialer for BrokerProxyDialer {
    fn dial<'a>(
        &'a self,
        operator: &'a str,
        proxy: &'a str,
    ) -> BoxFuture<'a, Result<TcpStream, DeliveryError>> {
        let span = debug_span!("p2p_dial", to = %operator, %proxy);
        Box::pin(
            async move {
                self.connect(operator, proxy).await.map_err(|e| {
                    debug!(kind = e.kind(), error = %e, "brokered connection failed");
                    DeliveryError::Channel(ChannelError::Brokered {
                        kind: e.kind(),
                        detail: e.to_string(),
                    })
                })
            }
            .instrument(span),
        )
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};
    use tandem_types::Token;

    use super::*;

    fn answer(result: Value) -> HyperResponse {
        HyperResponse::result(
            "p.requestConnection(1)",
            result.as_object().cloned().unwrap(),
        )
    }

    #[test]
    fn the_offer_needs_a_32_byte_token_and_an_endpoint() {
        let token = Token::from_bytes([9; 32]).to_base64();
        let ok = offer(
            "p",
            answer(json!({"token": token, "endpoint": "localhost:9999"})),
        )
        .unwrap();
        assert_eq!(ok.endpoint, "localhost:9999");
        assert_eq!(ok.token.as_bytes(), &[9; 32]);

        let short = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, [1u8; 16]);
        for (result, field) in [
            (json!({"endpoint": "h:1"}), "token"),
            (json!({"token": token}), "endpoint"),
            (json!({"token": short, "endpoint": "h:1"}), "token"),
            (json!({"token": token, "endpoint": "nohost"}), "endpoint"),
            (json!({"token": 5, "endpoint": "h:1"}), "token"),
        ] {
            match offer("p", answer(result.clone())) {
                Err(e) => {
                    assert_eq!(e.kind(), "invalid", "{result}: {e}");
                    assert!(e.to_string().contains(field), "{result}: {e}");
                }
                Ok(_) => panic!("{result}: accepted"),
            }
        }
    }

    #[test]
    fn a_proxy_error_is_passed_on_with_its_code() {
        let err = offer("p", HyperResponse::error("x", 403, "nope"))
            .err()
            .unwrap();
        assert_eq!(err.kind(), "refused");
        assert_eq!(
            err.to_string(),
            "p refused the connection request: nope (code 403)"
        );
    }

    #[test]
    fn ids_are_16_hex_characters() {
        let id = random_id();
        assert_eq!(id.len(), 16);
        assert!(id.chars().all(|c| c.is_ascii_hexdigit()));
        let method = format!("p.{}", RequestConnection::method());
        let address = Address::parse(&Address::format(&method, &id)).unwrap();
        assert_eq!(
            (address.operator.as_str(), address.method.as_str()),
            ("p", "requestConnection")
        );
    }

    #[tokio::test]
    async fn a_stopped_broker_is_a_clear_error() {
        let dialer = BrokerProxyDialer {
            broker: Weak::new(),
            connect_timeout: Duration::from_secs(1),
            refused: Refusals::default(),
        };
        let err = dialer.dial("hd-2", "p").await.unwrap_err();
        assert_eq!(err.to_string(), "the message broker is not running");
        assert_eq!(err.kind(), "channel");
    }
}
