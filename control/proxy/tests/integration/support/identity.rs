//! Shared pieces of the identity suites (`identity_names.rs`, `identity_endpoints.rs`): metrics
//! scraping, JSON-RPC error access and a certificate with an operator's name on another key.
#![allow(clippy::unwrap_used, dead_code)]

use std::net::SocketAddr;
use std::time::Duration;

use tandem_net::http::ClientError;
use tandem_settings::TlsSettings;
use tandem_testkit::pki::TestPki;

use tandem_testkit::metrics;

/// Upper bound of one awaited step (a hang fails instead of stalling).
pub const STEP: Duration = Duration::from_secs(20);

/// The value of the series `series` in the Prometheus text at `addr`'s `/metrics`.
pub async fn metric(addr: SocketAddr, series: &str) -> f64 {
    let (status, text) = metrics::get(addr, "/metrics").await;
    assert_eq!(status, 200);
    metrics::sample(&metrics::parse_prometheus(&text), series)
}

/// The JSON-RPC error object of a failed call.
pub fn rpc_error(e: &ClientError) -> &tandem_net::jsonrpc::ErrorObject {
    match e {
        ClientError::Rpc { error, .. } => error,
        other => panic!("expected a JSON-RPC error, got {other}"),
    }
}

/// Client TLS presenting `op`'s name from our CA on another key (`<op>-alt`, never pinned).
pub fn alt_tls(pki: &TestPki, op: &str, server: &str) -> TlsSettings {
    TlsSettings {
        certificate_file: Some(pki.alt_cert(op)),
        key_file: Some(pki.alt_key(op)),
        ..pki.client_tls_settings(op, server)
    }
}
