//! The methods a Hyper node answers itself when a call is addressed to it (SPEC §2.5), through the
//! broker: `<operator>._ping`, `<operator>._directory`, `<operator>._connectionRequest`.
//!
//! - `_ping {...}` → `{version, timestamp, params, serverInfo}` ([`Ping`], [`Pong`])
//! - `_directory {group?, operator?, channels?}` → `{entries}` ([`Directory`], [`DirectoryAnswer`])
//! - `_connectionRequest {endpoint, client, channel, token}` → `{}` ([`ConnectionRequest`]): from
//!   a public proxy: dial `endpoint`, write `token`, serve `channel` on the socket.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use tandem_directory::entry::DirectoryEntry;
use tandem_directory::permissions::DirectoryQuery;
use tandem_types::{OperatorName, Token};

use crate::methods::methods;
use crate::{Call, ClientInfo, Empty};

methods! {
    /// The methods every Hyper node answers itself.
    Method {
        /// Liveness and version ([`Ping`]).
        Ping = "_ping",
        /// The node's view of the directory ([`Directory`]).
        Directory = "_directory",
        /// A proxy hands this node a pairing token ([`ConnectionRequest`]).
        ConnectionRequest = "_connectionRequest",
    }
}

/// The channel both sides of a brokered connection put in `channel` (the only one Tandem brokers).
pub const GRPC_SERVER_CHANNEL: &str = "grpc_server";

/// `_ping`: any params; they are echoed back (including the injected `_client`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Ping(pub Map<String, Value>);

/// The answer to `_ping`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Pong {
    /// The node's version.
    pub version: String,
    /// The node's clock, RFC 3339 with nanoseconds.
    pub timestamp: String,
    /// The params as received.
    pub params: Map<String, Value>,
    /// The node's own directory entry.
    #[serde(rename = "serverInfo")]
    pub server_info: DirectoryEntry,
}

impl Call for Ping {
    type Method = Method;
    const METHOD: Method = Method::Ping;
    type Result = Pong;
}

/// `_directory`: the entries matching every given filter (`null` or absent = any); unknown keys
/// (such as `_client`) are ignored, as the original's form does.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Directory {
    /// A group the entry must be in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    /// The operator's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operator: Option<String>,
    /// Channel types, any of which the entry must have.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channels: Option<Vec<String>>,
}

impl Directory {
    /// Every entry.
    pub fn all() -> Self {
        Self::default()
    }

    /// The entry of `operator`, if any.
    pub fn operator(operator: &str) -> Self {
        Self {
            operator: Some(operator.to_owned()),
            ..Self::default()
        }
    }

    /// The query the directory's filter takes (`""` = any).
    pub fn into_query(self) -> DirectoryQuery {
        DirectoryQuery {
            group: self.group.unwrap_or_default(),
            operator: self.operator.unwrap_or_default(),
            channels: self.channels,
        }
    }
}

/// The answer to `_directory`, in name order.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DirectoryAnswer {
    /// The matching entries (absent = none).
    #[serde(default)]
    pub entries: Vec<DirectoryEntry>,
}

impl Call for Directory {
    type Method = Method;
    const METHOD: Method = Method::Directory;
    type Result = DirectoryAnswer;
}

/// `_connectionRequest`: the public proxy hands the target of a `requestConnection` its token.
/// `client` is the requester: the proxy sends its full [`ClientInfo`]; the target reads only its
/// name ([`Requester`]: the entry's JSON is the sender's business, and the proxy, not the
/// requester, is the authenticated caller).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConnectionRequest<C = ClientInfo> {
    /// The proxy's pairing endpoint, `HOST:PORT`.
    pub endpoint: String,
    /// The requester, informational (absent = `None`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client: Option<C>,
    /// The channel to serve on the socket ([`GRPC_SERVER_CHANNEL`]).
    pub channel: String,
    /// The target's single-use token (base64 in JSON).
    pub token: Token,
}

/// The requester as the target of a `_connectionRequest` reads it: its name (other keys ignored).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Requester {
    /// The requesting operator.
    pub name: OperatorName,
}

/// Only the `channel` of a `_connectionRequest`: a handler reads it first and leaves other
/// channels' requests, whatever their other params, to the next handler.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChannelOf {
    /// The channel.
    pub channel: String,
}

impl<C: Serialize + serde::de::DeserializeOwned> Call for ConnectionRequest<C> {
    type Method = Method;
    const METHOD: Method = Method::ConnectionRequest;
    type Result = Empty;
}

impl Call for ChannelOf {
    type Method = Method;
    const METHOD: Method = Method::ConnectionRequest;
    type Result = Empty;
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::{decode_params, encode_params, encode_result};

    fn params(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap()
    }

    #[test]
    fn the_proxy_sends_the_client_info_and_the_target_reads_its_name() {
        let client = ClientInfo {
            name: "hd-1".parse().unwrap(),
            entry: DirectoryEntry::new("hd-1"),
        };
        let sent = ConnectionRequest {
            endpoint: "h:1".into(),
            client: Some(client.clone()),
            channel: GRPC_SERVER_CHANNEL.into(),
            token: Token::from_bytes([3; 32]),
        };
        let wire = encode_params(&sent).unwrap();
        assert_eq!(wire["client"], serde_json::to_value(&client).unwrap());
        assert_eq!(wire["token"], json!(Token::from_bytes([3; 32]).to_base64()));
        let got: ConnectionRequest<Requester> = decode_params(wire).unwrap();
        assert_eq!(got.client.unwrap().name, "hd-1");
        assert_eq!(got.token, Token::from_bytes([3; 32]));
        assert_eq!(
            encode_result::<ConnectionRequest>(&Empty {}).unwrap(),
            json!({})
        );
        for answer in [json!({}), json!(null), json!("ok")] {
            assert!(crate::decode_result::<ConnectionRequest>(answer).is_ok());
        }
    }

    #[test]
    fn the_channel_is_read_alone_and_bad_fields_are_named() {
        let other = params(json!({"channel": "quic"}));
        assert_eq!(decode_params::<ChannelOf>(other).unwrap().channel, "quic");
        let token = Token::from_bytes([3; 32]).to_base64();
        for (p, field) in [
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
        ] {
            let err = decode_params::<ConnectionRequest<Requester>>(params(p.clone())).unwrap_err();
            assert!(err.to_string().contains(field), "{p}: {err}");
        }
    }

    #[test]
    fn the_directory_query_reads_optional_fields_and_refuses_wrong_types() {
        let q = decode_params::<Directory>(params(
            json!({"group": "g", "channels": ["grpc_server"], "_client": {}, "operator": null}),
        ))
        .unwrap()
        .into_query();
        assert_eq!(
            q,
            DirectoryQuery {
                group: "g".into(),
                operator: String::new(),
                channels: Some(vec!["grpc_server".into()])
            }
        );
        for bad in [
            json!({"operator": 5}),
            json!({"channels": [1]}),
            json!({"channels": "x"}),
        ] {
            assert!(
                decode_params::<Directory>(params(bad.clone())).is_err(),
                "{bad}"
            );
        }
        assert_eq!(
            Value::Object(encode_params(&Directory::operator("hd-2")).unwrap()),
            json!({"operator": "hd-2"})
        );
        assert_eq!(encode_params(&Directory::all()).unwrap(), Map::new());
    }
}
