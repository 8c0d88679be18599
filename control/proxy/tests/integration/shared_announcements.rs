//! Public proxy nodes sharing one Redis list of announcements: an announcement made through node
//! 1 is listed by node 2 and routes a ClientHello arriving at node 2's TLS port; two nodes racing
//! for one domain for two operators give it to exactly one; announcements continue through a
//! Sentinel failover (`kill -9` of the master) and none acknowledged is lost.
#![allow(clippy::unwrap_used)]

use crate::support::proxy;
use crate::support::proxy::ServedPublic;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Instant;

use proxy::*;
use serde_json::{Value, json};
use tandem_net::http::ClientError;
use tandem_net::jsonrpc::params;
use tandem_proxy::settings::PublicProxySettings;
use tandem_settings::datastore::DatastoreSettings;
use tandem_testkit::poll::{POLL_BOUND, until};
use tandem_testkit::redis::RedisServer;
use tandem_testkit::sentinel::SentinelSet;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

const SUFFIX: &str = ".internal-server.local";

/// The proxy of this suite (a [`ServedPublic`] with the suite's calls).
struct Node(ServedPublic);

impl std::ops::Deref for Node {
    type Target = ServedPublic;
    fn deref(&self) -> &ServedPublic {
        &self.0
    }
}

impl Node {
    async fn start(settings: &PublicProxySettings, pki: &tandem_testkit::pki::TestPki) -> Self {
        Self(ServedPublic::start(settings, pki).await)
    }

    /// `operator` announces `domain`: the item's result (`null` or its error object).
    async fn announce(&self, operator: &str, domain: &str) -> Result<Value, ClientError> {
        let caller = with_proxy_settings(entry(operator, &[], &[]), PUBLIC, &[SUFFIX]);
        let items = self
            .client
            .call(
                "announceConnections",
                params([
                    ("connections", json!([{ "domain": domain }])),
                    ("_client", client_info(&caller)),
                ]),
            )
            .await?;
        Ok(items[0].clone())
    }

    /// Live announcements as (domain, operator).
    async fn listed(&self) -> BTreeSet<(String, String)> {
        let live = self
            .client
            .call("getAnnouncements", params([]))
            .await
            .unwrap();
        live.as_array()
            .unwrap()
            .iter()
            .map(|a| {
                (
                    a["domain"].as_str().unwrap().to_owned(),
                    a["operator"].as_str().unwrap().to_owned(),
                )
            })
            .collect()
    }

    async fn stop(self) {
        self.0.stop().await;
    }
}

/// The records of a real TLS 1.3 ClientHello naming `name`.
fn client_hello(name: &str) -> Vec<u8> {
    let config = rustls::ClientConfig::builder_with_provider(tandem_net::tls::provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(rustls::RootCertStore::empty())
        .with_no_client_auth();
    let name = rustls_pki_types::ServerName::try_from(name.to_owned()).unwrap();
    let mut conn = rustls::ClientConnection::new(Arc::new(config), name).unwrap();
    let mut out = Vec::new();
    conn.write_tls(&mut out).unwrap();
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_announcement_through_node_1_is_listed_and_routes_on_node_2() {
    let dir = tempfile::tempdir().unwrap();
    let pki = pki(dir.path());
    let redis = RedisServer::start().unwrap();
    let hyper = RunningHyper::start(PUBLIC, vec![]).await;
    let mut settings = public_settings(&pki, dir.path(), hyper.addr);
    settings.datastore = DatastoreSettings::Redis(redis.settings("proxy-announcements"));
    let nodes = [
        Node::start(&settings, &pki).await,
        Node::start(&settings, &pki).await,
    ];
    let domain = format!("shared{SUFFIX}");
    // Before: node 2 refuses a ClientHello for the domain (no announcement).
    let tls = nodes[1].handle.engine_addrs().tls.unwrap();
    let refused_before = nodes[1].handle.stats().proxy.sni_refused;
    let mut hello = TcpStream::connect(tls).await.unwrap();
    hello.write_all(&client_hello(&domain)).await.unwrap();
    until(
        "node 2 refuses an unannounced domain",
        POLL_BOUND,
        || async { (nodes[1].handle.stats().proxy.sni_refused > refused_before).then_some(()) },
    )
    .await;

    let announced = Instant::now();
    assert_eq!(
        nodes[0].announce(PRIVATE, &domain).await.unwrap(),
        Value::Null
    );
    until("node 2 lists node 1's announcement", POLL_BOUND, || async {
        nodes[1]
            .listed()
            .await
            .contains(&(domain.clone(), PRIVATE.to_owned()))
            .then_some(())
    })
    .await;
    // Visible after about one refresh interval (1 s); only logged, a loaded machine may be slower.
    tracing::info!(delay = ?announced.elapsed(), "announcement visible on node 2");
    let mut hello = TcpStream::connect(tls).await.unwrap();
    hello.write_all(&client_hello(&domain)).await.unwrap();
    until("node 2 routes the domain", POLL_BOUND, || async {
        (nodes[1].handle.stats().proxy.sni_resolved >= 1).then_some(())
    })
    .await;
    for node in nodes {
        node.stop().await;
    }
    hyper.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_racing_for_one_domain_give_it_to_exactly_one_operator() {
    let dir = tempfile::tempdir().unwrap();
    let pki = pki(dir.path());
    let redis = RedisServer::start().unwrap();
    let hyper = RunningHyper::start(PUBLIC, vec![]).await;
    let mut settings = public_settings(&pki, dir.path(), hyper.addr);
    settings.datastore = DatastoreSettings::Redis(redis.settings("proxy-announcements"));
    let nodes = [
        Node::start(&settings, &pki).await,
        Node::start(&settings, &pki).await,
    ];
    for round in 0..5 {
        let domain = format!("race{round}{SUFFIX}");
        let (a, b) = tokio::join!(
            nodes[0].announce("tenant-a", &domain),
            nodes[1].announce("tenant-b", &domain)
        );
        let (a, b) = (a.unwrap(), b.unwrap());
        let won: Vec<&str> = [("tenant-a", &a), ("tenant-b", &b)]
            .into_iter()
            .filter(|(_, r)| r.is_null())
            .map(|(op, _)| op)
            .collect();
        assert_eq!(won.len(), 1, "round {round}: {a} / {b}");
        let lost = if a.is_null() { &b } else { &a };
        assert_eq!(
            lost["code"],
            json!(409),
            "the loser is told it is taken: {lost}"
        );
        for node in &nodes {
            until("both nodes list the winner", POLL_BOUND, || async {
                node.listed()
                    .await
                    .contains(&(domain.clone(), won[0].to_owned()))
                    .then_some(())
            })
            .await;
        }
    }
    for node in nodes {
        node.stop().await;
    }
    hyper.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_operator_racing_on_two_nodes_stays_within_its_quota() {
    let dir = tempfile::tempdir().unwrap();
    let pki = pki(dir.path());
    let redis = RedisServer::start().unwrap();
    let hyper = RunningHyper::start(PUBLIC, vec![]).await;
    let mut settings = public_settings(&pki, dir.path(), hyper.addr);
    settings.datastore = DatastoreSettings::Redis(redis.settings("proxy-announcements"));
    settings.announcements.per_operator_quota = std::num::NonZeroUsize::new(2).unwrap();
    let nodes = [
        Node::start(&settings, &pki).await,
        Node::start(&settings, &pki).await,
    ];
    for round in 0..5 {
        // The operator holds one of its two, known to both nodes; then it races for two more.
        let op = format!("tenant-{round}");
        let first = format!("q{round}-0{SUFFIX}");
        assert_eq!(nodes[0].announce(&op, &first).await.unwrap(), Value::Null);
        until("node 2 lists the first", POLL_BOUND, || async {
            nodes[1]
                .listed()
                .await
                .contains(&(first.clone(), op.clone()))
                .then_some(())
        })
        .await;
        let (second, third) = (format!("q{round}-1{SUFFIX}"), format!("q{round}-2{SUFFIX}"));
        let (a, b) = tokio::join!(
            nodes[0].announce(&op, &second),
            nodes[1].announce(&op, &third)
        );
        let (a, b) = (a.unwrap(), b.unwrap());
        assert_eq!(
            [&a, &b].iter().filter(|r| r.is_null()).count(),
            1,
            "round {round}: the quota of two holds across nodes: {a} / {b}"
        );
        let over = if a.is_null() { &b } else { &a };
        assert_eq!(over["code"], json!(429), "over quota: {over}");
        for node in &nodes {
            until("both nodes list the operator's two", POLL_BOUND, || async {
                let held = node.listed().await;
                (held.iter().filter(|(_, o)| *o == op).count() == 2).then_some(())
            })
            .await;
        }
    }
    for node in nodes {
        node.stop().await;
    }
    hyper.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn announcements_continue_through_a_sentinel_failover_and_none_acknowledged_is_lost() {
    let dir = tempfile::tempdir().unwrap();
    let pki = pki(dir.path());
    let mut set = SentinelSet::start(2).unwrap();
    let hyper = RunningHyper::start(PUBLIC, vec![]).await;
    let mut settings = public_settings(&pki, dir.path(), hyper.addr);
    let mut redis = set.settings("proxy-announcements");
    redis.wait_replicas = 1;
    settings.datastore = DatastoreSettings::Redis(redis);
    let node = Node::start(&settings, &pki).await;
    let mut acked = BTreeSet::new();
    let mut failed = 0;
    let mut old = None;
    for n in 0..40 {
        if n == 10 {
            old = Some(set.kill_master().unwrap());
        }
        let domain = format!("d{n}{SUFFIX}");
        match node.announce(PRIVATE, &domain).await {
            Ok(Value::Null) => {
                acked.insert((domain, PRIVATE.to_owned()));
            }
            _ => failed += 1,
        }
    }
    let new = set.wait_failover(old.unwrap());
    assert!(
        acked.len() >= 20,
        "announcements continue after the failover ({failed} failed)"
    );
    node.stop().await;
    // A node started afresh on the new master lists every acknowledged announcement.
    let fresh = Node::start(&settings, &pki).await;
    let listed = fresh.listed().await;
    let lost: Vec<_> = acked.difference(&listed).collect();
    assert!(
        lost.is_empty(),
        "lost {lost:?} (new master {new}, {failed} failed)"
    );
    fresh.stop().await;
    hyper.stop().await;
}
