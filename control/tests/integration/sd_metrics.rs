//! `sd` serves `/metrics` (Prometheus text), `/healthz` and `/readyz` when its settings name a
//! metrics address, and the counters move with the traffic.
#![allow(clippy::unwrap_used)]

use crate::sd_common;

use std::io::{Read, Write};

use sd_common::*;
use tandem_control::certs::TestPki;

/// A plain HTTP GET; returns status and body.
fn get(addr: std::net::SocketAddr, path: &str) -> (u16, String) {
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n"
    )
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    let status = out.split(' ').nth(1).unwrap().parse().unwrap();
    (
        status,
        out.split("\r\n\r\n").nth(1).unwrap_or_default().to_owned(),
    )
}

/// Parses the Prometheus text format strictly enough to catch a malformed exposition, and returns
/// `(series, value)` pairs.
fn parse_prometheus(text: &str) -> Vec<(String, f64)> {
    let mut samples = Vec::new();
    for line in text.lines() {
        if line.is_empty()
            || line.starts_with("# HELP ")
            || line.starts_with("# TYPE ")
            || line == "# EOF"
        {
            continue;
        }
        assert!(!line.starts_with('#'), "unexpected comment line {line:?}");
        let (series, value) = line
            .rsplit_once(' ')
            .unwrap_or_else(|| panic!("no value in {line:?}"));
        let name_end = series.find('{').unwrap_or(series.len());
        let name = &series[..name_end];
        assert!(
            !name.is_empty()
                && name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':'),
            "bad metric name in {line:?}"
        );
        if name_end < series.len() {
            assert!(series.ends_with('}'), "unterminated labels in {line:?}");
        }
        let value: f64 = value
            .parse()
            .unwrap_or_else(|_| panic!("bad value in {line:?}"));
        samples.push((series.to_owned(), value));
    }
    samples
}

fn sample(samples: &[(String, f64)], series: &str) -> f64 {
    samples
        .iter()
        .find(|(s, _)| s == series)
        .map(|(_, v)| *v)
        .unwrap_or_else(|| panic!("{series} missing"))
}

#[tokio::test]
async fn metrics_health_and_readiness_are_served_and_count_the_traffic() {
    let dir = tempfile::tempdir().unwrap();
    let pki = TestPki::generate(&dir.path().join("pki"), OPS).unwrap();
    let store = format!(
        "    type: file\n    settings:\n      filename: \"{}\"",
        dir.path().join("sd.records").display()
    );
    let role = write_settings(
        dir.path(),
        &pki,
        &store,
        "metrics:\n  bind_address: \"127.0.0.1:0\"\n",
    );
    let (mut child, addrs) = spawn_sd_with(&role, &["sd listening", "metrics listening"]);
    let (rpc_addr, metrics_addr) = (addrs[0], addrs[1]);

    assert_eq!(get(metrics_addr, "/healthz").0, 200);
    assert_eq!(get(metrics_addr, "/readyz").0, 200);
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

    let (status, text) = get(metrics_addr, "/metrics");
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
    assert_eq!(get(metrics_addr, "/nothing").0, 404);
    child.kill().unwrap();
    child.wait().unwrap();
}
