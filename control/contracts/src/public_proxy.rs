//! The public proxy's JSON-RPC service (SPEC §4.2, §4.3), called only by its own Hyper node, which
//! routes `<public proxy>.<method>` from other operators and injects `_client`.
//!
//! - `requestConnection {to, channel}` → `{token, endpoint}` ([`RequestConnection`], [`Offer`])
//! - `announceConnections {connections: [{domain, expires_at}]}` → `[null | {code, message}]`
//!   ([`AnnounceConnections`], one [`ItemRefusal`] or `null` per item, in order)
//! - `getAnnouncements {}` → `[{expires_at, operator, domain}]` ([`GetAnnouncements`])

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tandem_types::{OperatorName, Token};

use crate::Call;
use crate::methods::methods;

methods! {
    /// The public proxy's methods.
    Method {
        /// Broker a P2P pair to an operator ([`RequestConnection`]).
        RequestConnection = "requestConnection",
        /// Route TLS server names to the calling operator ([`AnnounceConnections`]).
        AnnounceConnections = "announceConnections",
        /// The live announcements ([`GetAnnouncements`]).
        GetAnnouncements = "getAnnouncements",
    }
}

/// `requestConnection`: a pair between the caller (`_client`) and `to` over `channel`; the proxy
/// tells `to` with `_connectionRequest` ([`crate::hyper_node::ConnectionRequest`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RequestConnection {
    /// The operator to connect to.
    pub to: OperatorName,
    /// The channel asked for (Tandem brokers [`crate::hyper_node::GRPC_SERVER_CHANNEL`]).
    pub channel: String,
}

/// What `requestConnection` hands out: where to connect and the token to write first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Offer {
    /// The requester's single-use token (base64 in JSON).
    pub token: Token,
    /// The proxy's pairing endpoint, `HOST:PORT`.
    pub endpoint: String,
}

impl Call for RequestConnection {
    type Method = Method;
    const METHOD: Method = Method::RequestConnection;
    type Result = Offer;
}

/// `announceConnections`: route each domain to the caller until `expires_at`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AnnounceConnections {
    /// The announcements, at most the proxy's per-call bound.
    pub connections: Vec<AnnouncedConnection>,
}

/// One item of `announceConnections`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AnnouncedConnection {
    /// The TLS server name.
    pub domain: String,
    /// Until when (RFC 3339); `null` or absent = no expiry; not in the future = withdraw.
    #[serde(default, with = "crate::time")]
    pub expires_at: Option<DateTime<Utc>>,
}

/// Why one announcement item was refused: `{code, message}` (other keys ignored; an absent code
/// reads as 500 and an absent message as `refused`, so any non-null item is a refusal).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ItemRefusal {
    /// The error code (403 taken / not allowed, 429 over quota, 503 full, ...).
    #[serde(default = "refused_code")]
    pub code: i64,
    /// The message.
    #[serde(default = "refused_message")]
    pub message: String,
}

fn refused_code() -> i64 {
    500
}

fn refused_message() -> String {
    "refused".to_owned()
}

impl Call for AnnounceConnections {
    type Method = Method;
    const METHOD: Method = Method::AnnounceConnections;
    /// One entry per item, in order: `null` when accepted.
    type Result = Vec<Option<ItemRefusal>>;
}

/// `getAnnouncements` (no params).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GetAnnouncements {}

impl Call for GetAnnouncements {
    type Method = Method;
    const METHOD: Method = Method::GetAnnouncements;
    type Result = Vec<PublicAnnouncement>;
}

/// `{expires_at, operator, domain}` as the public proxy stores it and `getAnnouncements` returns
/// it. `operator` stays text: stored records predate [`OperatorName`]'s validation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PublicAnnouncement {
    /// When it stops routing; `None` = never.
    pub expires_at: Option<DateTime<Utc>>,
    /// The operator that receives the connections (the owner).
    pub operator: String,
    /// The TLS server name routed.
    pub domain: String,
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::{decode_params, decode_result, encode_params, encode_result};

    #[test]
    fn method_names_round_trip() {
        for m in Method::ALL {
            assert_eq!(m.as_str().parse::<Method>().unwrap(), *m);
        }
        assert_eq!(
            Method::NAMES,
            [
                "requestConnection",
                "announceConnections",
                "getAnnouncements"
            ]
        );
        assert!("incomingConnection".parse::<Method>().is_err());
    }

    #[test]
    fn request_connection_is_to_and_channel_and_answers_token_and_endpoint() {
        let call = RequestConnection {
            to: "hd-2".parse().unwrap(),
            channel: "grpc_server".into(),
        };
        let params = encode_params(&call).unwrap();
        assert_eq!(
            serde_json::Value::Object(params.clone()),
            json!({"to": "hd-2", "channel": "grpc_server"})
        );
        let mut with_client = params;
        with_client.insert("_client".into(), json!({"name": "hd-1"}));
        assert_eq!(
            decode_params::<RequestConnection>(with_client).unwrap(),
            call
        );
        let offer = Offer {
            token: Token::from_bytes([9; 32]),
            endpoint: "localhost:9999".into(),
        };
        let value = encode_result::<RequestConnection>(&offer).unwrap();
        assert_eq!(
            value,
            json!({"token": Token::from_bytes([9; 32]).to_base64(), "endpoint": "localhost:9999"})
        );
        assert_eq!(decode_result::<RequestConnection>(value).unwrap(), offer);
    }

    #[test]
    fn bad_params_name_the_field() {
        let params = |v: serde_json::Value| v.as_object().cloned().unwrap();
        for (p, field) in [
            (json!({"channel": "c"}), "to"),
            (json!({"to": "", "channel": "c"}), "to"),
            (json!({"to": 5, "channel": "c"}), "to"),
            (json!({"to": "hd-2"}), "channel"),
        ] {
            let err = decode_params::<RequestConnection>(params(p.clone())).unwrap_err();
            assert_eq!(err.kind(), "params");
            assert!(err.to_string().contains(field), "{p}: {err}");
        }
        let err = decode_params::<AnnounceConnections>(params(json!({"connections": [
            {"domain": "a.x"}, {"domain": "b.x", "expires_at": "tomorrow"}
        ]})))
        .unwrap_err();
        assert!(
            err.to_string().starts_with("connections[1].expires_at: "),
            "{err}"
        );
    }

    #[test]
    fn announcements_carry_expiry_as_rfc3339_or_null() {
        let call = AnnounceConnections {
            connections: vec![
                AnnouncedConnection {
                    domain: "a.x".into(),
                    expires_at: None,
                },
                AnnouncedConnection {
                    domain: "b.x".into(),
                    expires_at: Some("2030-01-02T03:04:05Z".parse().unwrap()),
                },
            ],
        };
        let params = encode_params(&call).unwrap();
        assert_eq!(
            serde_json::Value::Object(params.clone()),
            json!({"connections": [{"domain": "a.x", "expires_at": null},
                {"domain": "b.x", "expires_at": "2030-01-02T03:04:05Z"}]})
        );
        assert_eq!(decode_params::<AnnounceConnections>(params).unwrap(), call);
        let answer = json!([null, {"code": 403, "message": "taken"}]);
        assert_eq!(
            decode_result::<AnnounceConnections>(answer).unwrap(),
            vec![
                None,
                Some(ItemRefusal {
                    code: 403,
                    message: "taken".into()
                })
            ]
        );
    }
}
