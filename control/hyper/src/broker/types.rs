//! The types every message channel shares (SPEC §2.1): requests, responses, addresses, the caller's
//! identity, and the two seams between the broker and its channels.

use super::channel_error::ChannelError;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use tandem_directory::entry::DirectoryEntry;

/// Who made a request: the operator name and its directory entry (`_client` in params).
pub use tandem_contracts::ClientInfo;
pub use tandem_directory::source::{BoxFuture, DirectorySource, Entries, SourceError};
/// An operator's name (the caller a [`RequestSink`] routes for).
pub use tandem_types::OperatorName;

/// A request between operators (the gRPC `Request` message, as JSON).
#[derive(Debug, Clone, PartialEq)]
pub struct HyperRequest {
    /// The full method, `<operator>.<method>` (e.g. `hd-2._ping`).
    pub method: String,
    /// The params object (`_client` is injected on every hop).
    pub params: Map<String, Value>,
    /// The addressable id, `<operator>.<method>(<original id>)`: the routing key.
    pub id: String,
    /// The name the sender claims (gRPC `clientName`).
    pub client_name: String,
}

/// An error inside a [`HyperResponse`] (gRPC `Error`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HyperError {
    /// The code: 403, 404, 500, -100, JSON-RPC codes, or the application's.
    pub code: i64,
    /// The message.
    pub message: String,
    /// Optional details (an object; other values travel wrapped as `{"_": value}`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<Map<String, Value>>,
}

/// A response between operators (the gRPC `Response` message, as JSON).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct HyperResponse {
    /// Echoes the request's addressable id.
    pub id: String,
    /// The result object (other values travel wrapped as `{"_": value}`).
    pub result: Option<Map<String, Value>>,
    /// The error, if any.
    pub error: Option<HyperError>,
}

impl HyperResponse {
    /// A success.
    pub fn result(id: impl Into<String>, result: Map<String, Value>) -> Self {
        Self {
            id: id.into(),
            result: Some(result),
            error: None,
        }
    }

    /// A failure.
    pub fn error(id: impl Into<String>, code: i64, message: impl Into<String>) -> Self {
        Self {
            id: id.into(),
            result: None,
            error: Some(HyperError {
                code,
                message: message.into(),
                data: None,
            }),
        }
    }
}

/// An addressable id taken apart: `hd-2._ping(1)` → operator `hd-2`, method `_ping`, id `1`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Address {
    /// The operator the request is for.
    pub operator: String,
    /// The method at that operator.
    pub method: String,
    /// The caller's original id.
    pub id: String,
}

impl Address {
    /// Parses `^(.*)\.([^\(\.]+)\(([^\)]+)\)$` (the original's `IDAddressRegexp`, case-insensitive).
    pub fn parse(id: &str) -> Option<Address> {
        let inner = id.strip_suffix(')')?;
        // The regex is greedy: the operator is as long as it can be, so try dots from the right.
        for (dot, _) in inner.match_indices('.').rev() {
            let rest = &inner[dot + 1..];
            let Some(open) = rest.find(['(', '.']) else {
                continue;
            };
            let (method, original) = (&rest[..open], &rest[open + 1..]);
            if rest.as_bytes()[open] != b'('
                || method.is_empty()
                || original.is_empty()
                || original.contains(')')
            {
                continue;
            }
            return Some(Address {
                operator: inner[..dot].to_owned(),
                method: method.to_owned(),
                id: original.to_owned(),
            });
        }
        None
    }

    /// The addressable id of `method` (`operator.method`) for the original id `id`.
    pub fn format(method: &str, id: &str) -> String {
        format!("{method}({id})")
    }
}

/// Why a request could not be delivered (a transport or routing failure, not an application error).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum DeliveryError {
    /// No channel can reach the recipient.
    #[error("no channel can deliver this request")]
    NoChannel,
    /// The request is already in flight on this node (a delivery loop).
    #[error("request {0} is already being processed (maybe a delivery loop)")]
    Loop(String),
    /// The id is not an addressable id.
    #[error("error parsing address: invalid ID format")]
    BadAddress,
    /// An operator has no directory entry.
    #[error("no directory entry for {0}")]
    UnknownOperator(String),
    /// The directory could not be read.
    #[error("directory unavailable: {0}")]
    Directory(#[from] SourceError),
    /// The peer did not answer within the deadline.
    #[error("{peer} did not answer within {seconds:.1}s (the call deadline, `timeouts.call`)")]
    Timeout {
        /// The peer.
        peer: String,
        /// The deadline in seconds.
        seconds: f64,
    },
    /// The channel failed (connect, TLS, transport).
    #[error(transparent)]
    Channel(#[from] ChannelError),
}

impl DeliveryError {
    /// A stable label for metrics and logs.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::NoChannel => "no_channel",
            Self::Loop(_) => "loop",
            Self::BadAddress => "bad_address",
            Self::UnknownOperator(_) => "unknown_operator",
            Self::Directory(_) => "directory",
            Self::Timeout { .. } => "timeout",
            Self::Channel(_) => "channel",
        }
    }
}

/// A message channel the broker can deliver through (`grpc_client`, `grpc_server` reverse streams,
/// `jsonrpc_client`, ...).
pub trait Channel: Send + Sync + 'static {
    /// The channel type name (`grpc_client`, ...).
    fn type_name(&self) -> &'static str;
    /// Whether this channel can reach `address.operator`, whose entry is `recipient`.
    fn can_deliver_to(&self, address: &Address, recipient: &DirectoryEntry) -> bool;
    /// Delivers the request and waits for the answer (with the channel's deadline).
    fn deliver(
        &self,
        request: HyperRequest,
        client: ClientInfo,
    ) -> BoxFuture<'_, Result<HyperResponse, DeliveryError>>;
}

/// The broker as inbound channels (gRPC server, reverse streams, the JSON-RPC gateway) see it.
pub trait RequestSink: Send + Sync + 'static {
    /// Routes one request from `caller` (the authenticated last hop, whose entry the broker takes
    /// from its directory snapshot) and returns the answer.
    fn deliver_request(
        &self,
        request: HyperRequest,
        caller: OperatorName,
    ) -> BoxFuture<'_, Result<HyperResponse, DeliveryError>>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_parse_like_the_original() {
        let a = Address::parse("hd-2._ping(1)").unwrap();
        assert_eq!(
            (a.operator.as_str(), a.method.as_str(), a.id.as_str()),
            ("hd-2", "_ping", "1")
        );
        let a = Address::parse("public-proxy-1.ga.requestConnection(ab12)").unwrap();
        assert_eq!(
            (a.operator.as_str(), a.method.as_str()),
            ("public-proxy-1.ga", "requestConnection")
        );
        let a = Address::parse("a.b.c.d.e.f(acdds)").unwrap();
        assert_eq!(
            (a.operator.as_str(), a.method.as_str(), a.id.as_str()),
            ("a.b.c.d.e", "f", "acdds")
        );
        assert_eq!(Address::parse("hd-2._ping(n:1)").unwrap().id, "n:1");
        assert!(
            Address::parse("hd-2.x()").is_none(),
            "an empty original id is refused"
        );
        assert!(Address::parse("hd-2.x(a)b)").is_none());
        // As the original's regex: `(` may appear in the original id, `.` too.
        let a = Address::parse("hd-2._ping(a(b)").unwrap();
        assert_eq!((a.method.as_str(), a.id.as_str()), ("_ping", "a(b"));
        assert_eq!(Address::parse("hd-2._ping(a.b)").unwrap().id, "a.b");
        let a = Address::parse("x.m(a.n(b)").unwrap();
        assert_eq!(
            (a.operator.as_str(), a.method.as_str(), a.id.as_str()),
            ("x.m(a", "n", "b"),
            "greedy, like the regex"
        );
        assert!(Address::parse("nodot(1)").is_none());
        assert!(Address::parse("hd-2._ping").is_none());
    }
}
