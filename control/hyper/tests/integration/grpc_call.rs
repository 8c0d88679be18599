//! gRPC `Call` over mTLS between a `grpc_client` and a `GrpcServer`: the round trip, identity checks
//! (pinning, CA, clientName), channel reuse and the 4 MiB bound.

#![allow(clippy::unwrap_used)]

use tandem_testkit::grpc;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use grpc::*;
use serde_json::json;
use tandem_hyper::broker::types::{Address, Channel};
use tandem_proto::hyper as pb;
use tandem_testkit::pki::TestPki;
use tonic::Code;

const CALL_MS: u64 = 10_000;

/// hd-2 serves with an echo sink; the directory knows hd-1, hd-2 (at the server) and hd-3.
async fn setup(
    pki: &TestPki,
) -> (
    Server,
    Arc<EchoSink>,
    Arc<dyn tandem_hyper::broker::types::DirectorySource>,
) {
    let (listener, addr) = bind().await;
    let dir = directory(vec![
        entry(pki, "hd-1", "g", None),
        entry(pki, "hd-2", "g", Some(json!({"address": addr}))),
        entry(pki, "hd-3", "g", None),
    ]);
    let sink = Arc::new(EchoSink::default());
    let server = start_server(pki, "hd-2", listener, dir.clone(), sink.clone(), CALL_MS);
    (server, sink, dir)
}

#[tokio::test]
async fn call_round_trip_over_mtls_carries_params_and_the_callers_name() {
    let tmp = tempfile::tempdir().unwrap();
    let pki = pki(tmp.path());
    let (_server, sink, dir) = setup(&pki).await;
    let client = client_as(&pki, "hd-1", "hd-1", dir.clone(), CALL_MS);
    let hd2 = entry(&pki, "hd-2", "g", Some(json!({"address": "x:1"})));
    assert!(client.can_deliver_to(&Address::parse("hd-2.echo(1)").unwrap(), &hd2));
    assert!(
        !client.can_deliver_to(&Address::parse("hd-1.echo(1)").unwrap(), &hd2),
        "never to self"
    );

    let params = json!({"x": 1, "list": [true, null, "s"], "_client": {"name": "hd-1"}});
    let response = client
        .deliver(request("hd-2", "echo", "1", params.clone()), me("hd-1"))
        .await
        .expect("delivered");
    assert_eq!(response.id, "hd-2.echo(1)");
    assert!(response.error.is_none());
    let result = response.result.expect("result");
    assert_eq!(result["method"], "hd-2.echo");
    assert_eq!(
        result["client"], "hd-1",
        "the server took the caller from its certificate"
    );
    let mut sent = params.clone();
    sent.as_object_mut().unwrap().remove("_client");
    assert_eq!(
        result["params"], sent,
        "params arrive whole but for the sender's _client, which the receiving broker sets itself"
    );
    let seen = sink.seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].request.client_name, "hd-1");
    assert_eq!(seen[0].request.id, "hd-2.echo(1)");
}

#[tokio::test]
async fn many_calls_share_one_tcp_connection() {
    let tmp = tempfile::tempdir().unwrap();
    let pki = pki(tmp.path());
    // The directory points at a listener of ours that counts connections and injects them.
    let (counting, addr) = bind().await;
    let (listener, _) = bind().await;
    let dir = directory(vec![
        entry(&pki, "hd-1", "g", None),
        entry(&pki, "hd-2", "g", Some(json!({"address": addr}))),
    ]);
    let server = start_server(
        &pki,
        "hd-2",
        listener,
        dir.clone(),
        Arc::new(EchoSink::default()),
        CALL_MS,
    );
    let accepted = Arc::new(AtomicUsize::new(0));
    let (inject, count) = (server.handle.inject.clone(), accepted.clone());
    let acceptor = tokio::spawn(async move {
        while let Ok((stream, _)) = counting.accept().await {
            count.fetch_add(1, Ordering::SeqCst);
            inject.inject(stream).await.expect("injected");
        }
    });
    let client = client_as(&pki, "hd-1", "hd-1", dir, CALL_MS);
    for round in 0..5 {
        let calls = (0..20).map(|i| {
            let client = client.clone();
            async move {
                let id = format!("{round}-{i}");
                client
                    .deliver(request("hd-2", "echo", &id, json!({})), me("hd-1"))
                    .await
            }
        });
        for result in futures_join_all(calls).await {
            assert!(result.expect("delivered").error.is_none());
        }
    }
    assert_eq!(
        accepted.load(Ordering::SeqCst),
        1,
        "100 calls, one TCP connection"
    );
    assert_eq!(client.cached_peers(), vec!["hd-2".to_string()]);
    acceptor.abort();
}

async fn futures_join_all<F>(futures: impl Iterator<Item = F>) -> Vec<F::Output>
where
    F: std::future::Future + Send + 'static,
    F::Output: Send + 'static,
{
    let handles: Vec<_> = futures.map(tokio::spawn).collect();
    let mut out = Vec::with_capacity(handles.len());
    for h in handles {
        out.push(h.await.expect("task"));
    }
    out
}

#[tokio::test]
async fn client_name_must_be_a_name_of_the_peer_certificate() {
    let tmp = tempfile::tempdir().unwrap();
    let pki = pki(tmp.path());
    let (server, sink, dir) = setup(&pki).await;
    // Our channel: operator hd-1 presenting hd-3's (valid, pinned) certificate.
    let impostor = client_as(&pki, "hd-1", "hd-3", dir.clone(), CALL_MS);
    let err = impostor
        .deliver(request("hd-2", "echo", "1", json!({})), me("hd-1"))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), "channel");
    assert!(err.to_string().contains("no matching client"), "{err}");
    // The same certificate under its own name is fine.
    let honest = client_as(&pki, "hd-3", "hd-3", dir.clone(), CALL_MS);
    let ok = honest
        .deliver(request("hd-2", "echo", "2", json!({})), me("hd-3"))
        .await
        .unwrap();
    assert_eq!(ok.result.unwrap()["client"], "hd-3");

    // A raw client with hd-1's certificate: another name is refused, an empty name means hd-1.
    let mut raw = raw_client(&pki.tls_settings("hd-1"), &server.addr(), "hd-2").await;
    let status = raw
        .call(pb::Request {
            method: "hd-2.echo".into(),
            id: "hd-2.echo(3)".into(),
            client_name: "hd-2".into(),
            params: None,
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied);
    assert_eq!(status.message(), "no matching client");
    let response = raw
        .call(pb::Request {
            method: "hd-2.echo".into(),
            id: "hd-2.echo(4)".into(),
            client_name: String::new(),
            params: None,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(response.id, "hd-2.echo(4)");
    let seen = sink.seen.lock().unwrap().clone();
    assert_eq!(
        seen.iter().map(|s| s.client.as_str()).collect::<Vec<_>>(),
        ["hd-3", "hd-1"]
    );
}

#[tokio::test]
async fn unpinned_and_foreign_ca_certificates_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let pki = pki(tmp.path());
    let foreign_tmp = tempfile::tempdir().unwrap();
    let foreign = TestPki::generate(foreign_tmp.path(), &["hd-1"]).unwrap();
    let (listener, addr) = bind().await;
    // The directory even pins the foreign hd-1 certificate: the CA check alone must refuse it.
    let mut foreign_pinned = entry(&pki, "hd-1", "g", None);
    foreign_pinned
        .certificates
        .push(tandem_directory::entry::OperatorCertificate {
            fingerprint: foreign.fingerprint("hd-1").unwrap().to_owned(),
            key_usage: "encryption".into(),
        });
    let dir = directory(vec![
        foreign_pinned,
        entry(&pki, "hd-2", "g", Some(json!({"address": addr}))),
    ]);
    let sink = Arc::new(EchoSink::default());
    let _server = start_server(&pki, "hd-2", listener, dir.clone(), sink.clone(), CALL_MS);

    // hd-1's alternative certificate: right CA, right names, not pinned.
    let mut alt = pki.tls_settings("hd-1");
    alt.certificate_file = Some(pki.alt_cert("hd-1"));
    alt.key_file = Some(pki.alt_key("hd-1"));
    // A certificate from another CA (trusting our root so that only the server can refuse).
    let mut foreign_tls = foreign.tls_settings("hd-1");
    foreign_tls.ca_certificate_files = vec![pki.root_cert()];
    for tls in [alt, foreign_tls] {
        let settings = tandem_settings::hyper::GrpcClientSettings {
            tls,
            use_proxy: true,
        };
        let client =
            tandem_hyper::grpc::GrpcClient::new(&settings, "hd-1", timeouts(CALL_MS), dir.clone())
                .unwrap();
        let err = client
            .deliver(request("hd-2", "echo", "1", json!({})), me("hd-1"))
            .await
            .unwrap_err();
        assert_eq!(err.kind(), "channel", "{err}");
    }
    assert!(
        sink.seen.lock().unwrap().is_empty(),
        "nothing reached the broker"
    );
}

#[tokio::test]
async fn a_server_certificate_not_bound_to_the_operator_is_refused_by_the_client() {
    let tmp = tempfile::tempdir().unwrap();
    let pki = pki(tmp.path());
    let (listener, addr) = bind().await;
    let dir = directory(vec![
        entry(&pki, "hd-1", "g", None),
        entry(&pki, "hd-2", "g", Some(json!({"address": addr}))),
    ]);
    let mut settings = server_settings(&pki, "hd-2");
    settings.tls.certificate_file = Some(pki.alt_cert("hd-2"));
    settings.tls.key_file = Some(pki.alt_key("hd-2"));
    let sink = Arc::new(EchoSink::default());
    let _server = start_server_with(
        settings,
        "hd-2",
        listener,
        dir.clone(),
        sink.clone(),
        CALL_MS,
    );
    let client = client_as(&pki, "hd-1", "hd-1", dir, CALL_MS);
    let err = client
        .deliver(request("hd-2", "echo", "1", json!({})), me("hd-1"))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), "channel");
    assert!(sink.seen.lock().unwrap().is_empty());
}

#[tokio::test]
async fn messages_over_4_mib_are_refused_and_later_calls_still_work() {
    let tmp = tempfile::tempdir().unwrap();
    let pki = pki(tmp.path());
    let (server, sink, dir) = setup(&pki).await;
    let big = "x".repeat(tandem_proto::MAX_MESSAGE_BYTES + 1024);
    let client = client_as(&pki, "hd-1", "hd-1", dir, CALL_MS);
    let result = client
        .deliver(
            request("hd-2", "echo", "big", json!({ "big": big })),
            me("hd-1"),
        )
        .await;
    let kind = result.as_ref().map(|_| "ok").map_err(|e| e.kind());
    assert_eq!(kind, Err("channel"), "our client refuses to send it");
    // A peer without that bound: the server refuses to read it.
    let mut raw = raw_client(&pki.tls_settings("hd-1"), &server.addr(), "hd-2")
        .await
        .max_encoding_message_size(usize::MAX);
    let params = obj(json!({ "big": big }));
    let status = raw
        .call(pb::Request {
            method: "hd-2.echo".into(),
            id: "hd-2.echo(big)".into(),
            client_name: "hd-1".into(),
            params: Some(params),
        })
        .await
        .unwrap_err();
    assert!(
        matches!(status.code(), Code::OutOfRange | Code::ResourceExhausted),
        "{status:?}"
    );
    // Just under the bound passes both ways, on the same channel.
    let fits = "y".repeat(tandem_proto::MAX_MESSAGE_BYTES - 64 * 1024);
    let response = client
        .deliver(
            request("hd-2", "echo", "fits", json!({ "fits": fits })),
            me("hd-1"),
        )
        .await;
    let echoed = response.map(|r| r.result.map(|m| m["params"]["fits"].as_str().map(str::len)));
    assert_eq!(
        echoed,
        Ok(Some(Some(fits.len()))),
        "a message just under 4 MiB round-trips"
    );
    let ok = client
        .deliver(request("hd-2", "echo", "small", json!({})), me("hd-1"))
        .await
        .unwrap();
    assert!(ok.error.is_none());
    assert_eq!(
        sink.seen.lock().unwrap().len(),
        2,
        "the oversized requests never reached the broker"
    );
}
