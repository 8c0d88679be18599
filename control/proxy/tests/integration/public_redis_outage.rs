//! The public proxy on the Redis datastore (a real `redis-server`) while Redis is killed and
//! restarted: `announceConnections` fails clearly while Redis is down and pairing through the
//! engine keeps working (it needs no datastore); after Redis is back a new announcement
//! succeeds; every acknowledged announcement survives a proxy restart after the Redis restart.
#![allow(clippy::unwrap_used)]

use crate::support::proxy;
use crate::support::proxy::ServedPublic;

use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use proxy::*;
use serde_json::{Value, json};
use tandem_directory::entry::DirectoryEntry;
use tandem_net::http::ClientError;
use tandem_net::jsonrpc::params;
use tandem_proxy::settings::PublicProxySettings;
use tandem_settings::datastore::DatastoreSettings;
use tandem_testkit::redis::RedisServer;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The proxy of this suite (a [`ServedPublic`] with the suite's calls).
struct Running(ServedPublic);

impl std::ops::Deref for Running {
    type Target = ServedPublic;
    fn deref(&self) -> &ServedPublic {
        &self.0
    }
}

impl Running {
    async fn start(settings: &PublicProxySettings, pki: &tandem_testkit::pki::TestPki) -> Self {
        Self(ServedPublic::start(settings, pki).await)
    }

    async fn announce(&self, domain: &str) -> Result<Value, ClientError> {
        let private = with_proxy_settings(
            entry(PRIVATE, &[], &[]),
            PUBLIC,
            &[".internal-server.local"],
        );
        self.client
            .call(
                "announceConnections",
                params([
                    ("connections", json!([{ "domain": domain }])),
                    ("_client", client_info(&private)),
                ]),
            )
            .await
    }

    async fn domains(&self) -> Vec<String> {
        let live = self
            .client
            .call("getAnnouncements", params([]))
            .await
            .unwrap();
        let mut domains: Vec<String> = live
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a["domain"].as_str().unwrap().to_owned())
            .collect();
        domains.sort();
        domains
    }

    async fn stop(self) {
        self.0.stop().await;
    }
}

fn directory() -> Vec<DirectoryEntry> {
    vec![
        entry("hd-1", &["health-departments"], &["health-departments"]),
        entry("hd-2", &["health-departments"], &["health-departments"]),
    ]
}

/// hd-1 asks for a connection to hd-2; the fake Hyper plays hd-2 (dials and writes its token);
/// bytes cross the pair both ways.
async fn pair_through_the_engine(proxy: &Running, hyper: &mut RunningHyper) {
    let hd1 = directory().remove(0);
    let result = proxy
        .client
        .call(
            "requestConnection",
            params([
                ("to", json!("hd-2")),
                ("channel", json!("grpc_server")),
                ("_client", client_info(&hd1)),
            ]),
        )
        .await
        .unwrap();
    let token = STANDARD.decode(result["token"].as_str().unwrap()).unwrap();
    let endpoint = result["endpoint"].as_str().unwrap().to_owned();
    let (mut target, _) = tokio::time::timeout(CALL_TIMEOUT, hyper.dialed.recv())
        .await
        .unwrap()
        .unwrap();
    let mut requester = TcpStream::connect(&endpoint).await.unwrap();
    requester.write_all(&token).await.unwrap();
    requester.write_all(b"ping").await.unwrap();
    let mut buf = [0u8; 4];
    target.read_exact(&mut buf).await.unwrap();
    assert_eq!(&buf, b"ping");
    target.write_all(b"pong").await.unwrap();
    requester.read_exact(&mut buf).await.unwrap();
    assert_eq!(&buf, b"pong");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_restart_under_the_public_proxy_errors_clearly_then_recovers_and_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let pki = pki(dir.path());
    let mut redis = RedisServer::start().unwrap();
    let mut hyper = RunningHyper::start(PUBLIC, directory()).await;
    let mut settings = public_settings(&pki, dir.path(), hyper.addr);
    settings.datastore = DatastoreSettings::Redis(redis.settings("proxy-announcements"));
    let proxy = Running::start(&settings, &pki).await;

    let before = "before.internal-server.local";
    assert_eq!(proxy.announce(before).await.unwrap(), json!([null]));

    redis.kill().unwrap();
    let down = "down.internal-server.local";
    let started = std::time::Instant::now();
    let err = proxy.announce(down).await.unwrap_err();
    // Failed by the redis command bound (1 s), not the call timeout (5 s): the answer below is
    // the proxy's JSON-RPC error, which a client-side call timeout would not be. The time
    // bound only catches a hang, with room for a loaded machine.
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "{:?}",
        started.elapsed()
    );
    let ClientError::Rpc { error, .. } = &err else {
        panic!("expected a JSON-RPC error, got {err}");
    };
    // As sd does: the standard internal error (the datastore failure is logged, not sent).
    assert_eq!(error.code, tandem_net::jsonrpc::INTERNAL_ERROR, "{err}");
    assert_eq!(
        proxy.domains().await,
        vec![before.to_owned()],
        "a refused announcement is not applied"
    );
    // Pairing needs no datastore: it keeps working while Redis is down.
    pair_through_the_engine(&proxy, &mut hyper).await;

    redis.restart().unwrap();
    let after = "after.internal-server.local";
    // The connection manager reconnects in the background: bounded tries (50 × 100 ms).
    let announced = tandem_testkit::poll::until(
        "an announcement after Redis came back",
        tandem_testkit::poll::POLL_BOUND,
        || async { proxy.announce(after).await.ok() },
    )
    .await;
    assert_eq!(announced, json!([null]));
    pair_through_the_engine(&proxy, &mut hyper).await;
    proxy.stop().await;

    // A new proxy on the restarted Redis: every acknowledged announcement is there.
    let proxy = Running::start(&settings, &pki).await;
    assert_eq!(
        proxy.domains().await,
        vec![after.to_owned(), before.to_owned()]
    );
    proxy.stop().await;
    hyper.stop().await;
}
