//! Two `hyper` servers and an `sd`, all in-process on 127.0.0.1:0 with a generated PKI: hd-1's
//! gateway calls hd-2 over gRPC (direct and through a reverse `ServerCall` stream), permissions,
//! unknown operators, and a peer that dies mid-call.
#![allow(clippy::unwrap_used)]

use tandem_testkit::hyper_node;
use tandem_testkit::sd;

use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use hyper_node::{call, hd_services, listener, start_app};
use sd::{
    admin_chain, certificates_record, client, file_store, groups_record, settings as sd_settings,
    start,
};
use serde_json::{Value, json};
use tandem_directory::Section;
use tandem_hyper::hyper_server::{HyperServer, Listeners};
use tandem_settings::HyperSettings;
use tandem_settings::hyper::{
    ChannelKind, ChannelSettings, GrpcClientSettings, GrpcServerSettings, JsonRpcClientSettings,
    Timeouts,
};
use tandem_testkit::hyper_node::{change_record as record, channel, loopback};
use tandem_testkit::pki::TestPki;

const CALL: Duration = Duration::from_secs(3);

/// hd-2 only lets health-departments call `_ping` and `echo`-like methods listed in `hd_services`.
async fn publish(pki: &TestPki, sd: SocketAddr, grpc: &[(&str, Option<SocketAddr>)]) {
    let mut records = Vec::new();
    for (op, addr) in grpc {
        records.push(certificates_record(pki, op));
        records.push(groups_record(op, &["health-departments"]));
        records.push(record(op, Section::Services, hd_services()));
        let mut channels = vec![json!({"type": "grpc_client", "settings": {}})];
        if let Some(addr) = addr {
            channels
                .push(json!({"type": "grpc_server", "settings": {"address": addr.to_string()}}));
        }
        records.push(record(op, Section::Channels, Value::Array(channels)));
    }
    client(pki, sd, "hd-1")
        .submit(&admin_chain(pki, "", records))
        .await
        .unwrap();
}

fn hyper_settings(
    pki: &TestPki,
    sd: SocketAddr,
    op: &str,
    channels: Vec<ChannelSettings>,
) -> HyperSettings {
    let timeouts = Timeouts {
        call: CALL,
        connect: Duration::from_secs(2),
    };
    hyper_node::api_settings(pki, sd, op, channels, timeouts)
}

fn grpc_channels(pki: &TestPki, op: &str, server: bool) -> Vec<ChannelSettings> {
    let mut out = Vec::new();
    if server {
        out.push(channel(ChannelKind::GrpcServer(GrpcServerSettings {
            serving: Default::default(),
            bind_address: loopback(),
            tls: pki.tls_settings(op),
            tcp_rate_limits: Vec::new(),
        })));
    }
    out.push(channel(ChannelKind::GrpcClient(GrpcClientSettings {
        tls: pki.tls_settings(op),
        use_proxy: true,
    })));
    out
}

struct Mesh {
    _tmp: tempfile::TempDir,
    sd: sd::Sd,
    hd1: HyperServer,
    hd2: HyperServer,
    url: String,
}

impl Mesh {
    /// hd-1 (gRPC server + client + gateway) and hd-2 (gRPC client, a gRPC server when
    /// `hd2_dialable`, and delivery to a local app).
    async fn start(hd2_dialable: bool) -> Self {
        let tmp = tempfile::tempdir().unwrap();
        let pki = TestPki::generate(tmp.path(), &["hd-1", "hd-2", "sd-1"]).unwrap();
        let sd = start(sd_settings(&pki, file_store(tmp.path()), None)).await;
        let (grpc1, grpc2) = (listener().await, listener().await);
        let addr2 = hd2_dialable.then(|| grpc2.local_addr().unwrap());
        publish(
            &pki,
            sd.addr,
            &[("hd-1", Some(grpc1.local_addr().unwrap())), ("hd-2", addr2)],
        )
        .await;

        let mut channels1 = grpc_channels(&pki, "hd-1", true);
        channels1.push(hyper_node::plain_gateway());
        let gateway = listener().await;
        let url = format!("http://{}/jsonrpc", gateway.local_addr().unwrap());
        let listeners = Listeners {
            grpc: Some(grpc1.into()),
            jsonrpc: Some(gateway.into()),
        };
        let hd1 = HyperServer::start(&hyper_settings(&pki, sd.addr, "hd-1", channels1), listeners)
            .unwrap();

        let app = start_app(Arc::new(OnceLock::new())).await;
        let mut channels2 = vec![channel(ChannelKind::JsonRpcClient(JsonRpcClientSettings {
            endpoint: Some(format!("http://{app}/jsonrpc")),
            proxy_url: None,
            local: true,
            tls: None,
        }))];
        channels2.extend(grpc_channels(&pki, "hd-2", hd2_dialable));
        let listeners = Listeners {
            grpc: hd2_dialable.then_some(grpc2.into()),
            jsonrpc: None,
        };
        let hd2 = HyperServer::start(&hyper_settings(&pki, sd.addr, "hd-2", channels2), listeners)
            .unwrap();
        Self {
            _tmp: tmp,
            sd,
            hd1,
            hd2,
            url,
        }
    }

    async fn stop(self) {
        tokio::time::timeout(Duration::from_secs(20), async {
            self.hd1.shutdown().await;
            self.hd2.shutdown().await;
            self.sd.stop().await;
        })
        .await
        .unwrap();
    }
}

#[tokio::test]
async fn hd1_calls_hd2_directly_over_grpc() {
    let mesh = Mesh::start(true).await;
    let (status, body) = call(&mesh.url, "hd-2._ping", json!({"x": 1}), json!(1)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["result"]["serverInfo"]["name"], "hd-2",
        "the result carries hd-2's entry"
    );
    assert_eq!(
        body["result"]["params"]["_client"]["name"], "hd-1",
        "and hd-1 as the caller"
    );
    assert_eq!(body["result"]["params"]["x"], 1);
    assert_eq!(body["id"], json!(1));

    let (status, body) = call(&mesh.url, "hd-2.echo", json!({"y": [1, 2]}), json!("e")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["result"]["id_seen"], "hd-2.echo(e)");
    assert_eq!(body["result"]["params"]["y"], json!([1, 2]));
    assert_eq!(
        body["result"]["params"]["_client"]["name"], "hd-1",
        "hd-2's app sees the last hop's caller"
    );
    assert_eq!(body["id"], json!("e"));

    let (status, body) = call(&mesh.url, "hd-2.secret", json!({}), json!(2)).await;
    assert_eq!(status, 400);
    assert_eq!(
        body["error"],
        json!({"code": 403, "message": "Permission denied for method 'secret' and client 'hd-1'"})
    );

    let (status, body) = call(&mesh.url, "nobody._ping", json!({}), json!(3)).await;
    assert_eq!((status, body["error"]["code"].clone()), (400, json!(1)));
    assert_eq!(body["error"]["message"], "no directory entry for nobody");
    assert_eq!(
        mesh.hd1.grpc_client.as_ref().unwrap().cached_peers(),
        vec!["hd-2"]
    );
    mesh.stop().await;
}

#[tokio::test]
async fn an_undialable_peer_is_reached_through_its_reverse_stream() {
    let mesh = Mesh::start(false).await;
    let reverse = mesh.hd1.grpc_server.as_ref().unwrap().reverse.clone();
    assert!(
        reverse.wait_for("hd-2", Duration::from_secs(10)).await,
        "hd-2 opens a reverse stream to hd-1"
    );
    let calls: Vec<_> = (0..20)
        .map(|i| {
            let url = mesh.url.clone();
            tokio::spawn(async move { call(&url, "hd-2.echo", json!({"i": i}), json!(i)).await })
        })
        .collect();
    for (i, handle) in calls.into_iter().enumerate() {
        let (status, body) = handle.await.unwrap();
        assert_eq!(status, 200, "{body}");
        assert_eq!(
            body["result"]["params"]["i"],
            json!(i),
            "answers are matched to their calls"
        );
    }
    assert!(
        mesh.hd1
            .grpc_client
            .as_ref()
            .unwrap()
            .cached_peers()
            .is_empty(),
        "hd-1 never dialled hd-2"
    );
    mesh.stop().await;
}

#[tokio::test]
async fn a_peer_killed_mid_call_gives_an_error_within_the_deadline() {
    let mesh = Mesh::start(true).await;
    let (status, _) = call(&mesh.url, "hd-2._ping", json!({}), json!(0)).await;
    assert_eq!(status, 200);
    let url = mesh.url.clone();
    let started = Instant::now();
    let pending = tokio::spawn(async move { call(&url, "hd-2.slow", json!({}), json!(1)).await });
    let Mesh {
        _tmp, sd, hd1, hd2, ..
    } = mesh;
    // Stop hd-2 while its app is still working on the call.
    tokio::time::timeout(Duration::from_secs(10), hd2.shutdown())
        .await
        .unwrap();
    let (status, body) = pending.await.unwrap();
    let waited = started.elapsed();
    // Bounded by the call deadline, far below the app's 30 s answer; slack for a loaded machine.
    assert!(waited < CALL + Duration::from_secs(20), "{waited:?}");
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["code"], 500, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("Channel 1 encountered an error"),
        "{body}"
    );
    hd1.shutdown().await;
    sd.stop().await;
}
