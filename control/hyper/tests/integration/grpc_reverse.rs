//! Reverse `ServerCall` streams: an operator that cannot be dialed (hd-2, proxied) keeps a stream open
//! to hd-1, which pushes calls down it, many at once, matched by id.
#![allow(clippy::unwrap_used)]

use tandem_testkit::grpc;

use std::sync::Arc;
use std::time::{Duration, Instant};

use grpc::*;
use serde_json::json;
use tandem_directory::entry::DirectoryEntry;
use tandem_hyper::broker::types::{
    Address, BoxFuture, Channel, DeliveryError, DirectorySource, HyperRequest, HyperResponse,
    RequestSink,
};
use tandem_testkit::pki::TestPki;
use tokio::sync::{Barrier, oneshot};
use tokio::task::JoinHandle;

const CALL_MS: u64 = 10_000;
const WAIT: Duration = Duration::from_secs(10);

/// Answers only once `n` requests are in flight at the same time.
struct BarrierSink(Barrier);

impl RequestSink for BarrierSink {
    fn deliver_request(
        &self,
        request: HyperRequest,
        caller: tandem_types::OperatorName,
    ) -> BoxFuture<'_, Result<HyperResponse, DeliveryError>> {
        Box::pin(async move {
            self.0.wait().await;
            let result = json!({"i": request.params["i"], "client": caller});
            Ok(HyperResponse::result(request.id, obj(result)))
        })
    }
}

struct Mesh {
    server: Server,
    hd2: DirectoryEntry,
    stop: Option<oneshot::Sender<()>>,
    reverse_task: JoinHandle<()>,
}

/// hd-1 serves publicly; hd-2 is only reachable through a proxy and lets hd-1's group call `work`,
/// so hd-2 dials hd-1 and keeps a reverse stream, answering with `sink`.
async fn mesh(pki: &TestPki, sink: Arc<dyn RequestSink>) -> Mesh {
    let (listener, addr) = bind().await;
    let hd1 = entry(pki, "hd-1", "callers", Some(json!({"address": addr})));
    let mut hd2 = entry(
        pki,
        "hd-2",
        "workers",
        Some(json!({"address": "127.0.0.1:1", "proxy": "some-proxy"})),
    );
    allow(&mut hd2, "callers", "work");
    let dir: Arc<dyn DirectorySource> = directory(vec![hd1, hd2.clone()]);
    let server = start_server(
        pki,
        "hd-1",
        listener,
        dir.clone(),
        Arc::new(EchoSink::default()),
        CALL_MS,
    );
    let client = client_as(pki, "hd-2", "hd-2", dir, CALL_MS);
    let (stop, stopped) = oneshot::channel();
    let reverse_task = client.start_reverse_streams(sink, async move {
        let _ = stopped.await;
    });
    assert!(
        server.handle.reverse.wait_for("hd-2", WAIT).await,
        "hd-2 announced itself"
    );
    Mesh {
        server,
        hd2,
        stop: Some(stop),
        reverse_task,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_reverse_stream_carries_100_concurrent_calls() {
    let tmp = tempfile::tempdir().unwrap();
    let pki = pki(tmp.path());
    let mut mesh = mesh(&pki, Arc::new(BarrierSink(Barrier::new(100)))).await;
    let reverse = mesh.server.handle.reverse.clone();
    assert_eq!(reverse.connected(), vec!["hd-2".to_string()]);
    assert!(reverse.can_deliver_to(&Address::parse("hd-2.work(1)").unwrap(), &mesh.hd2));
    assert!(!reverse.can_deliver_to(&Address::parse("hd-3.work(1)").unwrap(), &mesh.hd2));

    let calls: Vec<_> = (0..100)
        .map(|i| {
            let reverse = reverse.clone();
            tokio::spawn(async move {
                reverse
                    .deliver(
                        request("hd-2", "work", &i.to_string(), json!({ "i": i })),
                        me("hd-1"),
                    )
                    .await
            })
        })
        .collect();
    // The barrier only opens with all 100 in flight: one-at-a-time streams would time out here.
    for (i, call) in calls.into_iter().enumerate() {
        let response = call.await.unwrap().expect("answered");
        assert_eq!(response.id, format!("hd-2.work({i})"));
        let result = response.result.unwrap();
        assert_eq!(result["i"], i, "answers are matched to their calls by id");
        assert_eq!(
            result["client"], "hd-1",
            "pushed requests come from the server's operator"
        );
    }

    mesh.stop.take().unwrap().send(()).unwrap();
    mesh.reverse_task.await.unwrap();
    assert!(
        reverse.wait_gone("hd-2", WAIT).await,
        "the stream ends with the client"
    );
    let err = reverse
        .deliver(request("hd-2", "work", "late", json!({})), me("hd-1"))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), "channel");
}

#[tokio::test]
async fn losing_the_stream_fails_pending_calls_at_once() {
    let tmp = tempfile::tempdir().unwrap();
    let pki = pki(tmp.path());
    let hang = Arc::new(HangSink::default());
    let mut mesh = mesh(&pki, hang.clone()).await;
    let reverse = mesh.server.handle.reverse.clone();
    let started = Instant::now();
    let call = tokio::spawn(async move {
        reverse
            .deliver(request("hd-2", "work", "1", json!({})), me("hd-1"))
            .await
    });
    hang.arrived.notified().await;
    mesh.stop.take().unwrap().send(()).unwrap();
    mesh.reverse_task.await.unwrap();
    let err = call.await.unwrap().unwrap_err();
    // Failed on stream loss, not on the deadline: a deadline would be kind "timeout".
    assert_eq!(err.kind(), "channel", "{err}");
    assert!(
        started.elapsed() < Duration::from_millis(CALL_MS),
        "failed before the deadline"
    );
}

#[tokio::test]
async fn a_silent_reverse_client_times_out_within_the_deadline() {
    let tmp = tempfile::tempdir().unwrap();
    let pki = pki(tmp.path());
    let hang = Arc::new(HangSink::default());
    let (listener, addr) = bind().await;
    let hd1 = entry(&pki, "hd-1", "callers", Some(json!({"address": addr})));
    let mut hd2 = entry(&pki, "hd-2", "workers", None);
    allow(&mut hd2, "callers", "work");
    let dir = directory(vec![hd1, hd2]);
    let server = start_server(
        &pki,
        "hd-1",
        listener,
        dir.clone(),
        Arc::new(EchoSink::default()),
        300,
    );
    let client = client_as(&pki, "hd-2", "hd-2", dir, CALL_MS);
    let _task = client.start_reverse_streams(hang, std::future::pending());
    assert!(server.handle.reverse.wait_for("hd-2", WAIT).await);
    let started = Instant::now();
    let err = server
        .handle
        .reverse
        .deliver(request("hd-2", "work", "1", json!({})), me("hd-1"))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), "timeout");
    // The 300 ms deadline fired (the client never answers); the bound only catches a hang.
    assert!(started.elapsed() < Duration::from_secs(20));
}

#[tokio::test]
async fn a_reverse_announcement_must_name_the_certificate_operator() {
    use tandem_proto::hyper as pb;
    let tmp = tempfile::tempdir().unwrap();
    let pki = pki(tmp.path());
    let (listener, addr) = bind().await;
    let dir = directory(vec![
        entry(&pki, "hd-1", "g", Some(json!({"address": addr}))),
        entry(&pki, "hd-2", "g", None),
        entry(&pki, "hd-3", "g", None),
    ]);
    let server = start_server(
        &pki,
        "hd-1",
        listener,
        dir,
        Arc::new(EchoSink::default()),
        CALL_MS,
    );
    let open = |announced: Option<&'static str>| {
        let (tls, addr) = (pki.tls_settings("hd-2"), server.addr());
        async move {
            let mut raw = raw_client(&tls, &addr, "hd-1").await;
            let first = match announced {
                Some(name) => tandem_hyper::grpc::convert::announcement(name),
                None => pb::Response {
                    id: "1".into(),
                    ..Default::default()
                },
            };
            // Keep the request stream open after the announcement, as a real client does.
            let messages = tokio_stream::iter(vec![first]).chain(tokio_stream::pending());
            raw.server_call(messages).await
        }
    };
    use tokio_stream::StreamExt as _;
    let status = open(Some("hd-3")).await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::PermissionDenied);
    assert_eq!(status.message(), "invalid client name supplied");
    let status = open(None).await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::InvalidArgument);
    assert!(server.handle.reverse.connected().is_empty());
    let _stream = open(Some("hd-2")).await.expect("its own name is accepted");
    assert!(server.handle.reverse.wait_for("hd-2", WAIT).await);
}
