//! Identity at every door (issue 12), pairing endpoints: `_connectionRequest`, the requesting
//! side's dialer and the private proxy's `incomingConnection` dial only a pairing endpoint the
//! asking proxy's directory entry lists; a listener at a foreign endpoint sees no connection, the
//! refusal is counted, and the legitimate path beside it is served.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support::identity::{STEP, metric, rpc_error};
use crate::support::p2p;
use crate::support::private;
use crate::support::proxy;
use tandem_testkit::hyper_node;

use std::time::Duration;

use serde_json::json;
use tokio::io::AsyncReadExt;
use tokio::net::TcpListener;

/// How long a listener at a refused endpoint is watched. Every refusal here is decided before
/// the answer is sent and before any dial would start; a dial that did happen reaches the
/// listener's backlog within this on any machine that runs the legitimate path beside it.
const NOTHING_ARRIVES: Duration = Duration::from_millis(500);

/// Asserts that nobody connects to `listener` within [`NOTHING_ARRIVES`].
async fn assert_nothing_arrives(listener: &TcpListener) {
    let accepted = tokio::time::timeout(NOTHING_ARRIVES, listener.accept()).await;
    assert!(
        accepted.is_err(),
        "a connection arrived at the refused endpoint: {:?}",
        accepted.map(|r| r.map(|(_, from)| from))
    );
}

// ---------------------------------------------------------------------------------------------
// Pairing endpoints.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_request_for_a_foreign_endpoint_is_refused_and_nothing_is_dialed() {
    let mut mesh = p2p::Mesh::start().await;
    let metrics = hyper_node::listener().await;
    let metrics_addr = metrics.local_addr().unwrap();
    mesh.hd2.as_mut().unwrap().serve_metrics(metrics);
    let foreign = hyper_node::listener().await;
    let foreign_addr = foreign.local_addr().unwrap().to_string();

    // As the finding: the proxy's Hyper sends hd-2._connectionRequest for an address that is not
    // the proxy's pairing endpoint (an internal service, a port scan).
    let token = p2p::token_text([7; 32]);
    let (status, body) = p2p::reverse_call(
        &mesh,
        json!({"channel": "grpc_server", "endpoint": foreign_addr, "token": token}),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains(&format!(
            "endpoint {foreign_addr} is not a pairing endpoint of {}",
            p2p::PROXY
        )),
        "{message}"
    );

    // The legitimate path through the proxy's listed pairing endpoint still works.
    let (status, body) = mesh.ping(1).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["result"]["serverInfo"]["name"], "hd-2");
    assert_eq!(p2p::paired(&mesh.engine), 1);

    assert_nothing_arrives(&foreign).await;
    assert_eq!(
        metric(
            metrics_addr,
            "hyper_p2p_endpoints_refused_total{reason=\"foreign_endpoint\"}"
        )
        .await,
        1.0
    );
    mesh.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_requester_does_not_dial_an_endpoint_the_proxy_does_not_own() {
    let mut mesh = p2p::Mesh::start().await;
    let metrics = hyper_node::listener().await;
    let metrics_addr = metrics.local_addr().unwrap();
    mesh.hd1.serve_metrics(metrics);
    let foreign = hyper_node::listener().await;

    // A lying proxy answers requestConnection with an endpoint its entry does not list.
    mesh.proxy_app
        .offer(Some(foreign.local_addr().unwrap().to_string()));
    let (status, body) = mesh.ping(1).await;
    assert_eq!(status, 400, "{body}");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("is not a pairing endpoint of"),
        "{message}"
    );
    assert_nothing_arrives(&foreign).await;
    assert_eq!(
        metric(
            metrics_addr,
            "hyper_p2p_endpoints_refused_total{reason=\"foreign_endpoint\"}"
        )
        .await,
        1.0
    );

    // The same requester, offered the proxy's own endpoint, is served.
    mesh.proxy_app.offer(None);
    let (status, body) = mesh.ping(2).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["result"]["serverInfo"]["name"], "hd-2");
    mesh.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_incoming_connection_for_a_foreign_endpoint_is_refused_and_nothing_is_dialed() {
    use proxy::{PRIVATE, RunningHyper, private_settings};
    let dir = tempfile::tempdir().unwrap();
    let hyper = RunningHyper::start(PRIVATE, Vec::new()).await;
    let internal = hyper_node::listener().await;
    let settings = private_settings(dir.path(), hyper.addr, internal.local_addr().unwrap());
    let private = private::Private::start(&settings, true).await;
    private.announce().await;
    let pairing = hyper_node::listener().await;
    let pairing_addr = pairing.local_addr().unwrap().to_string();
    let foreign = hyper_node::listener().await;
    let foreign_addr = foreign.local_addr().unwrap().to_string();

    // The calling public proxy's entry lists `pairing`; it asks to dial `foreign`.
    let err = private
        .incoming_listing(&foreign_addr, [7; 32], &[&pairing_addr])
        .await
        .unwrap_err();
    let error = rpc_error(&err);
    assert_eq!(
        (error.code, error.message.as_str()),
        (403, "endpoint not allowed")
    );

    // Its own endpoint is dialed and gets the token.
    let token = [9u8; 32];
    private
        .incoming_listing(&pairing_addr, token, &[&pairing_addr])
        .await
        .unwrap();
    let (mut paired, _) = tokio::time::timeout(STEP, pairing.accept())
        .await
        .unwrap()
        .unwrap();
    let mut got = [0u8; 32];
    paired.read_exact(&mut got).await.unwrap();
    assert_eq!(got, token);

    assert_nothing_arrives(&foreign).await;
    let metrics = private.metrics.unwrap();
    assert_eq!(
        metric(
            metrics,
            "proxy_private_endpoints_refused_total{reason=\"foreign_endpoint\"}"
        )
        .await,
        1.0
    );
    drop(paired);
    private.stop().await;
    hyper.stop().await;
}
