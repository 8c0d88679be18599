//! Issue 8 item 5, the expired-certificate case: a certificate with the right CA chain and the
//! right operator name, whose validity has ended, is refused by every mTLS server of the control
//! plane (sd's JSON-RPC port, a Hyper gRPC server even when the directory pins that very leaf,
//! and the proxy's ControlService even for an allow-listed admin). Each test first shows that the
//! same set-up accepts the operator's valid certificate, so only the expiry can cause the refusal.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support::control_service;
use crate::support::faults;
use tandem_testkit::grpc;
use tandem_testkit::sd;

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;
use tandem_directory::entry::OperatorCertificate;
use tandem_hyper::broker::Channel;
use tandem_net::http::JsonRpcClient;
use tandem_net::jsonrpc::params;

use faults::expired_cert;

/// Upper bound for one refused attempt (a hang fails the test instead of stalling).
const STEP: Duration = Duration::from_secs(20);

#[tokio::test]
async fn sd_refuses_an_expired_client_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let pki = tandem_testkit::pki::TestPki::generate(dir.path(), sd::OPS).unwrap();
    let sd = sd::start(sd::settings(&pki, sd::file_store(dir.path()), None)).await;
    // The valid certificate of hd-1 is served.
    sd::rpc(&pki, sd.addr, "hd-1")
        .call("getTip", params([]))
        .await
        .unwrap();

    let expired = expired_cert(&pki, "hd-1");
    let mut settings = expired.tls_settings(&pki, "hd-1");
    settings.server_name = Some("sd-1".into());
    let tls = tandem_net::tls::client_config(&settings, &[]).unwrap();
    let rpc = JsonRpcClient::new(
        &format!("https://{}/jsonrpc", sd.addr),
        Some(tls),
        Some("sd-1"),
        Duration::from_secs(5),
    )
    .unwrap();
    let err = rpc.call("getTip", params([])).await.unwrap_err();
    assert_eq!(err.kind(), "transport", "{err}");
    sd.stop().await;
}

#[tokio::test]
async fn a_hyper_grpc_server_refuses_an_expired_pinned_client_certificate() {
    use grpc::*;
    let tmp = tempfile::tempdir().unwrap();
    let pki = pki(tmp.path());
    let expired = expired_cert(&pki, "hd-1");
    let (listener, addr) = bind().await;
    // hd-1 pins both its valid and its expired leaf: pinning cannot be the reason for a refusal.
    let mut hd1 = entry(&pki, "hd-1", "g", None);
    hd1.certificates.push(OperatorCertificate {
        fingerprint: expired.fingerprint.clone(),
        key_usage: "encryption".into(),
    });
    let dir = directory(vec![
        hd1,
        entry(&pki, "hd-2", "g", Some(json!({"address": addr}))),
    ]);
    let sink = Arc::new(EchoSink::default());
    let _server = start_server(&pki, "hd-2", listener, dir.clone(), sink.clone(), 5_000);

    let valid = client_as(&pki, "hd-1", "hd-1", dir.clone(), 5_000);
    valid
        .deliver(request("hd-2", "echo", "1", json!({})), me("hd-1"))
        .await
        .unwrap();
    assert_eq!(sink.seen.lock().unwrap().len(), 1);

    let settings = tandem_settings::hyper::GrpcClientSettings {
        tls: expired.tls_settings(&pki, "hd-1"),
        use_proxy: true,
    };
    let client =
        tandem_hyper::grpc::GrpcClient::new(&settings, "hd-1", timeouts(5_000), dir).unwrap();
    let started = Instant::now();
    let err = client
        .deliver(request("hd-2", "echo", "2", json!({})), me("hd-1"))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), "channel", "{err}");
    assert!(started.elapsed() < STEP);
    assert_eq!(
        sink.seen.lock().unwrap().len(),
        1,
        "the expired certificate's call never reached the broker"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_control_service_refuses_an_expired_admin_certificate() {
    use control_service::*;
    let dir = tempfile::tempdir().unwrap();
    let pki = pki(dir.path());
    let proxy = Proxy::start(&pki, policy(&pki)).await;
    let admin = proxy.client_from(&pki, ADMIN).await.unwrap();
    admin.stats().await.unwrap();

    let expired = expired_cert(&pki, ADMIN);
    let mut settings = expired.tls_settings(&pki, ADMIN);
    settings.server_name = Some(PROXY.into());
    let tls = tandem_net::tls::client_config(&settings, &[b"h2"]).unwrap();
    let attempt = async {
        let client = tandem_proxy::control_service::ControlClient::connect(
            &proxy.control_addr.to_string(),
            tls,
            rustls_pki_types::ServerName::try_from(PROXY).unwrap(),
            Duration::from_secs(5),
        )
        .await?;
        client.stats().await
    };
    let result = tokio::time::timeout(STEP, attempt).await.unwrap();
    assert!(result.is_err(), "an expired admin certificate is refused");
    // The server counts the failed handshake (its task may finish just after the client sees it).
    tandem_testkit::poll::until("the handshake failure counted", STEP, || async {
        (proxy.server.counters().handshake_failures > 0).then_some(())
    })
    .await;
    assert_eq!(
        proxy.server.counters().pairs_created,
        0,
        "nothing was created"
    );
    drop(admin);
    proxy.stop().await;
}
