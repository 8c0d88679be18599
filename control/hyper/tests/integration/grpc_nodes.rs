//! An operator with several nodes (several `grpc_server` channels in its entry): the `grpc_client`
//! spreads calls over the live nodes, fails over from a dead or stopped node within the call's
//! deadline, and uses a node again once it is back.

#![allow(clippy::unwrap_used)]

use tandem_testkit::grpc;

use std::sync::Arc;

use grpc::*;
use serde_json::{Value, json};
use tandem_directory::entry::{DirectoryEntry, OperatorChannel};
use tandem_hyper::broker::types::{Channel, DirectorySource};
use tandem_testkit::pki::TestPki;

const CALL_MS: u64 = 10_000;

/// `hd-2`'s entry with one `grpc_server` channel per address (its nodes).
fn nodes_entry(pki: &TestPki, addresses: &[&str]) -> DirectoryEntry {
    let mut e = entry(pki, "hd-2", "g", None);
    for address in addresses {
        e.channels.push(OperatorChannel {
            kind: "grpc_server".into(),
            settings: json!({"address": address}).as_object().cloned(),
        });
    }
    e
}

/// A node of hd-2 on a fresh listener with its own echo sink.
async fn node(pki: &TestPki, dir: &Arc<dyn DirectorySource>) -> (Server, Arc<EchoSink>) {
    let (listener, _) = bind().await;
    let sink = Arc::new(EchoSink::default());
    let server = start_server(pki, "hd-2", listener, dir.clone(), sink.clone(), CALL_MS);
    (server, sink)
}

/// A directory whose hd-2 entry is filled in once the nodes' addresses are known.
#[derive(Default)]
struct LateDirectory(std::sync::Mutex<Vec<DirectoryEntry>>);

impl DirectorySource for LateDirectory {
    fn entries(
        &self,
    ) -> tandem_hyper::broker::types::BoxFuture<
        '_,
        Result<tandem_hyper::broker::types::Entries, tandem_hyper::broker::types::SourceError>,
    > {
        let entries = self.0.lock().unwrap().clone();
        Box::pin(async move {
            Ok(Arc::new(
                entries.into_iter().map(|e| (e.name.clone(), e)).collect(),
            ))
        })
    }
}

async fn call(client: &Arc<tandem_hyper::grpc::GrpcClient>, id: usize) -> Result<Value, String> {
    let response = client
        .deliver(
            request("hd-2", "echo", &id.to_string(), json!({})),
            me("hd-1"),
        )
        .await
        .map_err(|e| e.to_string())?;
    Ok(Value::Object(response.result.unwrap_or_default()))
}

#[tokio::test]
async fn calls_spread_over_the_nodes_and_fail_over_from_a_dead_one() {
    let tmp = tempfile::tempdir().unwrap();
    let pki = pki(tmp.path());
    let late = Arc::new(LateDirectory::default());
    let dir: Arc<dyn DirectorySource> = late.clone();
    let (mut first, first_sink) = node(&pki, &dir).await;
    let (_second, second_sink) = node(&pki, &dir).await;
    // A third node that is down: its port is closed (a refused dial).
    let dead = {
        let (listener, addr) = bind().await;
        drop(listener);
        addr
    };
    *late.0.lock().unwrap() = vec![
        entry(&pki, "hd-1", "g", None),
        nodes_entry(&pki, &[&dead, &first.addr(), &_second.addr()]),
    ];
    let client = client_as(&pki, "hd-1", "hd-1", dir.clone(), CALL_MS);

    // Concurrent calls: every one succeeds (the dead node costs a refused dial, then the next),
    // and both live nodes take a share.
    let calls: Vec<_> = (0..60)
        .map(|i| {
            let client = client.clone();
            tokio::spawn(async move { call(&client, i).await })
        })
        .collect();
    for (i, handle) in calls.into_iter().enumerate() {
        let result = handle.await.unwrap();
        assert_eq!(result.unwrap()["client"], "hd-1", "call {i}");
    }
    let (a, b) = (
        first_sink.seen.lock().unwrap().len(),
        second_sink.seen.lock().unwrap().len(),
    );
    assert_eq!(a + b, 60, "each call ran once");
    assert!(a > 0 && b > 0, "both live nodes served calls: {a} and {b}");

    // The first node dies (its server task and every connection of it gone): later calls all
    // succeed on the second.
    let _ = first.stop.take().unwrap().send(());
    first.handle.task.abort();
    let _ = (&mut first.handle.task).await;
    let before = second_sink.seen.lock().unwrap().len();
    for i in 100..120 {
        assert_eq!(
            call(&client, i).await.unwrap()["client"],
            "hd-1",
            "call {i}"
        );
    }
    assert_eq!(second_sink.seen.lock().unwrap().len(), before + 20);
}
