//! The proxies (SPEC §4): `proxy run public` (engine data plane + JSON-RPC control plane) and
//! `proxy run private` (dials out to the public proxy per incoming TLS connection).
//!
//! - [`announcements`]: sans-IO announcement tables (public and private), time injected:
//!   owner-only changes, per-operator quotas, expiry rules; persisted by `store` (public) and
//!   `private_store` through `journal` (one bounded read at open, compaction).
//! - [`request_connection`]: `requestConnection` (P2P pairs, one single-use token per side; tells
//!   the target with `_connectionRequest`).
//! - [`sni`]: the engine's SNI resolver and the `incomingConnection` notifier.
//! - [`public`]: the public proxy's methods and `run_public`.
//! - [`private`]: the private proxy's methods and `run_private`, with [`forward`] and
//!   [`terminate`] for the two internal-endpoint modes.

// The private JSON-RPC call future nests (checked_call, dispatch, the pairing dial, the
// terminator) just past rustc's default query depth of 128 when its layout is computed.
#![recursion_limit = "256"]

pub mod access_log;
mod announcements;
pub mod caller;
mod control;
pub mod control_service;
pub mod engine_metrics;
mod error;
pub mod forward;
pub mod hyper_link;
mod journal;
pub mod memory;
pub mod metrics;
pub mod pins;
pub mod private;
mod private_methods;
mod private_store;
pub mod public;
mod public_methods;
pub mod quota;
pub mod reload;
pub mod request_connection;
pub mod settings;
pub mod sni;
pub mod stats;
mod store;
pub mod terminate;
pub mod upgrade;

use std::time::Duration;

pub use error::{CallError, ProxyError};
pub use private::{PrivateProxy, bind_private, run_private};
pub use public::{PublicHandle, PublicProxy, bind_public, run_public};
pub use stats::{PrivateCountersSnapshot, ProxyCountersSnapshot, PublicProxyStats};

use tandem_net::http::RouteConfig;
use tandem_settings::listeners::JsonRpcServerSettings;

/// Largest JSON-RPC request body a proxy accepts, in bytes: an `announceConnections` of
/// [`public::MAX_CONNECTIONS_PER_CALL`] domains plus the caller's directory entry fits.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

/// Whether callers are checked: only when the JSON-RPC server asks for client certificates
/// (`tls` with `verify_client` or `request_client_cert`); the caller's certificate must then
/// carry our operator name, i.e. be our Hyper node's (see [`caller::check_peer`]).
pub(crate) fn peer_check(server: &JsonRpcServerSettings) -> bool {
    server
        .tls
        .as_ref()
        .is_some_and(|t| t.verify_client || t.request_client_cert)
}

/// The JSON-RPC route of a proxy's server block.
pub(crate) fn route_config(server: &JsonRpcServerSettings, call_timeout: Duration) -> RouteConfig {
    RouteConfig::for_server(server, MAX_BODY_BYTES, call_timeout)
}
