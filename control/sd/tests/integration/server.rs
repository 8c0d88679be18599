//! The directory server over real mTLS and a real file datastore: submissions, reads, refusals.
#![allow(clippy::unwrap_used)]

use tandem_testkit::sd;

use std::sync::Arc;

use sd::*;
use serde_json::json;
use tandem_net::jsonrpc::{INVALID_PARAMS, METHOD_NOT_FOUND, NOT_FOUND, params};
use tandem_sd::STALE_APPEND;
use tandem_testkit::pki::TestPki;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

async fn fixture() -> (tempfile::TempDir, TestPki, Sd) {
    let dir = tempfile::tempdir().unwrap();
    let pki = TestPki::generate(&dir.path().join("pki"), OPS).unwrap();
    let sd = start(settings(&pki, file_store(dir.path()), None)).await;
    (dir, pki, sd)
}

/// Loads a root chain: hd-1's and hd-2's certificates, then hd-2's groups. Returns the chain.
async fn seed(pki: &TestPki, sd: &Sd) -> Vec<tandem_directory::SignedChangeRecord> {
    let records = vec![
        certificates_record(pki, "hd-1"),
        certificates_record(pki, "hd-2"),
        groups_record("hd-2", &["health-departments"]),
    ];
    let chain = admin_chain(pki, "", records);
    client(pki, sd.addr, "hd-1").submit(&chain).await.unwrap();
    chain
}

#[tokio::test]
async fn submitted_records_are_served_incrementally_and_as_entries() {
    let (_dir, pki, sd) = fixture().await;
    let c = client(&pki, sd.addr, "hd-2");
    assert!(
        c.tip().await.unwrap().is_none(),
        "an empty directory has no tip"
    );
    let chain = seed(&pki, &sd).await;
    assert_eq!(c.tip().await.unwrap().unwrap().hash, chain[2].hash);
    assert_eq!(hashes(&c.records_after("").await.unwrap()), hashes(&chain));
    assert_eq!(
        hashes(&c.records_after(&chain[0].hash).await.unwrap()),
        hashes(&chain[1..])
    );
    assert!(c.records_after(&chain[2].hash).await.unwrap().is_empty());
    let unknown = "ab".repeat(32);
    assert_eq!(
        c.records_after(&unknown).await.unwrap().len(),
        3,
        "unknown `after` gives the whole chain"
    );
    let entry = c.entry("hd-2").await.unwrap();
    assert_eq!(entry.groups, vec!["health-departments".to_string()]);
    let names: Vec<String> = c
        .entries()
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.name)
        .collect();
    assert_eq!(names, vec!["hd-1".to_string(), "hd-2".to_string()]);
    sd.stop().await;
}

#[tokio::test]
async fn unknown_entries_methods_and_bad_params_get_their_codes() {
    let (_dir, pki, sd) = fixture().await;
    let rpc = rpc(&pki, sd.addr, "hd-1");
    let code = |r: Result<serde_json::Value, tandem_net::http::ClientError>| match r.unwrap_err() {
        tandem_net::http::ClientError::Rpc { error, .. } => error.code,
        other => panic!("expected a JSON-RPC error, got {other}"),
    };
    assert_eq!(
        code(
            rpc.call("getEntry", params([("name", json!("nobody"))]))
                .await
        ),
        NOT_FOUND
    );
    assert_eq!(code(rpc.call("getEntry", params([])).await), INVALID_PARAMS);
    assert_eq!(code(rpc.call("fooBar", params([])).await), METHOD_NOT_FOUND);
    assert_eq!(
        code(
            rpc.call("getRecords", params([("after", json!("XYZ"))]))
                .await
        ),
        INVALID_PARAMS
    );
    assert_eq!(
        code(
            rpc.call("submitRecords", params([("records", json!("no"))]))
                .await
        ),
        INVALID_PARAMS
    );
    assert_eq!(
        code(
            rpc.call("submitRecords", params([("records", json!([{"x": 1}]))]))
                .await
        ),
        INVALID_PARAMS
    );
    sd.stop().await;
}

#[tokio::test]
async fn refused_records_change_nothing_in_the_store() {
    let (dir, pki, sd) = fixture().await;
    let chain = seed(&pki, &sd).await;
    let tip = chain[2].hash.clone();
    let c = client(&pki, sd.addr, "hd-1");

    let mut wrong_hash = admin_chain(&pki, &tip, vec![groups_record("hd-1", &["a"])]);
    wrong_hash[0].hash = "00".repeat(32);
    let mut bad_signature = admin_chain(&pki, &tip, vec![groups_record("hd-1", &["b"])]);
    bad_signature[0].signature.as_mut().unwrap().r = "1234567890123".into();
    let mut tampered = admin_chain(&pki, &tip, vec![groups_record("hd-1", &["c"])]);
    tampered[0].record.name = "hd-2".into();
    let not_admin = signer(&pki, "hd-2", false)
        .sign_chain(&tip, vec![groups_record("hd-1", &["d"])])
        .unwrap();
    // hd-1's signing key is pinned by the first record; its alternative key is refused.
    let pin_mismatch = signer(&pki, "hd-1", true)
        .sign_chain(&tip, vec![groups_record("hd-1", &["e"])])
        .unwrap();
    let foreign_pki = TestPki::generate(&dir.path().join("foreign"), OPS).unwrap();
    let foreign = signer(&foreign_pki, "hd-1", false)
        .sign_chain(&tip, vec![groups_record("hd-1", &["f"])])
        .unwrap();

    for (what, batch) in [
        ("wrong hash", wrong_hash),
        ("bad signature", bad_signature),
        ("tampered field", tampered),
        ("signer outside sd-admin", not_admin),
        ("pinned-key mismatch", pin_mismatch),
        ("foreign CA", foreign),
    ] {
        let err = c.submit(&batch).await.expect_err(what);
        assert_eq!(rpc_code(&err), Some(INVALID_PARAMS), "{what}: {err}");
    }
    let stale = admin_chain(&pki, &chain[1].hash, vec![groups_record("hd-1", &["g"])]);
    assert_eq!(
        rpc_code(&c.submit(&stale).await.unwrap_err()),
        Some(STALE_APPEND)
    );

    assert_eq!(
        hashes(&c.records_after("").await.unwrap()),
        hashes(&chain),
        "nothing was appended"
    );
    sd.stop().await;
    // The store itself holds exactly the three acknowledged records.
    let sd = start(settings(&pki, file_store(dir.path()), None)).await;
    assert_eq!(
        hashes(
            &client(&pki, sd.addr, "hd-1")
                .records_after("")
                .await
                .unwrap()
        ),
        hashes(&chain)
    );
    sd.stop().await;
}

#[tokio::test]
async fn concurrent_submitters_on_one_parent_exactly_one_wins() {
    let (_dir, pki, sd) = fixture().await;
    let chain = seed(&pki, &sd).await;
    let tip = chain[2].hash.clone();
    let pki = Arc::new(pki);
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..8 {
        let (pki, tip, addr) = (pki.clone(), tip.clone(), sd.addr);
        tasks.spawn(async move {
            let batch = admin_chain(&pki, &tip, vec![groups_record("hd-1", &[&format!("g{i}")])]);
            client(&pki, addr, "hd-1")
                .submit(&batch)
                .await
                .map(|()| batch[0].hash.clone())
        });
    }
    let mut winners = Vec::new();
    let mut stale = 0;
    while let Some(result) = tasks.join_next().await {
        match result.unwrap() {
            Ok(hash) => winners.push(hash),
            Err(e) => {
                assert_eq!(rpc_code(&e), Some(STALE_APPEND), "{e}");
                stale += 1;
            }
        }
    }
    assert_eq!(winners.len(), 1, "exactly one submission wins per parent");
    assert_eq!(stale, 7);
    let tip_now = client(&pki, sd.addr, "hd-1").tip().await.unwrap().unwrap();
    assert_eq!(tip_now.hash, winners[0]);
    assert_eq!(tip_now.parent_hash, tip);
    sd.stop().await;
}

#[tokio::test]
async fn a_reset_starts_a_new_chain_and_survives_a_restart() {
    let (dir, pki, sd) = fixture().await;
    seed(&pki, &sd).await;
    let reset = admin_chain(
        &pki,
        "",
        vec![
            certificates_record(&pki, "hd-1"),
            groups_record("hd-1", &["x"]),
        ],
    );
    let c = client(&pki, sd.addr, "hd-1");
    c.submit(&reset).await.unwrap();
    assert_eq!(hashes(&c.records_after("").await.unwrap()), hashes(&reset));
    assert_eq!(
        rpc_code(&c.entry("hd-2").await.unwrap_err()),
        Some(NOT_FOUND),
        "older chains are invisible"
    );
    sd.stop().await;
    let sd = start(settings(&pki, file_store(dir.path()), None)).await;
    let c = client(&pki, sd.addr, "hd-1");
    assert_eq!(
        hashes(&c.records_after("").await.unwrap()),
        hashes(&reset),
        "the newer root still wins"
    );
    sd.stop().await;
}

#[tokio::test]
async fn clients_need_a_certificate_from_our_ca() {
    let (dir, pki, sd) = fixture().await;
    let foreign = TestPki::generate(&dir.path().join("foreign"), OPS).unwrap();
    // A client certificate from another CA (the client trusts our root, so only the server can refuse it).
    let mut settings = foreign.client_tls_settings("hd-1", "sd-1");
    settings.ca_certificate_files = vec![pki.root_cert()];
    let tls = tandem_net::tls::client_config(&settings, &[]).unwrap();
    let rpc = tandem_net::http::JsonRpcClient::new(
        &format!("https://{}/jsonrpc", sd.addr),
        Some(tls),
        Some("sd-1"),
        std::time::Duration::from_secs(5),
    )
    .unwrap();
    let err = rpc.call("getTip", params([])).await.unwrap_err();
    assert_eq!(err.kind(), "transport", "{err}");
    // No client certificate at all.
    let mut anonymous = pki.client_tls_settings("hd-1", "sd-1");
    anonymous.certificate_file = None;
    anonymous.key_file = None;
    let tls = tandem_net::tls::client_config(&anonymous, &[]).unwrap();
    let rpc = tandem_net::http::JsonRpcClient::new(
        &format!("https://{}/jsonrpc", sd.addr),
        Some(tls),
        Some("sd-1"),
        std::time::Duration::from_secs(5),
    )
    .unwrap();
    assert_eq!(
        rpc.call("getTip", params([])).await.unwrap_err().kind(),
        "transport"
    );
    sd.stop().await;
}

/// Sends one raw HTTP/1.1 request over mTLS and returns the status and body.
async fn raw(pki: &TestPki, sd: &Sd, content_type: &str, body: &[u8]) -> (u16, String) {
    let connector = tokio_rustls::TlsConnector::from(raw_tls(pki, "hd-1"));
    let tcp = tokio::net::TcpStream::connect(sd.addr).await.unwrap();
    let name = rustls_pki_types::ServerName::try_from("sd-1").unwrap();
    let mut tls = connector.connect(name, tcp).await.unwrap();
    let head = format!(
        "POST /jsonrpc HTTP/1.1\r\nhost: sd-1\r\ncontent-type: {content_type}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        body.len()
    );
    tls.write_all(head.as_bytes()).await.unwrap();
    tls.write_all(body).await.unwrap();
    let mut out = Vec::new();
    let _ = tls.read_to_end(&mut out).await;
    let text = String::from_utf8_lossy(&out).to_string();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = text
        .split("\r\n\r\n")
        .nth(1)
        .unwrap_or_default()
        .to_string();
    (status, body)
}

#[tokio::test]
async fn malformed_and_oversized_requests_are_refused() {
    let (_dir, pki, sd) = fixture().await;
    let (status, body) = raw(&pki, &sd, "application/json", b"{not json").await;
    assert_eq!(status, 400);
    assert!(body.contains("-32700"), "{body}");
    let (status, body) = raw(
        &pki,
        &sd,
        "text/plain",
        br#"{"jsonrpc":"2.0","method":"getTip","params":{}}"#,
    )
    .await;
    assert_eq!(status, 400, "{body}");
    let (status, body) = raw(
        &pki,
        &sd,
        "application/json",
        br#"{"jsonrpc":"1.0","method":"getTip","params":{}}"#,
    )
    .await;
    assert_eq!(status, 400);
    assert!(body.contains("-32600"), "{body}");
    let huge = vec![b' '; 5 * 1024 * 1024];
    let (status, _) = raw(&pki, &sd, "application/json", &huge).await;
    assert_eq!(status, 413, "bodies over the 4 MiB bound are refused");
    let (status, body) = raw(
        &pki,
        &sd,
        "application/json",
        br#"{"jsonrpc":"2.0","method":"getTip","params":{},"id":7}"#,
    )
    .await;
    assert_eq!(status, 200);
    assert!(
        body.contains(r#""id":7"#),
        "integer ids come back as integers: {body}"
    );
    sd.stop().await;
}

#[tokio::test]
async fn clients_over_the_rate_limit_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let pki = TestPki::generate(&dir.path().join("pki"), OPS).unwrap();
    let sd = start(settings(&pki, file_store(dir.path()), Some(3))).await;
    let c = client(&pki, sd.addr, "hd-1");
    for _ in 0..3 {
        c.tip().await.unwrap();
    }
    let err = c.tip().await.unwrap_err();
    assert_eq!(
        rpc_code(&err),
        Some(tandem_net::jsonrpc::RATE_LIMITED),
        "{err}"
    );
    sd.stop().await;
}
