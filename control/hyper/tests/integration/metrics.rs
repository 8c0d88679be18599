//! Two `hyper` servers and an `sd` in-process with metrics on 127.0.0.1:0: after hd-1's gateway
//! calls hd-2 (a `_ping`, a refused method, an unknown operator) both servers' `/metrics` parse
//! strictly and count broker deliveries by method and outcome, their latency, and the directory
//! refreshes; `/healthz` and `/readyz` answer while serving.
#![allow(clippy::unwrap_used)]

use tandem_testkit::hyper_node;
use tandem_testkit::metrics;
use tandem_testkit::sd;

use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use hyper_node::{call, hd_services, listener, start_app};
use metrics::{get, parse_prometheus, sample, total};
use sd::{
    admin_chain, certificates_record, client, file_store, groups_record, settings as sd_settings,
    start,
};
use serde_json::json;
use tandem_directory::Section;
use tandem_hyper::hyper_server::{HyperServer, Listeners};
use tandem_settings::HyperSettings;
use tandem_settings::hyper::{
    ChannelKind, ChannelSettings, GrpcClientSettings, GrpcServerSettings, JsonRpcClientSettings,
    Timeouts,
};
use tandem_testkit::hyper_node::{change_record as record, channel, loopback};
use tandem_testkit::pki::TestPki;

async fn publish(pki: &TestPki, sd: SocketAddr, grpc: &[(&str, SocketAddr)]) {
    let mut records = Vec::new();
    for (op, addr) in grpc {
        records.push(certificates_record(pki, op));
        records.push(groups_record(op, &["health-departments"]));
        records.push(record(op, Section::Services, hd_services()));
        let channels = json!([
            {"type": "grpc_client", "settings": {}},
            {"type": "grpc_server", "settings": {"address": addr.to_string()}},
        ]);
        records.push(record(op, Section::Channels, channels));
    }
    client(pki, sd, "hd-1")
        .submit(&admin_chain(pki, "", records))
        .await
        .unwrap();
}

fn settings(
    pki: &TestPki,
    sd: SocketAddr,
    op: &str,
    channels: Vec<ChannelSettings>,
) -> HyperSettings {
    let timeouts = Timeouts {
        call: Duration::from_secs(3),
        connect: Duration::from_secs(2),
    };
    hyper_node::api_settings(pki, sd, op, channels, timeouts)
}

fn grpc_channels(pki: &TestPki, op: &str) -> Vec<ChannelSettings> {
    vec![
        channel(ChannelKind::GrpcServer(GrpcServerSettings {
            serving: Default::default(),
            bind_address: loopback(),
            tls: pki.tls_settings(op),
            tcp_rate_limits: Vec::new(),
        })),
        channel(ChannelKind::GrpcClient(GrpcClientSettings {
            tls: pki.tls_settings(op),
            use_proxy: true,
        })),
    ]
}

#[tokio::test]
async fn broker_and_directory_metrics_count_the_calls() {
    let tmp = tempfile::tempdir().unwrap();
    let pki = TestPki::generate(tmp.path(), &["hd-1", "hd-2", "sd-1"]).unwrap();
    let sd = start(sd_settings(&pki, file_store(tmp.path()), None)).await;
    let (grpc1, grpc2) = (listener().await, listener().await);
    publish(
        &pki,
        sd.addr,
        &[
            ("hd-1", grpc1.local_addr().unwrap()),
            ("hd-2", grpc2.local_addr().unwrap()),
        ],
    )
    .await;

    let mut channels1 = grpc_channels(&pki, "hd-1");
    channels1.push(hyper_node::plain_gateway());
    let gateway = listener().await;
    let url = format!("http://{}/jsonrpc", gateway.local_addr().unwrap());
    let listeners = Listeners {
        grpc: Some(grpc1.into()),
        jsonrpc: Some(gateway.into()),
    };
    let mut hd1 =
        HyperServer::start(&settings(&pki, sd.addr, "hd-1", channels1), listeners).unwrap();
    let app = start_app(Arc::new(OnceLock::new())).await;
    let mut channels2 = vec![channel(ChannelKind::JsonRpcClient(JsonRpcClientSettings {
        endpoint: Some(format!("http://{app}/jsonrpc")),
        proxy_url: None,
        local: true,
        tls: None,
    }))];
    channels2.extend(grpc_channels(&pki, "hd-2"));
    let listeners = Listeners {
        grpc: Some(grpc2.into()),
        jsonrpc: None,
    };
    let mut hd2 =
        HyperServer::start(&settings(&pki, sd.addr, "hd-2", channels2), listeners).unwrap();
    let (m1, m2) = (listener().await, listener().await);
    let (m1_addr, m2_addr) = (m1.local_addr().unwrap(), m2.local_addr().unwrap());
    hd1.serve_metrics(m1);
    hd2.serve_metrics(m2);
    assert_eq!(get(m1_addr, "/healthz").await.0, 200);
    assert_eq!(get(m1_addr, "/readyz").await, (200, "ready\n".into()));

    let (status, body) = call(&url, "hd-2._ping", json!({}), json!(1)).await;
    assert_eq!(status, 200, "{body}");
    let (_, body) = call(&url, "hd-2.secret", json!({}), json!(2)).await;
    assert_eq!(body["error"]["code"], 403);
    let (_, body) = call(&url, "nobody._ping", json!({}), json!(3)).await;
    assert_eq!(body["error"]["code"], 1, "{body}");

    let (status, text) = get(m1_addr, "/metrics").await;
    assert_eq!(status, 200);
    let s1 = parse_prometheus(&text);
    let calls = |outcome: &str, method: &str| {
        format!(r#"hyper_broker_calls_total{{method="{method}",outcome="{outcome}"}}"#)
    };
    assert_eq!(sample(&s1, &calls("ok", "_ping")), 1.0, "{text}");
    assert_eq!(sample(&s1, &calls("denied", "other")), 1.0, "{text}");
    assert_eq!(
        sample(&s1, &calls("unknown_operator", "_ping")),
        1.0,
        "{text}"
    );
    assert_eq!(
        total(
            &s1,
            "hyper_broker_call_seconds_count",
            &[r#"method="_ping""#]
        ),
        2.0
    );
    assert_eq!(sample(&s1, "hyper_broker_in_flight"), 0.0);
    // The grpc_client's transparent retries are in the node's registry (none here: no refusals).
    let retries = "hyper_grpc_transparent_retries_total";
    assert_eq!(sample(&s1, retries), 0.0, "{text}");
    assert!(sample(&s1, r#"directory_refreshes_total{outcome="ok"}"#) >= 1.0);
    assert!(sample(&s1, "directory_refresh_seconds_count") >= 1.0);
    assert_eq!(sample(&s1, "directory_entries"), 2.0, "{text}");
    assert!(sample(&s1, "directory_records") >= 8.0, "{text}");
    assert!(sample(&s1, "directory_last_success_timestamp_seconds") > 1.6e9);

    // hd-2 delivered the `_ping` itself and refused `secret` before its app.
    let (_, text) = get(m2_addr, "/metrics").await;
    let s2 = parse_prometheus(&text);
    assert_eq!(sample(&s2, &calls("ok", "_ping")), 1.0, "{text}");
    assert_eq!(sample(&s2, &calls("denied", "other")), 1.0, "{text}");

    tokio::time::timeout(Duration::from_secs(20), async {
        hd1.shutdown().await;
        hd2.shutdown().await;
        sd.stop().await;
    })
    .await
    .unwrap();
    assert!(
        tokio::net::TcpStream::connect(m1_addr).await.is_err(),
        "the metrics endpoint stops with the server"
    );
}
