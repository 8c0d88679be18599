//! Two public proxies (in-process, one Redis datastore, so the quotas are the fleet's): hd-1 at
//! its live-pairs quota through node 1 is refused by node 2, naming the quota; hd-2 is not
//! affected; once hd-1's pair on node 1 ends, node 2 admits hd-1 again.
#![allow(clippy::unwrap_used)]

use crate::support::proxy;

use std::num::NonZeroU64;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use proxy::*;
use serde_json::{Value, json};
use tandem_net::http::{ClientError, JsonRpcClient};
use tandem_net::jsonrpc::params;
use tandem_proxy::PublicProxy;
use tandem_proxy::settings::QuotaLimits;
use tandem_settings::datastore::DatastoreSettings;
use tandem_testkit::poll::{POLL_BOUND, until};
use tandem_testkit::redis::RedisServer;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;

fn directory() -> Vec<tandem_directory::entry::DirectoryEntry> {
    vec![
        entry("hd-1", &["health-departments"], &["health-departments"]),
        entry("hd-2", &["health-departments"], &["health-departments"]),
    ]
}

async fn request(client: &JsonRpcClient, from: &str, to: &str) -> Result<Value, ClientError> {
    let requester = directory().into_iter().find(|e| e.name == from).unwrap();
    client
        .call(
            "requestConnection",
            params([
                ("to", json!(to)),
                ("channel", json!("grpc_server")),
                ("_client", client_info(&requester)),
            ]),
        )
        .await
}

struct Node {
    client: JsonRpcClient,
    stop: oneshot::Sender<()>,
    task: tokio::task::JoinHandle<Result<(), tandem_proxy::ProxyError>>,
}

impl Node {
    async fn start(
        settings: &tandem_proxy::settings::PublicProxySettings,
        pki: &tandem_testkit::pki::TestPki,
    ) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let proxy = PublicProxy::start(settings, listener).await.unwrap();
        let client = proxy_client(pki, PUBLIC, proxy.handle().jsonrpc_addr());
        let (stop, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(proxy.serve(async {
            let _ = rx.await;
        }));
        Self { client, stop, task }
    }

    async fn stop(self) {
        drop(self.client);
        let _ = self.stop.send(());
        self.task.await.unwrap().unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_proxies_on_one_redis_share_an_operators_live_pairs_quota() {
    let dir = tempfile::tempdir().unwrap();
    let pki = pki(dir.path());
    let redis = RedisServer::start().unwrap();
    let mut hyper = RunningHyper::start(PUBLIC, directory()).await;
    let mut settings = public_settings(&pki, dir.path(), hyper.addr);
    settings.datastore = DatastoreSettings::Redis(redis.settings("proxy-announcements"));
    settings.quotas.default = QuotaLimits {
        live_pairs: NonZeroU64::new(1),
        ..QuotaLimits::default()
    };
    let nodes = [
        Node::start(&settings, &pki).await,
        Node::start(&settings, &pki).await,
    ];

    // hd-1's one pair, issued by node 1 and joined by both sides.
    let offer = request(&nodes[0].client, "hd-1", "hd-2").await.unwrap();
    let (target, _) = hyper.dialed.recv().await.unwrap();
    let token = STANDARD.decode(offer["token"].as_str().unwrap()).unwrap();
    let mut requester = TcpStream::connect(offer["endpoint"].as_str().unwrap())
        .await
        .unwrap();
    tokio::io::AsyncWriteExt::write_all(&mut requester, &token)
        .await
        .unwrap();

    // Node 2 refuses hd-1: the quota is the fleet's.
    let ClientError::Rpc { error, .. } =
        request(&nodes[1].client, "hd-1", "hd-2").await.unwrap_err()
    else {
        panic!("a JSON-RPC error");
    };
    assert_eq!(error.code, 429);
    assert!(error.message.contains("live_pairs"), "{}", error.message);
    // Another operator is not affected, on either node.
    let other = request(&nodes[1].client, "hd-2", "hd-1").await.unwrap();
    assert!(other["token"].is_string());
    hyper.dialed.recv().await.unwrap();

    // hd-1's pair ends on node 1: node 2 admits hd-1 again.
    drop((requester, target));
    let client = &nodes[1].client;
    until(
        "node 2 admits hd-1 after its pair ended on node 1",
        POLL_BOUND,
        || async { request(client, "hd-1", "hd-2").await.ok() },
    )
    .await;
    for node in nodes {
        node.stop().await;
    }
    hyper.stop().await;
}
