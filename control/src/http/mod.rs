//! HTTP plumbing shared by every JSON-RPC server and client: a TLS-capable server for axum
//! routers, the JSON-RPC route (body bound, rate limit, CORS) and an HTTPS JSON-RPC client.

mod client;
mod connector;
mod cors;
mod jsonrpc_route;
mod rate_limit;
mod server;

pub use client::{ClientError, JsonRpcClient, MAX_RESPONSE_BYTES};
pub(crate) use connector::tcp_connector;
pub use connector::{ConnectorError, connector_from_config, https_connector};
pub use cors::Cors;
pub use jsonrpc_route::{Methods, RouteConfig, jsonrpc_router, jsonrpc_router_observed};
pub use rate_limit::{MAX_TRACKED_CLIENTS, RateLimit, RateLimiter};
pub use server::{DEFAULT_GRACE, PeerInfo, ServerLimits, serve};
