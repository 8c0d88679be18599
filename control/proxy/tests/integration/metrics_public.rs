//! The public proxy serves `/metrics` (strictly parsed), `/healthz` and `/readyz`; after a
//! scenario (one brokered pair with bytes both ways, two reused tokens) the engine, proxy and
//! JSON-RPC counters moved; the Grafana dashboard only queries metrics the proxy exports.
#![allow(clippy::unwrap_used)]

use crate::support::proxy;
use tandem_testkit::metrics;

use std::collections::BTreeSet;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use metrics::{get, parse_prometheus, sample, sample_names, total};
use proxy::*;
use serde_json::{Value, json};
use tandem_net::jsonrpc::params;
use tandem_proxy::PublicProxy;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

fn directory() -> Vec<tandem_directory::entry::DirectoryEntry> {
    vec![
        entry("hd-1", &["health-departments"], &["health-departments"]),
        entry("hd-2", &["health-departments"], &["health-departments"]),
    ]
}

/// Runs the scenario against a public proxy with metrics on 127.0.0.1:0 and returns the scraped
/// `/metrics` text (the proxy still running).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxy_metrics_count_a_pair_and_the_dashboard_queries_exported_metrics() {
    let dir = tempfile::tempdir().unwrap();
    let pki = pki(dir.path());
    let mut hyper = RunningHyper::start(PUBLIC, directory()).await;
    let mut settings = public_settings(&pki, dir.path(), hyper.addr);
    // A default quota, so that the quota limit series the dashboard reads are exported.
    settings.quotas.default.live_pairs = std::num::NonZeroU64::new(1000);
    let jsonrpc = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let metrics = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let metrics_addr = metrics.local_addr().unwrap();
    let proxy = PublicProxy::start(&settings, jsonrpc)
        .await
        .unwrap()
        .with_metrics(metrics);
    let handle = proxy.handle();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(proxy.serve(async {
        let _ = stopped.await;
    }));

    // Readiness is set once the JSON-RPC server and the metrics endpoint run.
    let h = handle.clone();
    tandem_testkit::poll::until(
        "/readyz turning 200 while serving",
        tandem_testkit::poll::POLL_BOUND,
        || async { (get(metrics_addr, "/readyz").await.0 == 200).then_some(()) },
    )
    .await;
    assert_eq!(get(metrics_addr, "/healthz").await, (200, "ok\n".into()));

    let client = proxy_client(&pki, PUBLIC, h.jsonrpc_addr());
    let requester_entry = directory().into_iter().next().unwrap();
    let result: Value = client
        .call(
            "requestConnection",
            params([
                ("to", json!("hd-2")),
                ("channel", json!("grpc_server")),
                ("_client", client_info(&requester_entry)),
            ]),
        )
        .await
        .unwrap();
    let token = result["token"].as_str().unwrap().to_owned();
    let endpoint = result["endpoint"].as_str().unwrap().to_owned();
    let (mut target, target_token) = hyper.dialed.recv().await.unwrap();
    let mut requester = TcpStream::connect(&endpoint).await.unwrap();
    requester
        .write_all(&STANDARD.decode(&token).unwrap())
        .await
        .unwrap();
    requester.write_all(b"ping").await.unwrap();
    let mut buf = [0u8; 4];
    target.read_exact(&mut buf).await.unwrap();
    target.write_all(b"pong!").await.unwrap();
    let mut buf5 = [0u8; 5];
    requester.read_exact(&mut buf5).await.unwrap();
    for t in [&token, &target_token] {
        let mut third = TcpStream::connect(&endpoint).await.unwrap();
        third.write_all(&STANDARD.decode(t).unwrap()).await.unwrap();
        let n = tokio::time::timeout(Duration::from_secs(30), third.read(&mut buf))
            .await
            .unwrap()
            .unwrap_or(0);
        assert_eq!(n, 0, "a reused token is closed");
    }
    // End the pair so that its bytes are counted (the engine counts at close).
    drop((requester, target));
    eventually("pair closed and reuses counted", || {
        let s = h.stats();
        s.engine_total(|c| c.bad_reused) == 2 && s.engine_total(|c| c.live_pairs) == 0
    })
    .await;

    // The pair's bytes reach the requester's daily quota with the close event (hub thread).
    let bytes_used = r#"proxy_quota_bytes_per_day_used{operator="other"}"#;
    tandem_testkit::poll::until(
        "the closed pair's bytes counted against its operator",
        tandem_testkit::poll::POLL_BOUND,
        || async {
            let samples = parse_prometheus(&get(metrics_addr, "/metrics").await.1);
            (sample(&samples, bytes_used) == 9.0).then_some(())
        },
    )
    .await;
    let (status, text) = get(metrics_addr, "/metrics").await;
    assert_eq!(status, 200);
    let samples = parse_prometheus(&text);
    assert_eq!(
        sample(
            &samples,
            r#"proxy_quota_limit{operator="other",quota="live_pairs"}"#
        ),
        1000.0
    );
    assert_eq!(
        sample(&samples, r#"proxy_quota_live_pairs_used{operator="other"}"#),
        0.0,
        "released by the close"
    );
    assert_eq!(total(&samples, "engine_paired_total", &[]), 1.0, "{text}");
    assert_eq!(
        total(&samples, "engine_bad_tokens_total", &[r#"reason="reused""#]),
        2.0
    );
    let bytes = total(&samples, "engine_bytes_total", &[]);
    assert_eq!(bytes, 9.0, "4 bytes one way, 5 the other: {text}");
    assert_eq!(
        total(&samples, "engine_pairs_closed_total", &[]),
        1.0,
        "{text}"
    );
    assert_eq!(total(&samples, "engine_live_pairs", &[]), 0.0);
    assert_eq!(
        total(&samples, "engine_pair_setup_seconds_count", &[]),
        1.0,
        "one pair set up: {text}"
    );
    assert_eq!(
        total(
            &samples,
            "engine_pair_setup_seconds_bucket",
            &[r#"le="+Inf""#]
        ),
        1.0
    );
    assert!(total(&samples, "engine_pair_setup_seconds_sum", &[]) > 0.0);
    let cores = samples
        .iter()
        .filter(|(s, _)| s.starts_with("engine_paired_total{"))
        .count();
    assert_eq!(cores, 2, "one series per core");
    assert_eq!(sample(&samples, "proxy_pairs_requested_total"), 1.0);
    assert_eq!(sample(&samples, "proxy_pairs_issued_total"), 1.0);
    assert_eq!(
        sample(
            &samples,
            r#"proxy_rpc_calls_total{method="requestConnection",outcome="ok"}"#
        ),
        1.0
    );
    assert!(
        total(
            &samples,
            "proxy_rpc_call_seconds_count",
            &[r#"method="requestConnection""#]
        ) >= 1.0
    );
    assert!(sample(&samples, "proxy_pair_events_received_total") >= 2.0);
    assert_eq!(get(metrics_addr, "/nothing").await.0, 404);

    check_dashboard(&sample_names(&samples));

    drop(client);
    let _ = stop.send(());
    tokio::time::timeout(Duration::from_secs(15), task)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    hyper.stop().await;
    assert!(
        TcpStream::connect(metrics_addr).await.is_err(),
        "the metrics endpoint stops with the proxy"
    );
}

/// PromQL functions, aggregations and keywords that may appear outside label matchers.
const PROMQL_WORDS: &[&str] = &[
    "sum",
    "rate",
    "irate",
    "increase",
    "histogram_quantile",
    "by",
    "without",
    "avg",
    "max",
    "min",
    "count",
    "topk",
    "clamp_min",
    "or",
    "and",
    "unless",
];

/// Metric names an expression reads: identifiers outside `{...}`, `[...]` and `by (...)`
/// groupings that are not PromQL words.
fn metric_names(expr: &str) -> Vec<String> {
    let mut cleaned = String::new();
    let mut depth_brace = 0;
    let mut depth_bracket = 0;
    for c in expr.chars() {
        match c {
            '{' => depth_brace += 1,
            '}' => depth_brace -= 1,
            '[' => depth_bracket += 1,
            ']' => depth_bracket -= 1,
            _ if depth_brace == 0 && depth_bracket == 0 => cleaned.push(c),
            _ => {}
        }
    }
    let grouping = regex::Regex::new(r"\b(by|without)\s*\([^)]*\)").unwrap();
    let cleaned = grouping.replace_all(&cleaned, " ");
    let ident = regex::Regex::new(r"[A-Za-z_:][A-Za-z0-9_:]*").unwrap();
    ident
        .find_iter(&cleaned)
        .map(|m| m.as_str().to_owned())
        .filter(|w| !PROMQL_WORDS.contains(&w.as_str()))
        .collect()
}

/// The dashboard is Grafana JSON (title, uid, schemaVersion, panels with Prometheus targets) and
/// every `expr` reads only metrics in `exported`.
fn check_dashboard(exported: &[String]) {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../deploy/grafana/tandem-proxy.json"
    );
    let dashboard: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    assert!(dashboard["title"].is_string());
    assert!(dashboard["uid"].is_string());
    assert!(dashboard["schemaVersion"].as_u64().unwrap() >= 30);
    let exported: BTreeSet<&str> = exported.iter().map(String::as_str).collect();
    let panels = dashboard["panels"].as_array().unwrap();
    let mut exprs = 0;
    for panel in panels {
        if panel["type"] == "row" {
            continue;
        }
        assert!(panel["title"].is_string(), "{panel}");
        assert!(panel["gridPos"]["w"].is_u64(), "{panel}");
        let targets = panel["targets"].as_array().unwrap();
        assert!(!targets.is_empty(), "{}", panel["title"]);
        for target in targets {
            let expr = target["expr"].as_str().unwrap();
            let names = metric_names(expr);
            assert!(!names.is_empty(), "no metric in {expr}");
            for name in names {
                assert!(
                    exported.contains(name.as_str()),
                    "{expr} reads {name}, which the proxy does not export"
                );
            }
            exprs += 1;
        }
    }
    assert!(
        exprs >= 10,
        "the dashboard covers the proxy ({exprs} queries)"
    );
}

#[test]
fn metric_names_skip_functions_labels_and_groupings() {
    let names = metric_names(
        r#"histogram_quantile(0.99, sum by (le, method) (rate(proxy_rpc_call_seconds_bucket{method!=""}[$__rate_interval])))"#,
    );
    assert_eq!(names, vec!["proxy_rpc_call_seconds_bucket"]);
    let names = metric_names("sum(engine_live_pairs) + sum(engine_waiting)");
    assert_eq!(names, vec!["engine_live_pairs", "engine_waiting"]);
}
