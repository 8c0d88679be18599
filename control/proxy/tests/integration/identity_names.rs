//! Identity at every door (issue 12), pinned names: the Hyper gateway serves its operator and
//! its `allowed_clients` only (pinned where the directory pins them) and counts the others; an
//! admin name, or the public proxy's own operator name, on a certificate the directory does not
//! pin is refused. Each hostile caller is refused beside a legitimate one that is served.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support::control_service;
use crate::support::identity::{STEP, alt_tls, metric, rpc_error};
use crate::support::proxy;
use tandem_testkit::hyper_node;

use std::net::SocketAddr;
use std::time::Duration;

use serde_json::{Value, json};
use tandem_hyper::hyper_server::{HyperServer, Listeners};
use tandem_net::http::JsonRpcClient;
use tandem_settings::hyper::{
    ChannelKind, ChannelSettings, DirectorySettings, GatewaySettings, JsonDirectorySettings,
    Timeouts,
};
use tandem_settings::{HyperSettings, JsonRpcServerSettings, TlsSettings};
use tandem_testkit::pki::TestPki;
use tokio::net::TcpListener;

// ---------------------------------------------------------------------------------------------
// The Hyper gateway.

/// hd-2 with a TLS gateway requiring client certificates, `allowed_clients: [demo-app]`, and a
/// json directory pinning hd-2's certificate.
fn gateway_settings(dir: &std::path::Path, pki: &TestPki) -> HyperSettings {
    let path = dir.join("directory.json");
    hyper_node::write_records(
        &path,
        vec![
            hyper_node::record("hd-2", "groups", json!(["health-departments"])),
            hyper_node::record("hd-2", "services", hyper_node::hd_services()),
            hyper_node::record(
                "hd-2",
                "certificates",
                json!([{"fingerprint": pki.fingerprint("hd-2").unwrap(), "key_usage": "encryption"}]),
            ),
        ],
    );
    let gateway = GatewaySettings {
        server: JsonRpcServerSettings {
            serving: Default::default(),
            bind_address: hyper_node::loopback(),
            path: "/jsonrpc".into(),
            cors: None,
            tls: Some(pki.tls_settings("hd-2")),
            tcp_rate_limits: Vec::new(),
        },
        allowed_clients: vec!["demo-app".into()],
    };
    HyperSettings {
        name: "hd-2".into(),
        directory: DirectorySettings::Json(JsonDirectorySettings { path }),
        channels: vec![ChannelSettings {
            name: "local".into(),
            services: Vec::new(),
            kind: ChannelKind::JsonRpcServer(gateway),
        }],
        signing: None,
        metrics: None,
        log_level: None,
        timeouts: Timeouts {
            call: Duration::from_secs(5),
            connect: Duration::from_secs(2),
        },
    }
}

fn gateway_client(addr: SocketAddr, tls: &TlsSettings) -> JsonRpcClient {
    let config = tandem_net::tls::client_config(tls, &[b"http/1.1"]).unwrap();
    JsonRpcClient::new(
        &format!("https://{addr}/jsonrpc"),
        Some(config),
        Some("hd-2"),
        STEP,
    )
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_gateway_serves_its_operator_and_allowed_clients_and_refuses_a_foreign_operator() {
    let tmp = tempfile::tempdir().unwrap();
    let pki = TestPki::generate(tmp.path(), &["hd-1", "hd-2", "demo-app"]).unwrap();
    let listeners = Listeners {
        grpc: None,
        jsonrpc: Some(hyper_node::listener().await.into()),
    };
    let mut server = HyperServer::start(&gateway_settings(tmp.path(), &pki), listeners).unwrap();
    let metrics = hyper_node::listener().await;
    let metrics_addr = metrics.local_addr().unwrap();
    server.serve_metrics(metrics);
    let addr = server.jsonrpc_addr.unwrap();
    let ping = |client: JsonRpcClient| async move {
        client.call("hd-2._ping", serde_json::Map::new()).await
    };

    // The operator itself (its pinned certificate) and the listed local client are served.
    let own = ping(gateway_client(
        addr,
        &pki.client_tls_settings("hd-2", "hd-2"),
    ))
    .await;
    assert_eq!(own.unwrap()["serverInfo"]["name"], "hd-2");
    let app = ping(gateway_client(
        addr,
        &pki.client_tls_settings("demo-app", "hd-2"),
    ))
    .await;
    assert_eq!(app.unwrap()["serverInfo"]["name"], "hd-2");

    // Another operator's valid certificate (same CA): refused, nothing delivered for it.
    let foreign = ping(gateway_client(
        addr,
        &pki.client_tls_settings("hd-1", "hd-2"),
    ))
    .await;
    let error = rpc_error(foreign.as_ref().unwrap_err());
    assert_eq!(error.code, 403, "{error:?}");
    assert_eq!(error.message, "caller not allowed at this gateway");
    let reason = error.data.as_ref().unwrap()["reason"].as_str().unwrap();
    assert!(reason.contains("\"hd-1\""), "{reason}");
    // hd-2's name with the right CA, but not the certificate the directory pins for hd-2.
    let unpinned = ping(gateway_client(addr, &alt_tls(&pki, "hd-2", "hd-2"))).await;
    let error = rpc_error(unpinned.as_ref().unwrap_err());
    assert_eq!(error.code, 403, "{error:?}");
    assert!(
        error.data.as_ref().unwrap()["reason"]
            .as_str()
            .unwrap()
            .contains("pins"),
        "{error:?}"
    );

    assert_eq!(
        metric(
            metrics_addr,
            "hyper_gateway_refused_total{reason=\"not_listed\"}"
        )
        .await,
        1.0
    );
    assert_eq!(
        metric(
            metrics_addr,
            "hyper_gateway_refused_total{reason=\"not_pinned\"}"
        )
        .await,
        1.0
    );
    // The operator is still served after the refusals.
    let again = ping(gateway_client(
        addr,
        &pki.client_tls_settings("hd-2", "hd-2"),
    ))
    .await;
    assert!(again.is_ok(), "{again:?}");
    tokio::time::timeout(STEP, server.shutdown()).await.unwrap();
}

// ---------------------------------------------------------------------------------------------
// Pinned names: ControlService admins and the proxy's own Hyper node.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_name_on_a_certificate_the_directory_does_not_pin_is_refused() {
    use control_service::*;
    let dir = tempfile::tempdir().unwrap();
    let pki = pki(dir.path());
    // ADMIN is pinned in the directory; GROUP_ADMIN, also listed, has no entry.
    let directory = directory(&pki, &[(ADMIN, "ops")]);
    let policy = tandem_proxy::control_service::AdminPolicy::names([ADMIN, GROUP_ADMIN])
        .with_pins(directory);
    let proxy = Proxy::start(&pki, policy).await;

    let admin = proxy.client_from(&pki, ADMIN).await.unwrap();
    admin.stats().await.unwrap();
    let unpinned_entry = proxy.client_from(&pki, GROUP_ADMIN).await.unwrap();
    unpinned_entry.stats().await.unwrap();

    // ADMIN's name from our CA, on another key: not the pinned certificate.
    let tls = tandem_net::tls::client_config(&alt_tls(&pki, ADMIN, PROXY), &[b"h2"]).unwrap();
    let impostor = tandem_proxy::control_service::ControlClient::connect(
        &proxy.control_addr.to_string(),
        tls,
        rustls_pki_types::ServerName::try_from(PROXY).unwrap(),
        STEP,
    )
    .await
    .unwrap();
    let e = impostor.stats().await.unwrap_err();
    assert_eq!(e.code(), Some(tonic::Code::PermissionDenied), "{e}");
    assert!(e.to_string().contains("pins"), "{e}");
    let e = impostor.create_pair(None).await.unwrap_err();
    assert_eq!(e.code(), Some(tonic::Code::PermissionDenied), "{e}");
    assert_eq!(proxy.server.counters().pairs_created, 0);
    admin.stats().await.unwrap();
    drop((admin, unpinned_entry, impostor));
    proxy.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_public_proxy_refuses_its_operator_name_on_an_unpinned_certificate() {
    use proxy::{PUBLIC, RunningHyper, entry, pki, proxy_client, public_settings};
    let dir = tempfile::tempdir().unwrap();
    let pki = pki(dir.path());
    let mut own = entry(PUBLIC, &["proxy-providers"], &[]);
    own.certificates
        .push(tandem_directory::entry::OperatorCertificate {
            fingerprint: pki.fingerprint(PUBLIC).unwrap().to_owned(),
            key_usage: "encryption".into(),
        });
    let hyper = RunningHyper::start(PUBLIC, vec![own]).await;
    let settings = public_settings(&pki, dir.path(), hyper.addr);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let proxy = tandem_proxy::PublicProxy::start(&settings, listener)
        .await
        .unwrap();
    let addr = proxy.handle().jsonrpc_addr();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(proxy.serve(async {
        let _ = stopped.await;
    }));

    let ours = proxy_client(&pki, PUBLIC, addr);
    let live = ours
        .call("getAnnouncements", tandem_net::jsonrpc::params([]))
        .await
        .unwrap();
    assert_eq!(live, Value::Array(Vec::new()));

    let config =
        tandem_net::tls::client_config(&alt_tls(&pki, PUBLIC, PUBLIC), &[b"http/1.1"]).unwrap();
    let impostor = JsonRpcClient::new(
        &format!("https://{addr}/jsonrpc"),
        Some(config),
        Some(PUBLIC),
        STEP,
    )
    .unwrap();
    let err = impostor
        .call("getAnnouncements", tandem_net::jsonrpc::params([]))
        .await
        .unwrap_err();
    assert_eq!(rpc_error(&err).code, 403, "{err}");
    drop((ours, impostor));
    let _ = stop.send(());
    task.await.unwrap().unwrap();
    hyper.stop().await;
}
