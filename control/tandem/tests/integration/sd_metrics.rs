//! `sd` serves `/metrics` (Prometheus text), `/healthz` and `/readyz` when its settings name a
//! metrics address, and the counters move with the traffic.
#![allow(clippy::unwrap_used)]

use tandem_testkit::metrics::{get, parse_prometheus, sample};
use tandem_testkit::sd;

use crate::support::sd_process::*;
use sd::*;

#[tokio::test]
async fn metrics_health_and_readiness_are_served_and_count_the_traffic() {
    let dir = tempfile::tempdir().unwrap();
    let (pki, role) = file_store_role(dir.path(), "metrics:\n  bind_address: \"127.0.0.1:0\"\n");
    let (mut child, addrs) = spawn_sd_with(&role, &["sd listening", "metrics listening"]);
    let (rpc_addr, metrics_addr) = (addrs[0], addrs[1]);

    assert_eq!(get(metrics_addr, "/healthz").await.0, 200);
    assert_eq!(get(metrics_addr, "/readyz").await.0, 200);
    let c = client(&pki, rpc_addr, "hd-1");
    let chain = admin_chain(
        &pki,
        "",
        vec![
            certificates_record(&pki, "hd-1"),
            groups_record("hd-1", &["a"]),
        ],
    );
    c.submit(&chain).await.unwrap();
    let stale = admin_chain(&pki, &chain[0].hash, vec![groups_record("hd-1", &["b"])]);
    let _ = c.submit(&stale).await.unwrap_err();
    c.tip().await.unwrap();

    let (status, text) = get(metrics_addr, "/metrics").await;
    assert_eq!(status, 200);
    let samples = parse_prometheus(&text);
    assert_eq!(sample(&samples, "sd_chain_records"), 2.0);
    assert_eq!(sample(&samples, "sd_entries"), 1.0);
    assert_eq!(
        sample(&samples, r#"sd_submissions_total{outcome="ok"}"#),
        1.0
    );
    assert_eq!(
        sample(&samples, r#"sd_submissions_total{outcome="stale"}"#),
        1.0
    );
    assert_eq!(
        sample(
            &samples,
            r#"sd_rpc_calls_total{method="submitRecords",outcome="409"}"#
        ),
        1.0
    );
    assert_eq!(
        sample(
            &samples,
            r#"sd_rpc_calls_total{method="getTip",outcome="ok"}"#
        ),
        1.0
    );
    assert!(sample(&samples, "sd_datastore_append_seconds_count") >= 1.0);
    assert_eq!(get(metrics_addr, "/nothing").await.0, 404);
    child.kill();
}
