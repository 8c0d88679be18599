//! HTTP plumbing shared by every JSON-RPC server and client: a TLS-capable server for axum
//! routers, the JSON-RPC route (body bound, rate limit, CORS) and an HTTPS JSON-RPC client.

mod client;
mod connector;
mod cors;
pub mod forward;
mod jsonrpc_route;
mod rate_limit;
mod server;

/// ALPN protocols the JSON-RPC servers offer.
pub const HTTP_ALPN: &[&[u8]] = &[b"h2", b"http/1.1"];

pub use client::{ClientError, JsonRpcClient, MAX_RESPONSE_BYTES};

pub use connector::{ConnectorError, connector_from_config, https_connector};
pub use cors::Cors;
pub use forward::{Outbound, TunnelError};
pub use jsonrpc_route::{Methods, RouteConfig, jsonrpc_router, jsonrpc_router_observed};
pub use rate_limit::{MAX_TRACKED_CLIENTS, RateLimit, RateLimiter};
pub use server::{DEFAULT_GRACE, PeerInfo, ServerLimits, serve, server_tls};
