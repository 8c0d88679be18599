//! The gRPC transport between operators (SPEC §1, §2.6, §6.4): tonic over rustls mTLS, wire-compatible
//! with the original `hyper.proto`.
//!
//! - [`GrpcServer::start`] serves `Hyper.Call` and `Hyper.ServerCall` on a listener plus sockets
//!   injected through an [`InjectHandle`]; every connection's peer certificate is mapped to operator
//!   names through the directory before tonic sees it. Reverse streams are offered to the broker as the
//!   [`ReverseChannel`] (`grpc_server`), multiplexed by request id.
//! - [`GrpcClient`] is the `grpc_client` channel: one reused tonic channel per node of a peer (a
//!   peer with several `grpc_server` channels is served by the node [`nodes`] picks, with fail-over),
//!   a per-call deadline, bounded calls per node, proxied peers through a [`ProxyDialer`], and the client side of reverse
//!   streams ([`GrpcClient::start_reverse_streams`]).
//!
//! Errors crossing to gRPC are mapped in [`convert`] only.

mod client;
mod client_nodes;
pub(crate) mod connector;
pub mod convert;
mod incoming;
pub mod nodes;
mod peer_identity;
mod peer_server;
mod reverse;
mod reverse_client;
mod server;
mod tasks;

use std::time::Duration;

pub use client::{GrpcClient, MAX_CALLS_PER_PEER, MAX_PEERS, ProxyDialer};
pub use client_nodes::{MAX_NODE_ATTEMPTS, MAX_TRANSPARENT_RETRIES};
pub use incoming::{INJECT_TIMEOUT, InjectError, InjectHandle, MAX_INJECTED_CONNECTIONS};
pub use peer_identity::PeerIdentity;
pub use peer_server::{GrpcServerEntry, MAX_NODES, reverse_targets};
pub use reverse::{MAX_PENDING_PER_STREAM, ReverseChannel};
pub use reverse_client::REVERSE_REFRESH;
pub use server::{GrpcServer, GrpcServerHandle};
pub use tandem_proto::MAX_MESSAGE_BYTES;

use tandem_net::tls::TlsError;

/// Time allowed for a TLS handshake on an accepted or injected connection.
pub const HANDSHAKE_TIMEOUT: Duration = tandem_serving::DEFAULT_HANDSHAKE_TIMEOUT;
pub(crate) use tandem_net::grpc::ALPN_H2;
pub use tandem_net::grpc::SHUTDOWN_GRACE;

/// Why the gRPC transport could not start.
#[derive(Debug, thiserror::Error)]
pub enum GrpcError {
    /// The TLS settings are unusable.
    #[error("gRPC TLS: {0}")]
    Tls(#[from] TlsError),
    /// The listener's address could not be read.
    #[error("gRPC listener: {0}")]
    Listener(std::io::Error),
}

impl GrpcError {
    /// A stable label for logs and metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Tls(_) => "tls",
            Self::Listener(_) => "listener",
        }
    }
}
