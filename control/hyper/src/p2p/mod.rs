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

mod dialer;
mod error;
mod handler;
mod token;

pub use dialer::{BrokerProxyDialer, REQUEST_CONNECTION};
pub use error::P2pError;
pub use handler::GrpcConnectionHandler;
pub use token::{ConnectToken, MAX_ENDPOINT_BYTES, MAX_TOKEN_CHARS, TOKEN_BYTES, dial_with_token};

/// The channel name both sides put in `channel` (the only one Tandem brokers).
pub const GRPC_SERVER_CHANNEL: &str = "grpc_server";
