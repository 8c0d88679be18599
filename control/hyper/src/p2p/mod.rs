//! Both ends of a brokered P2P connection (SPEC §4.3–4.6, issue 6): an operator whose `grpc_server`
//! entry names a `proxy` is reached through that proxy's pairing endpoint.
//!
//! - [`BrokerProxyDialer`] (requesting side) asks `<proxy>.requestConnection` through the local broker,
//!   dials the endpoint it is given and writes the token; the `grpc_client` then runs TLS with the
//!   target's name over that socket and **keeps the channel** for later calls.
//! - [`GrpcConnectionHandler`] (target side) answers `_connectionRequest` for the `grpc_server`
//!   channel: dials the endpoint, writes the token and injects the socket into the local gRPC server.
//!
//! Neither side sets a lifetime on the proxied connection: it lives as long as gRPC uses it (keepalive
//! and the engine's idle timeout end it), not the original's 5 seconds (SPEC §4.9.1).

//!
//! The params and results of both calls are `tandem_contracts` types
//! ([`public_proxy::RequestConnection`](tandem_contracts::public_proxy::RequestConnection),
//! [`hyper_node::ConnectionRequest`](tandem_contracts::hyper_node::ConnectionRequest)); the token
//! is `tandem_types::Token`, written by `tandem_net::pairing::join_pair` (one deadline for the
//! whole join).

mod dialer;
mod endpoint;
mod error;
mod handler;

pub use dialer::BrokerProxyDialer;
pub use endpoint::MAX_ENDPOINT_BYTES;
pub use error::P2pError;
pub use handler::GrpcConnectionHandler;
pub use tandem_contracts::hyper_node::GRPC_SERVER_CHANNEL;
