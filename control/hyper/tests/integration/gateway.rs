//! A real hyper server (JSON-RPC gateway + `jsonrpc_client` to a local app, json directory):
//! synchronous and asynchronous (`respond`) answers, id round trips, result/error mapping, the
//! specified error codes for bad input, deadlines, `stdout`, HTTP/2.
#![allow(clippy::unwrap_used)]

use tandem_testkit::hyper_node;

use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use hyper_node::{Server, call, hd_services, listener, post_raw, record, start_app, write_records};
use serde_json::{Value, json};
use tandem_hyper::hyper_server::Listeners;
use tandem_settings::hyper::{
    ChannelKind, ChannelSettings, DirectorySettings, JsonDirectorySettings, JsonRpcClientSettings,
    Timeouts,
};
use tandem_settings::{HostPort, HyperSettings, JsonRpcServerSettings};

const CALL: Duration = Duration::from_millis(1500);

fn channel(kind: ChannelKind) -> ChannelSettings {
    ChannelSettings {
        name: kind.type_name().into(),
        services: Vec::new(),
        kind,
    }
}

fn gateway_channel() -> ChannelSettings {
    channel(ChannelKind::JsonRpcServer(
        JsonRpcServerSettings {
            serving: Default::default(),
            bind_address: HostPort {
                host: "127.0.0.1".into(),
                port: 0,
            },
            path: "/jsonrpc".into(),
            cors: None,
            tls: None,
            tcp_rate_limits: Vec::new(),
        }
        .into(),
    ))
}

fn settings(dir: &std::path::Path, local: ChannelSettings) -> HyperSettings {
    let path = dir.join("directory.json");
    write_records(
        &path,
        vec![
            record("hd-1", "groups", json!(["health-departments"])),
            record("hd-1", "services", hd_services()),
            record("hd-2", "groups", json!(["health-departments"])),
        ],
    );
    HyperSettings {
        name: "hd-1".into(),
        directory: DirectorySettings::Json(JsonDirectorySettings { path }),
        channels: vec![local, gateway_channel()],
        signing: None,
        metrics: None,
        log_level: None,
        timeouts: Timeouts {
            call: CALL,
            connect: Duration::from_secs(1),
        },
    }
}

async fn start_with_app(dir: &std::path::Path) -> Server {
    let gateway = Arc::new(OnceLock::new());
    let app = start_app(gateway.clone()).await;
    let local = channel(ChannelKind::JsonRpcClient(JsonRpcClientSettings {
        endpoint: Some(format!("http://{app}/jsonrpc")),
        proxy_url: None,
        local: true,
        tls: None,
    }));
    let listeners = Listeners {
        grpc: None,
        jsonrpc: Some(listener().await.into()),
    };
    let server = Server::start(settings(dir, local), listeners);
    gateway.set(server.url()).unwrap();
    server
}

#[tokio::test]
async fn application_methods_are_answered_synchronously_with_the_callers_id_type() {
    let tmp = tempfile::tempdir().unwrap();
    let server = start_with_app(tmp.path()).await;
    let url = server.url();

    let (status, body) = call(&url, "hd-1.echo", json!({"x": 1}), json!(7)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["id"], json!(7), "an int id comes back as an int");
    assert_eq!(
        body["result"]["id_seen"], "hd-1.echo(n:7)",
        "the app sees the addressable id"
    );
    assert_eq!(body["result"]["params"]["x"], 1);
    assert_eq!(body["result"]["params"]["_client"]["name"], "hd-1");
    assert_eq!(
        body["result"]["params"]["_client"]["entry"]["groups"],
        json!(["health-departments"])
    );

    let (_, body) = call(&url, "hd-1.echo", json!({}), json!("abc")).await;
    assert_eq!(
        (body["id"].clone(), body["result"]["id_seen"].clone()),
        (json!("abc"), json!("hd-1.echo(abc)"))
    );
    let (_, body) = call(&url, "hd-1.echo", json!({}), json!("n:5")).await;
    assert_eq!(
        body["id"],
        json!("n:5"),
        "a string that looks internal stays a string"
    );
    assert_eq!(body["result"]["id_seen"], "hd-1.echo(nn:5)");

    let (status, body) = call(&url, "hd-1.scalar", json!({}), json!(1)).await;
    assert_eq!(
        (status, body["result"].clone()),
        (200, json!(42)),
        "{{\"_\": 42}} is unwrapped"
    );

    let (status, body) = call(&url, "hd-1.fail", json!({}), json!(2)).await;
    assert_eq!(status, 400);
    assert_eq!(
        body["error"],
        json!({"code": 17, "message": "nope", "data": "why"})
    );
    assert_eq!(body["id"], json!(2));

    let (status, body) = call(&url, "hd-1._ping", json!({"p": true}), json!(3)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["result"]["serverInfo"]["name"], "hd-1");
    assert_eq!(body["result"]["params"]["p"], true);
    assert_eq!(body["id"], json!(3));
    server.stop().await;
}

#[tokio::test]
async fn the_app_can_answer_later_through_respond() {
    let tmp = tempfile::tempdir().unwrap();
    let server = start_with_app(tmp.path()).await;
    let url = server.url();
    let calls = (0..20).map(|i| {
        let url = url.clone();
        async move { call(&url, "hd-1.later", json!({"x": i}), json!(i)).await }
    });
    for (i, (status, body)) in futures_join_all(calls).await.into_iter().enumerate() {
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["result"], json!({"late": true, "seen": i}));
        assert_eq!(body["id"], json!(i));
    }
    let (status, body) = call(
        &url,
        "respond",
        json!({"id": "hd-1.later(n:404)", "result": {}}),
        json!(1),
    )
    .await;
    assert_eq!(
        (status, body["error"]["code"].clone()),
        (400, json!(404)),
        "{body}"
    );
    let (status, body) = call(&url, "respond", json!({"result": {}}), json!(1)).await;
    assert_eq!(
        (status, body["error"]["code"].clone()),
        (400, json!(-32602)),
        "{body}"
    );
    server.stop().await;
}

async fn futures_join_all<
    F: std::future::Future<Output = T> + Send + 'static,
    T: Send + 'static,
>(
    futures: impl Iterator<Item = F>,
) -> Vec<T> {
    let handles: Vec<_> = futures.map(tokio::spawn).collect();
    let mut out = Vec::new();
    for h in handles {
        out.push(h.await.unwrap());
    }
    out
}

#[tokio::test]
async fn bad_input_gets_the_specified_codes_and_other_calls_are_unaffected() {
    let tmp = tempfile::tempdir().unwrap();
    let server = start_with_app(tmp.path()).await;
    let url = server.url();
    let json = "application/json";
    let cases: &[(&str, &str, i64)] = &[
        (json, "{not json", -32700),
        (
            "text/plain",
            r#"{"jsonrpc":"2.0","method":"hd-1.echo","params":{},"id":1}"#,
            -32700,
        ),
        (
            json,
            r#"{"jsonrpc":"1.0","method":"hd-1.echo","params":{},"id":1}"#,
            -32600,
        ),
        (
            json,
            r#"{"jsonrpc":"2.0","method":"hd-1.echo","id":1}"#,
            -32600,
        ),
        (
            json,
            r#"{"jsonrpc":"2.0","method":"hd-1.echo","params":[1],"id":1}"#,
            -32600,
        ),
        (
            json,
            r#"{"jsonrpc":"2.0","method":"hd-1.echo","params":{},"id":1.5}"#,
            -32600,
        ),
        (
            json,
            r#"{"jsonrpc":"2.0","method":"hd-1.echo","params":{},"id":[1]}"#,
            -32600,
        ),
        (
            json,
            r#"{"jsonrpc":"2.0","method":"hd-1.echo","params":{},"id":4294967296}"#,
            -32600,
        ),
    ];
    for (content_type, body, code) in cases {
        let (status, answer) = post_raw(&url, content_type, body).await;
        assert_eq!(
            (status, answer["error"]["code"].as_i64()),
            (400, Some(*code)),
            "{body}: {answer}"
        );
    }
    let (status, body) = call(&url, "nobody.echo", json!({}), json!(1)).await;
    assert_eq!(status, 400);
    assert_eq!(body["error"]["code"], 1);
    assert_eq!(body["error"]["message"], "no directory entry for nobody");
    let (_, body) = call(&url, "nodot", json!({}), json!(1)).await;
    assert_eq!(
        body["error"]["message"],
        "error parsing address: invalid ID format"
    );
    let (status, body) = call(&url, "hd-2.echo", json!({}), json!(1)).await;
    assert_eq!(
        (status, body["error"]["message"].clone()),
        (400, json!("no channel can deliver this request"))
    );
    let (status, body) = post_raw(&url.replace("/jsonrpc", "/other"), json, "{}").await;
    assert_eq!((status, body), (404, json!({"message": "not found"})));
    let (status, body) = call(&url, "hd-1.echo", json!({"still": "fine"}), json!(1)).await;
    assert_eq!(
        (status, body["result"]["params"]["still"].clone()),
        (200, json!("fine"))
    );
    server.stop().await;
}

#[tokio::test]
async fn a_slow_app_gives_a_clear_error_within_the_deadline() {
    let tmp = tempfile::tempdir().unwrap();
    let server = start_with_app(tmp.path()).await;
    let started = Instant::now();
    let (status, body) = call(&server.url(), "hd-1.slow", json!({}), json!(1)).await;
    let waited = started.elapsed();
    // Not before the deadline; the upper bound only tells a fired deadline from the app's 30 s
    // answer, with room for a loaded machine (the message below names the deadline).
    assert!(
        waited >= CALL && waited < CALL + Duration::from_secs(20),
        "{waited:?}"
    );
    assert_eq!(
        (status, body["error"]["code"].clone()),
        (400, json!(500)),
        "{body}"
    );
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        message.starts_with(
            "Channel 0 encountered an error delivering the message: hd-1 did not answer within 1.5s (the call deadline, `timeouts.call`)"
        ),
        "{message}"
    );
    server.stop().await;
}

#[tokio::test]
async fn stdout_answers_submitted_and_http2_is_served() {
    let tmp = tempfile::tempdir().unwrap();
    let listeners = Listeners {
        grpc: None,
        jsonrpc: Some(listener().await.into()),
    };
    let server = Server::start(
        settings(tmp.path(), channel(ChannelKind::Stdout)),
        listeners,
    );
    let (status, body) = call(&server.url(), "hd-1.anything", json!({}), json!("s")).await;
    assert_eq!(
        (status, body["result"].clone(), body["id"].clone()),
        (200, json!({"message": "submitted"}), json!("s"))
    );

    // HTTP/2 with prior knowledge (h2c).
    use http_body_util::BodyExt;
    let client: hyper_util::client::legacy::Client<_, http_body_util::Full<bytes::Bytes>> =
        hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
            .http2_only(true)
            .build_http();
    let body = json!({"jsonrpc": "2.0", "method": "hd-1._ping", "params": {}, "id": 5}).to_string();
    let request = http::Request::post(server.url())
        .header("content-type", "application/json")
        .body(http_body_util::Full::new(bytes::Bytes::from(body)))
        .unwrap();
    let response = client.request(request).await.unwrap();
    assert_eq!(response.version(), http::Version::HTTP_2);
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    let answer: Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(answer["result"]["serverInfo"]["name"], "hd-1");
    server.stop().await;
}

#[tokio::test]
async fn an_unreachable_directory_is_a_clear_error_within_the_bound() {
    use tandem_settings::hyper::{ApiDirectorySettings, DirectoryClientSettings};
    let tmp = tempfile::tempdir().unwrap();
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let mut s = settings(tmp.path(), channel(ChannelKind::Stdout));
    s.directory = DirectorySettings::Api(ApiDirectorySettings {
        endpoints: vec![format!("http://{closed}/jsonrpc")],
        server_names: vec!["sd-1".into()],
        jsonrpc_client: DirectoryClientSettings {
            tls: None,
            proxy_url: None,
        },
        ca_certificate_files: Vec::new(),
        ca_intermediate_certificate_files: Vec::new(),
        cache_entries_for: Duration::from_secs(5),
    });
    let server = Server::start(
        s,
        Listeners {
            grpc: None,
            jsonrpc: Some(listener().await.into()),
        },
    );
    let started = Instant::now();
    let (status, body) = call(&server.url(), "hd-1._ping", json!({}), json!(1)).await;
    // A refused connect fails at once (the message says so); the bound only catches a hang.
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "bounded by timeouts.connect"
    );
    assert_eq!(
        (status, body["error"]["code"].clone()),
        (400, json!(1)),
        "{body}"
    );
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("unreachable") && message.contains(&closed.to_string()),
        "{message}"
    );
    server.stop().await;
}

#[tokio::test]
async fn listeners_bind_the_configured_addresses() {
    let tmp = tempfile::tempdir().unwrap();
    let s = settings(tmp.path(), channel(ChannelKind::Stdout));
    let listeners = Listeners::bind(&s).await.unwrap();
    assert!(
        listeners.grpc.is_none(),
        "no grpc_server channel configured"
    );
    let addr = listeners.jsonrpc.as_ref().unwrap().local_addr().unwrap();
    assert!(addr.ip().is_loopback() && addr.port() != 0);
}
