//! Identity at every door (issue 12), each hostile caller beside a legitimate one that is served:
//! the Hyper gateway serves its operator and its `allowed_clients` only (pinned where the
//! directory pins them); `_connectionRequest`, the requesting side's dialer and the private
//! proxy's `incomingConnection` dial only a pairing endpoint the asking proxy's directory entry
//! lists (a listener at a foreign endpoint sees no connection); an admin name or our own proxy
//! operator's name on a certificate the directory does not pin is refused. Refusals are counted.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::control_service_support;
use crate::gaps_support;
use crate::hyper_support;
use crate::metrics_support;
use crate::p2p_support;
use crate::proxy_support;

use std::net::SocketAddr;
use std::time::Duration;

use serde_json::{Value, json};
use tandem_control::certs::TestPki;
use tandem_control::http::{ClientError, JsonRpcClient};
use tandem_control::hyper_server::{HyperServer, Listeners};
use tandem_control::settings::hyper::{
    ChannelKind, ChannelSettings, DirectorySettings, GatewaySettings, JsonDirectorySettings,
    Timeouts,
};
use tandem_control::settings::{HyperSettings, JsonRpcServerSettings, TlsSettings};
use tokio::io::AsyncReadExt;
use tokio::net::TcpListener;

/// Upper bound of one awaited step (a hang fails instead of stalling).
const STEP: Duration = Duration::from_secs(20);
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

/// The value of the series `series` in the Prometheus text at `addr`'s `/metrics` (0 if absent).
async fn metric(addr: SocketAddr, series: &str) -> f64 {
    let (status, text) = metrics_support::get(addr, "/metrics").await;
    assert_eq!(status, 200);
    metrics_support::parse_prometheus(&text)
        .iter()
        .find(|(name, _)| name == series)
        .map_or(0.0, |(_, v)| *v)
}

fn rpc_error(e: &ClientError) -> &tandem_control::jsonrpc::ErrorObject {
    match e {
        ClientError::Rpc { error, .. } => error,
        other => panic!("expected a JSON-RPC error, got {other}"),
    }
}

// ---------------------------------------------------------------------------------------------
// The Hyper gateway.

/// hd-2 with a TLS gateway requiring client certificates, `allowed_clients: [demo-app]`, and a
/// json directory pinning hd-2's certificate.
fn gateway_settings(dir: &std::path::Path, pki: &TestPki) -> HyperSettings {
    let path = dir.join("directory.json");
    hyper_support::write_records(
        &path,
        vec![
            hyper_support::record("hd-2", "groups", json!(["health-departments"])),
            hyper_support::record("hd-2", "services", hyper_support::hd_services()),
            hyper_support::record(
                "hd-2",
                "certificates",
                json!([{"fingerprint": pki.fingerprint("hd-2").unwrap(), "key_usage": "encryption"}]),
            ),
        ],
    );
    let gateway = GatewaySettings {
        server: JsonRpcServerSettings {
            bind_address: hyper_support::loopback(),
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
        timeouts: Timeouts {
            call: Duration::from_secs(5),
            connect: Duration::from_secs(2),
        },
    }
}

fn gateway_client(addr: SocketAddr, tls: &TlsSettings) -> JsonRpcClient {
    let config = tandem_control::tls::client_config(tls, &[b"http/1.1"]).unwrap();
    JsonRpcClient::new(
        &format!("https://{addr}/jsonrpc"),
        Some(config),
        Some("hd-2"),
        STEP,
    )
    .unwrap()
}

fn alt_tls(pki: &TestPki, op: &str, server: &str) -> TlsSettings {
    TlsSettings {
        certificate_file: Some(pki.alt_cert(op)),
        key_file: Some(pki.alt_key(op)),
        ..pki.client_tls_settings(op, server)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_gateway_serves_its_operator_and_allowed_clients_and_refuses_a_foreign_operator() {
    let tmp = tempfile::tempdir().unwrap();
    let pki = TestPki::generate(tmp.path(), &["hd-1", "hd-2", "demo-app"]).unwrap();
    let listeners = Listeners {
        grpc: None,
        jsonrpc: Some(hyper_support::listener().await),
    };
    let mut server = HyperServer::start(&gateway_settings(tmp.path(), &pki), listeners).unwrap();
    let metrics = hyper_support::listener().await;
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
// Pairing endpoints.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_request_for_a_foreign_endpoint_is_refused_and_nothing_is_dialed() {
    let mut mesh = p2p_support::Mesh::start().await;
    let metrics = hyper_support::listener().await;
    let metrics_addr = metrics.local_addr().unwrap();
    mesh.hd2.as_mut().unwrap().serve_metrics(metrics);
    let foreign = hyper_support::listener().await;
    let foreign_addr = foreign.local_addr().unwrap().to_string();

    // As the finding: the proxy's Hyper sends hd-2._connectionRequest for an address that is not
    // the proxy's pairing endpoint (an internal service, a port scan).
    let token = p2p_support::token_text([7; 32]);
    let (status, body) = p2p_support::reverse_call(
        &mesh,
        json!({"channel": "grpc_server", "endpoint": foreign_addr, "token": token}),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains(&format!(
            "endpoint {foreign_addr} is not a pairing endpoint of {}",
            p2p_support::PROXY
        )),
        "{message}"
    );

    // The legitimate path through the proxy's listed pairing endpoint still works.
    let (status, body) = mesh.ping(1).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["result"]["serverInfo"]["name"], "hd-2");
    assert_eq!(p2p_support::paired(&mesh.engine), 1);

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
    let mut mesh = p2p_support::Mesh::start().await;
    let metrics = hyper_support::listener().await;
    let metrics_addr = metrics.local_addr().unwrap();
    mesh.hd1.serve_metrics(metrics);
    let foreign = hyper_support::listener().await;

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
    use proxy_support::{PRIVATE, RunningHyper, private_settings};
    let dir = tempfile::tempdir().unwrap();
    let hyper = RunningHyper::start(PRIVATE, Vec::new()).await;
    let internal = hyper_support::listener().await;
    let settings = private_settings(dir.path(), hyper.addr, internal.local_addr().unwrap());
    let private = gaps_support::Private::start(&settings, true).await;
    private.announce().await;
    let pairing = hyper_support::listener().await;
    let pairing_addr = pairing.local_addr().unwrap().to_string();
    let foreign = hyper_support::listener().await;
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

// ---------------------------------------------------------------------------------------------
// Pinned names: ControlService admins and the proxy's own Hyper node.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_name_on_a_certificate_the_directory_does_not_pin_is_refused() {
    use control_service_support::*;
    let dir = tempfile::tempdir().unwrap();
    let pki = pki(dir.path());
    // ADMIN is pinned in the directory; GROUP_ADMIN, also listed, has no entry.
    let directory = directory(&pki, &[(ADMIN, "ops")]);
    let policy = tandem_control::control_service::AdminPolicy::names([ADMIN, GROUP_ADMIN])
        .with_pins(directory);
    let proxy = Proxy::start(&pki, policy).await;

    let admin = proxy.client_from(&pki, ADMIN).await.unwrap();
    admin.stats().await.unwrap();
    let unpinned_entry = proxy.client_from(&pki, GROUP_ADMIN).await.unwrap();
    unpinned_entry.stats().await.unwrap();

    // ADMIN's name from our CA, on another key: not the pinned certificate.
    let tls = tandem_control::tls::client_config(&alt_tls(&pki, ADMIN, PROXY), &[b"h2"]).unwrap();
    let impostor = tandem_control::control_service::ControlClient::connect(
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
    use proxy_support::{PUBLIC, RunningHyper, entry, pki, proxy_client, public_settings};
    let dir = tempfile::tempdir().unwrap();
    let pki = pki(dir.path());
    let mut own = entry(PUBLIC, &["proxy-providers"], &[]);
    own.certificates
        .push(tandem_control::directory::entry::OperatorCertificate {
            fingerprint: pki.fingerprint(PUBLIC).unwrap().to_owned(),
            key_usage: "encryption".into(),
        });
    let hyper = RunningHyper::start(PUBLIC, vec![own]).await;
    let settings = public_settings(&pki, dir.path(), hyper.addr);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let proxy = tandem_control::proxy::PublicProxy::start(&settings, listener)
        .await
        .unwrap();
    let addr = proxy.handle().jsonrpc_addr();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(proxy.serve(async {
        let _ = stopped.await;
    }));

    let ours = proxy_client(&pki, PUBLIC, addr);
    let live = ours
        .call("getAnnouncements", tandem_control::jsonrpc::params([]))
        .await
        .unwrap();
    assert_eq!(live, Value::Array(Vec::new()));

    let config =
        tandem_control::tls::client_config(&alt_tls(&pki, PUBLIC, PUBLIC), &[b"http/1.1"]).unwrap();
    let impostor = JsonRpcClient::new(
        &format!("https://{addr}/jsonrpc"),
        Some(config),
        Some(PUBLIC),
        STEP,
    )
    .unwrap();
    let err = impostor
        .call("getAnnouncements", tandem_control::jsonrpc::params([]))
        .await
        .unwrap_err();
    assert_eq!(rpc_error(&err).code, 403, "{err}");
    drop((ours, impostor));
    let _ = stop.send(());
    task.await.unwrap().unwrap();
    hyper.stop().await;
}
