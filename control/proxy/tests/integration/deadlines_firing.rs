//! Issue 8 item 6, the waits no other test shows firing:
//! - the server-side TLS handshake deadline: a client that connects and sends nothing is closed
//!   by sd's JSON-RPC port ([`ServerLimits::default`]`.serving.deadlines.handshake`, 10 s), a Hyper gRPC port
//!   and the ControlService port ([`HANDSHAKE_TIMEOUT`], 10 s). Both are constants, short enough to
//!   test at their real value;
//! - the client-side dial deadline: a dial to a blackholed address (a listener whose accept queue
//!   is full, so the SYN is dropped and the connect stays pending) by the gRPC client
//!   (`timeouts.connect`), the JSON-RPC client (its call timeout) and the ControlService client
//!   (its connect timeout);
//! - the client-side TLS handshake deadline: the same three clients against a server that accepts
//!   TCP and never answers the ClientHello;
//! - the HTTP header-read deadline: a client that sends half a request head to sd is cut at
//!   `ServerLimits::default().serving.deadlines.header` (10 s).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support::control_service;
use crate::support::faults;
use tandem_testkit::grpc;
use tandem_testkit::sd;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;
use tandem_hyper::broker::Channel;
use tandem_hyper::grpc::HANDSHAKE_TIMEOUT;
use tandem_net::http::{JsonRpcClient, ServerLimits};
use tandem_net::jsonrpc::params;

use faults::{blackhole, silent_client_closed_after, silent_server};

/// Slack allowed past a deadline before the test calls it missed: generous, so a loaded machine
/// is never called broken, and still far below what happens without the deadline (a silent
/// peer is held forever; a blackholed dial hangs for the kernel's ~2 min of SYN retries).
const SLACK: Duration = Duration::from_secs(30);
/// The client deadline the dial tests configure.
const CLIENT_DEADLINE: Duration = Duration::from_secs(1);

/// Asserts `waited` shows `deadline` firing: not before it (minus timer granularity), not long after.
fn assert_fired(what: &str, waited: Duration, deadline: Duration) {
    assert!(
        waited + Duration::from_millis(200) >= deadline && waited <= deadline + SLACK,
        "{what}: waited {waited:?} for a {deadline:?} deadline"
    );
}

// ---- server-side TLS handshake deadlines ------------------------------------------------------

#[tokio::test]
async fn sd_closes_a_client_that_never_sends_its_hello() {
    let dir = tempfile::tempdir().unwrap();
    let pki = tandem_testkit::pki::TestPki::generate(dir.path(), sd::OPS).unwrap();
    let sd = sd::start(sd::settings(&pki, sd::file_store(dir.path()), None)).await;
    let deadline = ServerLimits::default().serving.deadlines.handshake;
    let waited = silent_client_closed_after(sd.addr, deadline + SLACK).await;
    assert_fired("sd JSON-RPC port", waited, deadline);
    // The server still serves after cutting the silent client.
    sd::rpc(&pki, sd.addr, "hd-1")
        .call("getTip", params([]))
        .await
        .unwrap();
    sd.stop().await;
}

#[tokio::test]
async fn a_hyper_grpc_server_closes_a_client_that_never_sends_its_hello() {
    use grpc::*;
    let tmp = tempfile::tempdir().unwrap();
    let pki = pki(tmp.path());
    let (listener, addr) = bind().await;
    let dir = directory(vec![entry(
        &pki,
        "hd-2",
        "g",
        Some(json!({"address": addr})),
    )]);
    let server = start_server(
        &pki,
        "hd-2",
        listener,
        dir,
        Arc::new(EchoSink::default()),
        5_000,
    );
    let waited =
        silent_client_closed_after(server.handle.local_addr, HANDSHAKE_TIMEOUT + SLACK).await;
    assert_fired("Hyper gRPC port", waited, HANDSHAKE_TIMEOUT);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_control_service_closes_a_client_that_never_sends_its_hello() {
    use control_service::*;
    let dir = tempfile::tempdir().unwrap();
    let pki = pki(dir.path());
    let proxy = Proxy::start(&pki, policy(&pki)).await;
    let waited = silent_client_closed_after(proxy.control_addr, HANDSHAKE_TIMEOUT + SLACK).await;
    assert_fired("ControlService port", waited, HANDSHAKE_TIMEOUT);
    // An admin is still served.
    let admin = proxy.client_from(&pki, ADMIN).await.unwrap();
    admin.stats().await.unwrap();
    drop(admin);
    proxy.stop().await;
}

// ---- client-side dial and TLS handshake deadlines ---------------------------------------------

/// hd-1's gRPC client calling hd-2 at `addr` with a 1 s connect timeout and a 30 s call timeout:
/// returns the error and how long it took.
async fn grpc_call_to(addr: SocketAddr) -> (String, Duration) {
    use grpc::*;
    let tmp = tempfile::tempdir().unwrap();
    let pki = pki(tmp.path());
    let dir = directory(vec![
        entry(&pki, "hd-1", "g", None),
        entry(
            &pki,
            "hd-2",
            "g",
            Some(json!({"address": addr.to_string()})),
        ),
    ]);
    let settings = tandem_settings::hyper::GrpcClientSettings {
        tls: pki.tls_settings("hd-1"),
        use_proxy: true,
    };
    let timeouts = tandem_settings::hyper::Timeouts {
        call: Duration::from_secs(30),
        connect: CLIENT_DEADLINE,
    };
    let client = tandem_hyper::grpc::GrpcClient::new(&settings, "hd-1", timeouts, dir).unwrap();
    let started = Instant::now();
    let err = client
        .deliver(request("hd-2", "echo", "1", json!({})), me("hd-1"))
        .await
        .unwrap_err();
    (format!("{} {err}", err.kind()), started.elapsed())
}

/// A JSON-RPC client of `addr` with a 1 s call timeout: the error kind and the wait.
async fn jsonrpc_call_to(addr: SocketAddr) -> (String, Duration) {
    let dir = tempfile::tempdir().unwrap();
    let pki = tandem_testkit::pki::TestPki::generate(dir.path(), &["hd-1"]).unwrap();
    let tls =
        tandem_net::tls::client_config(&pki.client_tls_settings("hd-1", "sd-1"), &[]).unwrap();
    let rpc = JsonRpcClient::new(
        &format!("https://{addr}/jsonrpc"),
        Some(tls),
        Some("sd-1"),
        CLIENT_DEADLINE,
    )
    .unwrap();
    let started = Instant::now();
    let err = rpc.call("getTip", params([])).await.unwrap_err();
    (format!("{} {err}", err.kind()), started.elapsed())
}

/// `ControlClient::connect` to `addr` with a 1 s timeout: the error and the wait.
async fn control_connect_to(addr: SocketAddr) -> (String, Duration) {
    use control_service::*;
    let dir = tempfile::tempdir().unwrap();
    let pki = pki(dir.path());
    let tls =
        tandem_net::tls::client_config(&pki.client_tls_settings(ADMIN, PROXY), &[b"h2"]).unwrap();
    let started = Instant::now();
    let attempt = async {
        let client = tandem_proxy::control_service::ControlClient::connect(
            &addr.to_string(),
            tls,
            rustls_pki_types::ServerName::try_from(PROXY).unwrap(),
            CLIENT_DEADLINE,
        )
        .await?;
        client.stats().await
    };
    let err = tokio::time::timeout(CLIENT_DEADLINE + SLACK, attempt)
        .await
        .expect("the control client gave up within its deadline")
        .unwrap_err();
    (format!("{} {err}", err.kind()), started.elapsed())
}

#[tokio::test]
async fn a_grpc_dial_to_a_blackholed_address_fails_at_the_connect_timeout() {
    let hole = blackhole().await;
    let (err, waited) = grpc_call_to(hole.addr).await;
    assert_fired(&format!("gRPC dial ({err})"), waited, CLIENT_DEADLINE);
    assert!(err.contains("longer than 1.0s"), "{err}");
}

#[tokio::test]
async fn a_jsonrpc_dial_to_a_blackholed_address_fails_at_the_call_timeout() {
    let hole = blackhole().await;
    let (err, waited) = jsonrpc_call_to(hole.addr).await;
    assert_fired(&format!("JSON-RPC dial ({err})"), waited, CLIENT_DEADLINE);
    assert!(err.starts_with("timeout "), "{err}");
}

#[tokio::test]
async fn a_control_client_dial_to_a_blackholed_address_fails_at_its_timeout() {
    let hole = blackhole().await;
    let (err, waited) = control_connect_to(hole.addr).await;
    assert_fired(
        &format!("ControlService dial ({err})"),
        waited,
        CLIENT_DEADLINE,
    );
}

#[tokio::test]
async fn a_grpc_tls_handshake_with_a_silent_server_fails_at_the_connect_timeout() {
    let (addr, server) = silent_server().await;
    let (err, waited) = grpc_call_to(addr).await;
    assert_fired(&format!("gRPC handshake ({err})"), waited, CLIENT_DEADLINE);
    assert!(err.contains("longer than 1.0s"), "{err}");
    server.abort();
}

#[tokio::test]
async fn a_jsonrpc_tls_handshake_with_a_silent_server_fails_at_the_call_timeout() {
    let (addr, server) = silent_server().await;
    let (err, waited) = jsonrpc_call_to(addr).await;
    assert_fired(
        &format!("JSON-RPC handshake ({err})"),
        waited,
        CLIENT_DEADLINE,
    );
    assert!(err.starts_with("timeout "), "{err}");
    server.abort();
}

#[tokio::test]
async fn a_control_client_tls_handshake_with_a_silent_server_fails_at_its_timeout() {
    let (addr, server) = silent_server().await;
    let (err, waited) = control_connect_to(addr).await;
    assert_fired(
        &format!("ControlService handshake ({err})"),
        waited,
        CLIENT_DEADLINE,
    );
    server.abort();
}

#[tokio::test]
async fn sd_closes_a_client_that_never_finishes_its_request_headers() {
    let dir = tempfile::tempdir().unwrap();
    let pki = tandem_testkit::pki::TestPki::generate(dir.path(), sd::OPS).unwrap();
    let sd = sd::start(sd::settings(&pki, sd::file_store(dir.path()), None)).await;
    let connector = tokio_rustls::TlsConnector::from(sd::raw_tls(&pki, "hd-1"));
    let tcp = tokio::net::TcpStream::connect(sd.addr).await.unwrap();
    let name = rustls_pki_types::ServerName::try_from("sd-1").unwrap();
    let mut tls = connector.connect(name, tcp).await.unwrap();
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    // Half a request head, then silence (a slow-header client).
    tls.write_all(b"POST /jsonrpc HTTP/1.1\r\nHost: sd-1\r\n")
        .await
        .unwrap();
    tls.flush().await.unwrap();
    let started = Instant::now();
    let deadline = ServerLimits::default().serving.deadlines.header;
    let mut buf = [0u8; 1024];
    let closed = tokio::time::timeout(deadline + SLACK, async {
        loop {
            match tls.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {} // a 408 before the close is fine
            }
        }
    })
    .await;
    assert!(closed.is_ok(), "still open after {:?}", deadline + SLACK);
    assert_fired("sd header read", started.elapsed(), deadline);
    sd.stop().await;
}
