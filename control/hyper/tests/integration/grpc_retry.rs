//! The `grpc_client`'s transparent retry against a scripted HTTP/2 server over real TLS sockets
//! (`h2_front`): a try the server provably did not process (a refused stream, a GOAWAY above its
//! last processed stream) is sent again on the same node, a bounded number of times; a stream reset
//! after the server read the request is not, and the error reaches the caller.

use std::sync::Arc;
use std::time::{Duration, Instant};

use h2::Reason;
use serde_json::json;
use tandem_hyper::broker::types::{Channel, DeliveryError, DirectorySource, HyperResponse};
use tandem_hyper::grpc::{GrpcClient, MAX_TRANSPARENT_RETRIES, convert};
use tandem_testkit::grpc::*;
use tandem_testkit::pki::TestPki;

use super::h2_front::{self, Act, Front};

/// A generous call deadline: these tests end by the server's answers, never by it.
const CALL_MS: u64 = 30_000;

/// hd-1's client and the directory pointing hd-2 at `front`.
fn client(pki: &TestPki, front: &Front) -> Arc<GrpcClient> {
    let dir: Arc<dyn DirectorySource> = directory(vec![
        entry(pki, "hd-1", "g", None),
        entry(pki, "hd-2", "g", Some(json!({"address": front.addr}))),
    ]);
    client_as(pki, "hd-1", "hd-1", dir, CALL_MS)
}

async fn call(client: &GrpcClient, id: &str) -> Result<HyperResponse, DeliveryError> {
    let request = request("hd-2", "echo", id, json!({"k": [1, "v"]}));
    client.deliver(request, me("hd-1")).await
}

fn answered(response: &HyperResponse) -> bool {
    let result = response.result.as_ref().expect("a result");
    result["answered"] == json!("hd-2.echo") && response.error.is_none()
}

#[tokio::test]
async fn a_refused_stream_is_sent_again_on_the_same_node_and_answered() {
    let tmp = tempfile::tempdir().unwrap();
    let pki = pki(tmp.path());
    let front = h2_front::start(&pki, vec![Act::Refuse, Act::Refuse, Act::Answer]).await;
    let client = client(&pki, &front);
    let response = call(&client, "1")
        .await
        .expect("answered after two refusals");
    assert!(answered(&response), "{response:?}");
    assert_eq!(response.id, "hd-2.echo(1)");
    assert_eq!(front.streams(), 3, "two refused tries and the answered one");
    assert_eq!(client.transparent_retries(), 2);
    // The retries resent the same request: the answered try carries the whole message.
    assert_eq!(front.messages().len(), 1);
}

#[tokio::test]
async fn a_stream_reset_after_the_request_was_read_is_not_sent_again() {
    let tmp = tempfile::tempdir().unwrap();
    let pki = pki(tmp.path());
    for reason in [Reason::CANCEL, Reason::INTERNAL_ERROR] {
        let script = vec![Act::ResetAfterRead(reason), Act::Answer];
        let front = h2_front::start(&pki, script).await;
        let client = client(&pki, &front);
        let err = call(&client, "1")
            .await
            .expect_err("the reset reaches the caller");
        assert_eq!(err.kind(), "channel", "{reason:?}: {err}");
        assert_eq!(
            front.streams(),
            1,
            "{reason:?}: the call may have run: one try"
        );
        assert_eq!(client.transparent_retries(), 0, "{reason:?}");
    }
}

#[tokio::test]
async fn a_server_refusing_every_stream_gets_a_bounded_number_of_tries() {
    let tmp = tempfile::tempdir().unwrap();
    let pki = pki(tmp.path());
    let front = h2_front::start(&pki, vec![Act::Refuse]).await;
    let client = client(&pki, &front);
    let err = call(&client, "1").await.expect_err("refused every time");
    // A clear error of the channel, not the deadline (30 s) running out.
    assert_eq!(err.kind(), "channel", "{err}");
    assert!(err.to_string().contains("hd-2 unavailable"), "{err}");
    let tries = 1 + MAX_TRANSPARENT_RETRIES as usize;
    assert_eq!(front.streams(), tries);
    assert_eq!(
        client.transparent_retries(),
        u64::from(MAX_TRANSPARENT_RETRIES)
    );
    // The next call gets its own bounded tries: the node is not marked unusable.
    call(&client, "2").await.expect_err("refused again");
    assert_eq!(front.streams(), 2 * tries);
}

#[tokio::test]
async fn a_slowly_refusing_server_is_cut_off_by_the_call_deadline() {
    let tmp = tempfile::tempdir().unwrap();
    let pki = pki(tmp.path());
    // Each refusal takes 400 ms; the call has 1 s: no more tries than the bound, and the caller
    // gets its timeout, not a retry past the deadline.
    let front = h2_front::start(&pki, vec![Act::RefuseAfter(400)]).await;
    let dir: Arc<dyn DirectorySource> = directory(vec![
        entry(&pki, "hd-1", "g", None),
        entry(&pki, "hd-2", "g", Some(json!({"address": front.addr}))),
    ]);
    let client = client_as(&pki, "hd-1", "hd-1", dir, 1_000);
    let started = Instant::now();
    let err = call(&client, "1").await.expect_err("never answered");
    assert_eq!(err.kind(), "timeout", "{err}");
    assert!(
        started.elapsed() >= Duration::from_millis(990),
        "{:?}",
        started.elapsed()
    );
    // Generous for a loaded machine: the cut-off is the deadline, not the server.
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "{:?}",
        started.elapsed()
    );
    let tries = front.streams();
    assert!((1..=3).contains(&tries), "{tries}");
    assert!(client.transparent_retries() <= u64::from(MAX_TRANSPARENT_RETRIES));
}

#[tokio::test]
async fn a_goaway_before_the_stream_was_processed_is_sent_again_on_a_new_connection() {
    let tmp = tempfile::tempdir().unwrap();
    let pki = pki(tmp.path());
    let front = h2_front::start(&pki, vec![Act::GoAway, Act::Answer]).await;
    let client = client(&pki, &front);
    let response = call(&client, "1")
        .await
        .expect("answered on the new connection");
    assert!(answered(&response), "{response:?}");
    let seen = front.seen.lock().unwrap().clone();
    assert_eq!(seen.first().map(|s| s.act), Some(Act::GoAway), "{seen:?}");
    assert_eq!(
        seen.iter().filter(|s| s.act == Act::Answer).count(),
        1,
        "answered once: {seen:?}"
    );
    // One retry at least (a second one if it raced the closing connection), within the bound.
    let retries = client.transparent_retries();
    assert!(
        (1..=u64::from(MAX_TRANSPARENT_RETRIES)).contains(&retries),
        "{retries}"
    );
}

#[tokio::test]
async fn the_encoded_request_is_what_the_generated_client_sends() {
    let tmp = tempfile::tempdir().unwrap();
    let pki = pki(tmp.path());
    let front = h2_front::start(&pki, vec![Act::Answer]).await;
    let client = client(&pki, &front);
    let response = call(&client, "1").await.unwrap();
    assert!(answered(&response), "{response:?}");
    // The same request through the generated `HyperClient`, as the channel builds it.
    let mut generated = raw_client(&pki.tls_settings("hd-1"), &front.addr, "hd-2").await;
    let mut same = request("hd-2", "echo", "1", json!({"k": [1, "v"]}));
    same.client_name = "hd-1".into();
    generated
        .call(convert::request_to_pb(same))
        .await
        .expect("answered");
    let seen = front.seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 2);
    assert_eq!(seen[0].path, "/Hyper/Call");
    assert_eq!(seen[1].path, "/Hyper/Call");
    let (ours, theirs) = (seen[0].message.clone(), seen[1].message.clone());
    assert!(ours.as_ref().is_some_and(|m| !m.is_empty()));
    assert_eq!(ours, theirs, "byte for byte");
}

#[tokio::test]
async fn an_oversized_request_is_not_sent_nor_retried() {
    let tmp = tempfile::tempdir().unwrap();
    let pki = pki(tmp.path());
    let front = h2_front::start(&pki, vec![Act::Answer]).await;
    let client = client(&pki, &front);
    let big = "x".repeat(tandem_hyper::grpc::MAX_MESSAGE_BYTES);
    let request = request("hd-2", "echo", "1", json!({ "big": big }));
    let err = client.deliver(request, me("hd-1")).await.unwrap_err();
    assert_eq!(err.kind(), "channel", "{err}");
    assert!(err.to_string().contains("too large"), "{err}");
    assert!(front.messages().is_empty(), "no message reached the server");
    assert_eq!(client.transparent_retries(), 0);
}
