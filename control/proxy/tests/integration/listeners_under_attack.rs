//! Each program's listeners under attack, through the real servers: sd's JSON-RPC port, the Hyper
//! gateway, a Hyper gRPC port (with brokered sockets injected while its public port is flooded)
//! and the proxy's ControlService. Every attack runs from 127.0.0.x source addresses while a
//! legitimate client is served. Caps are set small through each listener's `serving:` settings so
//! that the attacks stay cheap on a 2-core machine.
#![allow(clippy::unwrap_used)]

use crate::support::control_service as cs;
use tandem_testkit::grpc;
use tandem_testkit::hostile::*;
use tandem_testkit::hyper_node;
use tandem_testkit::sd;

use std::num::{NonZeroU32, NonZeroUsize};
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use tandem_hyper::hyper_server::Listeners;
use tandem_net::http::JsonRpcClient;
use tandem_serving::{Admission, ServingConfig, ServingMetrics};
use tandem_testkit::pki::TestPki;

/// 64 slots, 16 per source, no accept-rate limit (the floods here are about holding slots).
fn small() -> ServingConfig {
    let mut c = ServingConfig::default();
    c.admission.max_connections = NonZeroUsize::new(64).unwrap();
    c.admission.per_source_connections = NonZeroU32::new(16).unwrap();
    c.admission.per_source_rate = None;
    c
}

#[tokio::test]
async fn sd_answers_while_silent_connections_flood_it_from_one_and_from_many_addresses() {
    let dir = tempfile::tempdir().unwrap();
    let pki = TestPki::generate(dir.path(), sd::OPS).unwrap();
    let mut settings = sd::settings(&pki, sd::file_store(dir.path()), None);
    settings.jsonrpc_server.serving = small();
    let sd = sd::start(settings).await;
    let _one = silent_flood(src(2), sd.addr, 200).await;
    let mut many = Vec::new();
    for last in 10..50 {
        many.push(silent_flood(src(last), sd.addr, 5).await);
    }
    let tip = sd::rpc(&pki, sd.addr, "hd-1")
        .call("getTip", serde_json::Map::new())
        .await;
    assert!(tip.is_ok(), "{tip:?}");
    sd.stop().await;
}

#[tokio::test]
async fn the_gateway_answers_while_idle_tls_connections_hold_it_from_one_and_many_addresses() {
    let tmp = tempfile::tempdir().unwrap();
    let pki = TestPki::generate(tmp.path(), &["hd-2"]).unwrap();
    let server = hyper_node::Server::start(
        hyper_node::gateway_settings(tmp.path(), Some(pki.tls_settings("hd-2")), None, small()),
        Listeners {
            grpc: None,
            jsonrpc: Some(hyper_node::listener().await.into()),
        },
    );
    let addr = server.jsonrpc.unwrap();
    let client_tls =
        tandem_net::tls::client_config(&pki.client_tls_settings("hd-2", "hd-2"), &[b"http/1.1"])
            .unwrap();
    // One address holds more idle TLS connections than the whole listener has slots...
    let _one = idle_tls_flood(src(2), addr, &client_tls, "hd-2", 100).await;
    // ...and 20 addresses hold 5 each (100 more than fit).
    let mut many = Vec::new();
    for last in 10..30 {
        many.push(idle_tls_flood(src(last), addr, &client_tls, "hd-2", 5).await);
    }
    let url = format!("https://{addr}/jsonrpc");
    let client = JsonRpcClient::new(&url, Some(client_tls), Some("hd-2"), COMPLETES).unwrap();
    let pong: Value = client
        .call("hd-2._ping", serde_json::Map::new())
        .await
        .expect("the gateway answers during the flood");
    assert!(
        pong.get("timestamp").is_some() || pong.is_object(),
        "{pong}"
    );
    server.stop().await;
}

#[tokio::test]
async fn a_grpc_port_flooded_with_silent_sockets_still_serves_calls_and_brokered_sockets() {
    use grpc::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use tandem_hyper::broker::types::Channel;
    let tmp = tempfile::tempdir().unwrap();
    let pki = pki(tmp.path());
    let (listener, public) = bind().await;
    // Brokered path: the directory points hd-2 at a listener of ours that injects what it accepts
    // (as `_connectionRequest` does with the proxy's socket).
    let (brokered, brokered_addr) = bind().await;
    let dir = directory(vec![
        entry(&pki, "hd-1", "g", None),
        entry(&pki, "hd-2", "g", Some(json!({"address": brokered_addr}))),
        entry(&pki, "hd-3", "g", Some(json!({"address": public}))),
    ]);
    let mut settings = server_settings(&pki, "hd-2");
    settings.serving = small();
    let server = start_server_with(
        settings,
        "hd-2",
        listener,
        dir.clone(),
        Arc::new(EchoSink::default()),
        30_000,
    );
    let injected = Arc::new(AtomicUsize::new(0));
    let (inject, count) = (server.handle.inject.clone(), injected.clone());
    let injector = tokio::spawn(async move {
        while let Ok((stream, _)) = brokered.accept().await {
            count.fetch_add(1, Ordering::SeqCst);
            inject.inject(stream).await.expect("injected");
        }
    });
    // 400 silent sockets on the public port from one address, and 40 addresses x 5.
    let public_addr = server.handle.local_addr;
    let _one = silent_flood(src(2), public_addr, 400).await;
    let mut many = Vec::new();
    for last in 10..50 {
        many.push(silent_flood(src(last), public_addr, 5).await);
    }
    // A brokered call (injected socket) and a direct call on the flooded port are both served.
    let client = client_as(&pki, "hd-1", "hd-1", dir.clone(), 30_000);
    let response = client
        .deliver(request("hd-2", "echo", "1", json!({})), me("hd-1"))
        .await
        .expect("brokered call served during the flood");
    assert!(response.error.is_none(), "{:?}", response.error);
    assert_eq!(injected.load(Ordering::SeqCst), 1);
    let mut raw = raw_client(&pki.tls_settings("hd-1"), &public_addr.to_string(), "hd-2").await;
    let direct = raw
        .call(tandem_proto::hyper::Request {
            method: "hd-2.echo".into(),
            id: "hd-2.echo(2)".into(),
            client_name: String::new(),
            params: None,
        })
        .await;
    assert!(direct.is_ok(), "{direct:?}");
    injector.abort();
}

#[tokio::test]
async fn the_control_service_answers_while_idle_tls_and_non_admin_connections_hold_it() {
    let tmp = tempfile::tempdir().unwrap();
    let pki = cs::pki(tmp.path());
    let metrics = ServingMetrics::default();
    let mut config = small();
    config.deadlines.first_request = Duration::from_millis(500);
    let admission = Admission::new("control", config, metrics.clone());
    let proxy = cs::Proxy::start_with(&pki, cs::policy(&pki), admission).await;
    let addr = proxy.control_addr;
    let other =
        tandem_net::tls::client_config(&pki.client_tls_settings(cs::OTHER, cs::PROXY), &[b"h2"])
            .unwrap();
    // 200 connections from 20 addresses with a valid certificate that is not an admin's; they
    // complete their handshakes and then hold on.
    let mut held = Vec::new();
    for last in 10..30 {
        held.extend(idle_tls_flood(src(last), addr, &other, cs::PROXY, 10).await);
    }
    let admin = proxy.client_from(&pki, cs::ADMIN).await.unwrap();
    let stats = admin.stats().await;
    assert!(stats.is_ok(), "{stats:?}");
    // None of the non-admin connections is ever established: each is cut at the first-request
    // deadline (or evicted), so none of them holds a slot for long.
    for conn in held.iter_mut() {
        closed_by_server(conn)
            .await
            .expect("a non-admin connection stayed open");
    }
    assert!(
        metrics.get("control", "first_request_timeout")
            + metrics.get("control", "evicted_full")
            + metrics.get("control", "evicted_source_full")
            >= 200
    );
    // The admin's connection was established and still answers.
    assert!(admin.stats().await.is_ok());
    proxy.stop().await;
}

#[tokio::test]
async fn a_non_admin_control_connection_is_cut_at_the_first_request_deadline() {
    let tmp = tempfile::tempdir().unwrap();
    let pki = cs::pki(tmp.path());
    let metrics = ServingMetrics::default();
    let mut config = ServingConfig::default();
    config.deadlines.first_request = Duration::from_secs(2);
    let admission = Admission::new("control", config, metrics.clone());
    let proxy = cs::Proxy::start_with(&pki, cs::policy(&pki), admission).await;
    let other =
        tandem_net::tls::client_config(&pki.client_tls_settings(cs::OTHER, cs::PROXY), &[b"h2"])
            .unwrap();
    let mut held = idle_tls_flood(src(2), proxy.control_addr, &other, cs::PROXY, 5).await;
    assert_eq!(held.len(), 5);
    for conn in held.iter_mut() {
        closed_by_server(conn)
            .await
            .expect("a non-admin connection stayed open");
    }
    assert_eq!(metrics.get("control", "first_request_timeout"), 5);
    proxy.stop().await;
}
