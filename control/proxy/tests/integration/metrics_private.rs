//! The private proxy serves `/metrics`, `/healthz` and `/readyz` when given a metrics listener:
//! its JSON-RPC calls are counted by method and outcome (unknown methods as `other`) and its
//! forwarded-connection gauge is exported.
#![allow(clippy::unwrap_used)]

use crate::support::proxy;
use tandem_testkit::metrics;

use std::time::Duration;

use metrics::{get, parse_prometheus, sample};
use proxy::*;
use serde_json::Map;
use tandem_net::http::JsonRpcClient;
use tandem_proxy::PrivateProxy;
use tokio::net::TcpListener;

#[tokio::test]
async fn private_proxy_counts_its_calls() {
    let dir = tempfile::tempdir().unwrap();
    let hyper = RunningHyper::start(PRIVATE, Vec::new()).await;
    let internal = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let settings = private_settings(dir.path(), hyper.addr, internal.local_addr().unwrap());
    let jsonrpc = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let metrics = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let metrics_addr = metrics.local_addr().unwrap();
    let proxy = PrivateProxy::start(&settings, jsonrpc)
        .await
        .unwrap()
        .with_metrics(metrics);
    let url = format!("http://{}/jsonrpc", proxy.jsonrpc_addr());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(proxy.serve(async {
        let _ = stopped.await;
    }));
    let client = JsonRpcClient::new(&url, None, None, CALL_TIMEOUT).unwrap();
    client.call("getAnnouncements", Map::new()).await.unwrap();
    client.call("nope", Map::new()).await.unwrap_err();
    assert_eq!(get(metrics_addr, "/healthz").await.0, 200);
    assert_eq!(
        get(metrics_addr, "/readyz").await.0,
        200,
        "ready once serving"
    );

    let (status, text) = get(metrics_addr, "/metrics").await;
    assert_eq!(status, 200);
    let samples = parse_prometheus(&text);
    assert_eq!(
        sample(
            &samples,
            r#"proxy_private_rpc_calls_total{method="getAnnouncements",outcome="ok"}"#
        ),
        1.0
    );
    assert_eq!(
        sample(
            &samples,
            r#"proxy_private_rpc_calls_total{method="other",outcome="-32601"}"#
        ),
        1.0,
        "{text}"
    );
    assert_eq!(sample(&samples, "proxy_private_connections"), 0.0);
    assert_eq!(sample(&samples, "proxy_private_connections_max"), 1024.0);
    assert_eq!(
        sample(&samples, "proxy_private_announcements_taken_total"),
        0.0,
        "announcement counters are exported"
    );

    drop(client);
    let _ = stop.send(());
    tokio::time::timeout(Duration::from_secs(15), task)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    hyper.stop().await;
}
