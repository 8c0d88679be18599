//! Integration tests of tandem-net: TLS handshakes from `TlsSettings`, and the HTTP/JSON-RPC server's serving kit (admission, per-source limits, phase deadlines) against hostile clients.
//!
//! One test binary (`integration`) with a module per suite; nextest still runs every test in its own
//! process, so the suites keep their isolation (ports, env, signals).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod http_deadlines;
mod http_serving_kit;
mod http_shutdown;
mod support;
mod tls_handshake;
