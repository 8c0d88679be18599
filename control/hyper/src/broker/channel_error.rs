//! [`ChannelError`]: why a channel could not carry a request (the `channel` kind of
//! [`super::types::DeliveryError`]). Each variant says what failed; the text is the one callers
//! have always seen (it reaches the calling application as the error message).

use super::pending::PendingError;

/// Why a channel failed to deliver (connect, TLS, transport, the application's answer).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ChannelError {
    /// The recipient is behind a proxy and this node does not use proxies.
    #[error("destination is only reachable via proxy but proxying is disabled")]
    ProxyDisabled,
    /// The recipient is behind `proxy` and no proxy dialer is installed.
    #[error("destination is only reachable via proxy {proxy}, and no proxy dialer is installed")]
    NoProxyDialer {
        /// The recipient's proxy operator.
        proxy: String,
    },
    /// The recipient's directory entry has no `grpc_server` channel.
    #[error("cannot deliver gRPC request: recipient does not have a gRPC server")]
    NoGrpcServer,
    /// The peer's channel closed while waiting for a call slot.
    #[error("peer channel closed")]
    PeerClosed,
    /// The peer's gRPC call failed (`what`: unavailable, deadline exceeded, refused, ...).
    #[error("gRPC call to {peer} {what}: {message}")]
    Grpc {
        /// The peer operator.
        peer: String,
        /// What happened, from the gRPC status code.
        what: &'static str,
        /// The status message.
        message: String,
    },
    /// The recipient holds no reverse stream to this node.
    #[error("client disconnected")]
    ClientDisconnected,
    /// The recipient's reverse stream has too many calls in flight.
    #[error("too many calls in flight on the reverse stream of {client}")]
    ReverseStreamFull {
        /// The recipient.
        client: String,
    },
    /// The reverse stream ended before the request was sent.
    #[error("reverse stream lost")]
    ReverseStreamLost,
    /// The reverse stream ended before the answer came.
    #[error("reverse stream lost before the answer")]
    ReverseStreamLostBeforeAnswer,
    /// The `jsonrpc_client` channel has no endpoint configured.
    #[error("the jsonrpc_client channel has no endpoint")]
    NoEndpoint,
    /// The request's method has no `operator.` prefix.
    #[error("invalid method name")]
    InvalidMethod,
    /// The asynchronous reply could not be awaited.
    #[error(transparent)]
    Pending(#[from] PendingError),
    /// The reply table went away while waiting.
    #[error("the reply table was dropped")]
    ReplyTableDropped,
    /// Calling the application's JSON-RPC server failed at `stage`.
    #[error("error calling JSON-RPC server {endpoint}: {stage}: {detail}")]
    JsonRpc {
        /// The server's URI.
        endpoint: String,
        /// encoding, request, transport, reading the answer, the answer is not JSON.
        stage: &'static str,
        /// The underlying error's text.
        detail: String,
    },
    /// The application's answer is no JSON-RPC response.
    #[error("the application's answer is not a JSON-RPC response")]
    NotJsonRpcResponse,
    /// The application's error is no JSON-RPC error object.
    #[error("the application's error is not a JSON-RPC error object")]
    BadErrorObject,
    /// An internal method of the broker failed (the original's Go error text).
    #[error("error handling internal request: {0}")]
    Internal(String),
    /// The node's bound on requests in transit is reached.
    #[error("too many requests in flight on this node ({max})")]
    TooManyInTransit {
        /// The bound.
        max: usize,
    },
    /// The caller's client info could not be encoded.
    #[error("error serializing client info: {0}")]
    ClientInfo(String),
    /// A brokered (proxied) connection could not be set up.
    #[error("{detail}")]
    Brokered {
        /// The P2P error's kind.
        kind: &'static str,
        /// Its text.
        detail: String,
    },
}
