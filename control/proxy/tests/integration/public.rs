//! The public proxy end to end on the real engine: P2P brokering (per-side single-use tokens,
//! bytes both ways, reuse refused), `_connectionRequest` failure cancels the pair, requesters
//! that may not reach the target get no pair, only our Hyper node may call, announcements.
#![allow(clippy::unwrap_used)]

use crate::support::proxy;

use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use proxy::*;
use serde_json::{Value, json};
use tandem_engine::Driver;
use tandem_net::http::ClientError;
use tandem_net::jsonrpc::params;
use tandem_proxy::{PublicHandle, PublicProxy};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;

struct Running {
    handle: PublicHandle,
    stop: oneshot::Sender<()>,
    task: tokio::task::JoinHandle<Result<(), tandem_proxy::ProxyError>>,
}

impl Running {
    async fn start(settings: &tandem_proxy::settings::PublicProxySettings) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let proxy = PublicProxy::start(settings, listener).await.unwrap();
        let handle = proxy.handle();
        let (stop, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(proxy.serve(async {
            let _ = rx.await;
        }));
        Self { handle, stop, task }
    }

    async fn stop(self) {
        drop(self.handle);
        let _ = self.stop.send(());
        self.task.await.unwrap().unwrap();
    }
}

fn directory() -> Vec<tandem_directory::entry::DirectoryEntry> {
    vec![
        entry("hd-1", &["health-departments"], &["health-departments"]),
        entry("hd-2", &["health-departments"], &["health-departments"]),
        entry("ls-1", &["labs"], &[]),
    ]
}

async fn request(
    client: &tandem_net::http::JsonRpcClient,
    from: &str,
    to: &str,
) -> Result<Value, ClientError> {
    let dir = directory();
    let requester = dir.iter().find(|e| e.name == from).unwrap();
    client
        .call(
            "requestConnection",
            params([
                ("to", json!(to)),
                ("channel", json!("grpc_server")),
                ("_client", client_info(requester)),
            ]),
        )
        .await
}

fn rpc_code(e: &ClientError) -> i64 {
    match e {
        ClientError::Rpc { error, .. } => error.code,
        other => panic!("expected a JSON-RPC error, got {other}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_connection_pairs_both_sides_once_io_uring() {
    pairs_both_sides_once(Driver::Auto).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_connection_pairs_both_sides_once_epoll() {
    pairs_both_sides_once(Driver::Legacy).await;
}

async fn pairs_both_sides_once(driver: Driver) {
    let dir = tempfile::tempdir().unwrap();
    let pki = pki(dir.path());
    let mut hyper = RunningHyper::start(PUBLIC, directory()).await;
    let mut settings = public_settings(&pki, dir.path(), hyper.addr);
    settings.engine.config.driver = driver;
    let proxy = Running::start(&settings).await;
    let client = proxy_client(&pki, PUBLIC, proxy.handle.jsonrpc_addr());

    let result = request(&client, "hd-1", "hd-2").await.unwrap();
    let token = result["token"].as_str().unwrap().to_owned();
    let endpoint = result["endpoint"].as_str().unwrap().to_owned();
    assert_eq!(endpoint, proxy.handle.engine_addrs().pairing.to_string());
    let (mut target, target_token) = hyper.dialed.recv().await.unwrap();
    assert_ne!(token, target_token, "each side has its own token");
    assert_eq!(STANDARD.decode(&token).unwrap().len(), 32);
    assert_eq!(token.len(), 44, "standard base64 of 32 bytes");

    let mut requester = TcpStream::connect(&endpoint).await.unwrap();
    requester
        .write_all(&STANDARD.decode(&token).unwrap())
        .await
        .unwrap();
    requester.write_all(b"ping").await.unwrap();
    let mut buf = [0u8; 4];
    target.read_exact(&mut buf).await.unwrap();
    assert_eq!(&buf, b"ping");
    target.write_all(b"pong").await.unwrap();
    requester.read_exact(&mut buf).await.unwrap();
    assert_eq!(&buf, b"pong");

    // A third connection with a spent token is refused and counted.
    for t in [&token, &target_token] {
        let mut third = TcpStream::connect(&endpoint).await.unwrap();
        third.write_all(&STANDARD.decode(t).unwrap()).await.unwrap();
        let n = tokio::time::timeout(Duration::from_secs(30), third.read(&mut buf))
            .await
            .unwrap()
            .unwrap_or(0);
        assert_eq!(n, 0, "a reused token is closed");
    }
    let h = proxy.handle.clone();
    eventually("two reuses counted", || {
        h.stats().engine_total(|c| c.bad_reused) == 2
    })
    .await;
    let stats = proxy.handle.stats();
    assert_eq!(stats.proxy.pairs_requested, 1);
    assert_eq!(stats.proxy.pairs_issued, 1);
    assert_eq!(stats.engine_total(|c| c.paired), 1);
    // The live pair still works after the refusals.
    requester.write_all(b"more").await.unwrap();
    target.read_exact(&mut buf).await.unwrap();
    assert_eq!(&buf, b"more");
    drop((requester, target, client));
    proxy.stop().await;
    hyper.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_connection_request_cancels_the_pair() {
    let dir = tempfile::tempdir().unwrap();
    let pki = pki(dir.path());
    let hyper = RunningHyper::start(PUBLIC, directory()).await;
    *hyper.hyper.mode.lock().unwrap() = TargetMode::Fail;
    let proxy = Running::start(&public_settings(&pki, dir.path(), hyper.addr)).await;
    let client = proxy_client(&pki, PUBLIC, proxy.handle.jsonrpc_addr());

    let err = request(&client, "hd-1", "hd-2").await.unwrap_err();
    assert_eq!(rpc_code(&err), -100, "the target's error is passed through");
    let h = proxy.handle.clone();
    eventually("nothing left issued", || {
        let s = h.stats();
        s.engine_total(|c| c.issued_pairs) == 0 && s.engine_total(|c| c.waiting) == 0
    })
    .await;
    let stats = proxy.handle.stats();
    assert_eq!(stats.proxy.pairs_cancelled, 1);
    assert_eq!(stats.proxy.pairs_issued, 0);
    assert_eq!(hyper.hyper.calls_to("hd-2._connectionRequest"), 1);
    drop(client);
    proxy.stop().await;
    hyper.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_or_unknown_targets_and_foreign_callers_get_no_pair() {
    let dir = tempfile::tempdir().unwrap();
    let pki = pki(dir.path());
    let hyper = RunningHyper::start(PUBLIC, directory()).await;
    let proxy = Running::start(&public_settings(&pki, dir.path(), hyper.addr)).await;
    let client = proxy_client(&pki, PUBLIC, proxy.handle.jsonrpc_addr());

    let err = request(&client, "ls-1", "hd-2").await.unwrap_err();
    assert_eq!(rpc_code(&err), 403, "labs may not reach hd-2");
    let err = request(&client, "hd-1", "nobody").await.unwrap_err();
    assert_eq!(rpc_code(&err), 404);
    let err = client
        .call("requestConnection", params([("to", json!("hd-2"))]))
        .await
        .unwrap_err();
    assert_eq!(rpc_code(&err), -32602, "_client is required");
    // Another operator's certificate is not our Hyper node.
    let foreign = proxy_client(&pki, "hd-1", proxy.handle.jsonrpc_addr());
    let err = request(&foreign, "hd-1", "hd-2").await.unwrap_err();
    assert_eq!(rpc_code(&err), 403);

    assert_eq!(hyper.hyper.calls_to("hd-2._connectionRequest"), 0);
    let stats = proxy.handle.stats();
    assert_eq!(stats.engine_total(|c| c.issued_pairs), 0);
    assert_eq!(stats.proxy.requests_refused, 3);
    drop((client, foreign));
    proxy.stop().await;
    hyper.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn announcements_are_checked_expire_and_persist() {
    let dir = tempfile::tempdir().unwrap();
    let pki = pki(dir.path());
    let private = with_proxy_settings(
        entry(PRIVATE, &[], &[]),
        PUBLIC,
        &[".internal-server.local"],
    );
    let other = with_proxy_settings(entry("hd-2", &[], &[]), "", &[".internal-server.local"]);
    let nobody = entry("hd-1", &[], &[]);
    let hyper = RunningHyper::start(PUBLIC, directory()).await;
    let settings = public_settings(&pki, dir.path(), hyper.addr);
    let proxy = Running::start(&settings).await;
    let client = proxy_client(&pki, PUBLIC, proxy.handle.jsonrpc_addr());
    let announce = |who: &tandem_directory::entry::DirectoryEntry, conns: Value| {
        let client = client.clone();
        let info = client_info(who);
        async move {
            client
                .call(
                    "announceConnections",
                    params([("connections", conns), ("_client", info)]),
                )
                .await
        }
    };

    let r = announce(
        &private,
        json!([{"domain": "foo.internal-server.local"}, {"domain": "foo.example.com"}]),
    )
    .await
    .unwrap();
    assert_eq!(r, json!([null, {"code": 403, "message": "not allowed"}]));
    let r = announce(&other, json!([{"domain": "foo.internal-server.local"}]))
        .await
        .unwrap();
    assert_eq!(r, json!([{"code": 409, "message": "already taken"}]));
    let err = announce(&nobody, json!([{"domain": "foo.internal-server.local"}]))
        .await
        .unwrap_err();
    assert_eq!(rpc_code(&err), 403, "no proxy settings: not authorized");
    let far = (chrono::Utc::now() + chrono::TimeDelta::days(8)).to_rfc3339();
    let err = announce(
        &private,
        json!([{"domain": "x.internal-server.local", "expires_at": far}]),
    )
    .await
    .unwrap_err();
    assert_eq!(rpc_code(&err), -32602);
    // A past `expires_at` is a withdrawal (the original client's): of a domain nobody holds it
    // creates nothing, and the domain stays free for another operator.
    let past = (chrono::Utc::now() - chrono::TimeDelta::seconds(1)).to_rfc3339();
    let r = announce(
        &private,
        json!([{"domain": "old.internal-server.local", "expires_at": past}]),
    )
    .await
    .unwrap();
    assert_eq!(r, json!([null]));
    let r = announce(&other, json!([{"domain": "old.internal-server.local"}]))
        .await
        .unwrap();
    assert_eq!(r, json!([null]));

    let live = client.call("getAnnouncements", params([])).await.unwrap();
    let domains = |v: &Value| -> Vec<(String, String)> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|a| {
                (
                    a["domain"].as_str().unwrap().to_owned(),
                    a["operator"].as_str().unwrap().to_owned(),
                )
            })
            .collect()
    };
    let expected = vec![
        ("foo.internal-server.local".to_owned(), PRIVATE.to_owned()),
        ("old.internal-server.local".to_owned(), "hd-2".to_owned()),
    ];
    assert_eq!(domains(&live), expected);
    assert_eq!(proxy.handle.stats().proxy.announcements_refused, 2);
    drop(client);
    proxy.stop().await;

    // Restart on the same file datastore: the announcements are still there.
    let proxy = Running::start(&settings).await;
    let client = proxy_client(&pki, PUBLIC, proxy.handle.jsonrpc_addr());
    let live = client.call("getAnnouncements", params([])).await.unwrap();
    assert_eq!(domains(&live), expected);
    drop(client);
    proxy.stop().await;
    hyper.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_optional_client_certs_only_our_hyper_may_call() {
    let dir = tempfile::tempdir().unwrap();
    let pki = pki(dir.path());
    let hyper = RunningHyper::start(PUBLIC, directory()).await;
    let mut settings = public_settings(&pki, dir.path(), hyper.addr);
    let tls = settings.jsonrpc_server.tls.as_mut().unwrap();
    tls.verify_client = false;
    tls.request_client_cert = true;
    let proxy = Running::start(&settings).await;
    let addr = proxy.handle.jsonrpc_addr();
    let mut anonymous = pki.client_tls_settings("hd-1", PUBLIC);
    anonymous.certificate_file = None;
    anonymous.key_file = None;
    let config = tandem_net::tls::client_config(&anonymous, &[b"http/1.1"]).unwrap();
    let anonymous = tandem_net::http::JsonRpcClient::new(
        &format!("https://{addr}/jsonrpc"),
        Some(config),
        Some(PUBLIC),
        CALL_TIMEOUT,
    )
    .unwrap();
    let err = anonymous
        .call("getAnnouncements", params([]))
        .await
        .unwrap_err();
    assert_eq!(rpc_code(&err), 403);
    let ours = proxy_client(&pki, PUBLIC, addr);
    assert_eq!(
        ours.call("getAnnouncements", params([])).await.unwrap(),
        json!([])
    );
    drop((anonymous, ours));
    proxy.stop().await;
    hyper.stop().await;
}
