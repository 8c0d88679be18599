//! What every Tandem service is built from: rustls configuration, the HTTP/JSON-RPC server and
//! client, JSON-RPC envelopes, Prometheus metrics and their endpoint, logging, and the command-line
//! pieces the binaries share. Listeners are served through `tandem-serving`.

pub mod cli;
pub mod grpc;
pub mod http;
pub mod jsonrpc;
pub mod metrics;
pub mod pairing;
pub mod reload;
pub mod telemetry;
pub mod tls;
