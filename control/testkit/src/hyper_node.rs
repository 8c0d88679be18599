//! An in-process Hyper node: a running `hyper_server::run` on 127.0.0.1:0, a small
//! local JSON-RPC application, and raw HTTP calls to the gateway.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::extract::State;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::{Value, json};
use tandem_directory::{ChangeRecord, RecordTime, Section};
use tandem_hyper::hyper_server::{Listeners, run};
use tandem_settings::hyper::{ChannelKind, ChannelSettings};
use tandem_settings::{HostPort, HyperSettings};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// A running hyper server.
pub struct Server {
    pub jsonrpc: Option<SocketAddr>,
    pub grpc: Option<SocketAddr>,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<()>,
}

impl Server {
    /// Starts `run(settings)` with the listeners given.
    pub fn start(settings: HyperSettings, listeners: Listeners) -> Self {
        let jsonrpc = listeners.jsonrpc.as_ref().map(|l| l.local_addr().unwrap());
        let grpc = listeners.grpc.as_ref().map(|l| l.local_addr().unwrap());
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            run(&settings, listeners, async {
                let _ = stopped.await;
            })
            .await
            .unwrap();
        });
        Self {
            jsonrpc,
            grpc,
            stop: Some(stop),
            task,
        }
    }

    /// The gateway URL.
    pub fn url(&self) -> String {
        format!("http://{}/jsonrpc", self.jsonrpc.unwrap())
    }

    /// Stops the server and waits (bounded) for it.
    pub async fn stop(mut self) {
        let _ = self.stop.take().unwrap().send(());
        tokio::time::timeout(Duration::from_secs(15), self.task)
            .await
            .unwrap()
            .unwrap();
    }
}

/// A loopback listener on port 0.
pub async fn listener() -> TcpListener {
    TcpListener::bind("127.0.0.1:0").await.unwrap()
}

/// Writes `{"records": [...]}` to `path`.
pub fn write_records(path: &Path, records: Vec<Value>) {
    std::fs::write(
        path,
        serde_json::to_vec(&json!({ "records": records })).unwrap(),
    )
    .unwrap();
}

/// A change record for the json directory.
pub fn record(name: &str, section: &str, data: Value) -> Value {
    json!({"name": name, "section": section, "data": data, "created_at": "2021-05-17T10:00:00Z"})
}

/// The dev operators' services: `_ping` and `echo` callable by health-departments.
pub fn hd_services() -> Value {
    json!([{"name": "internals", "permissions": [{"group": "health-departments", "rights": ["call"]}],
            "methods": [{"name": "_ping", "permissions": []}, {"name": "echo", "permissions": []},
                        {"name": "_directory", "permissions": []}]}])
}

/// POSTs `body` with `content_type` to `url`; returns the HTTP status and the JSON body.
pub async fn post_raw(url: &str, content_type: &str, body: &str) -> (u16, Value) {
    let client: Client<HttpConnector, Full<Bytes>> =
        Client::builder(TokioExecutor::new()).build_http();
    let request = http::Request::post(url)
        .header(http::header::CONTENT_TYPE, content_type)
        .body(Full::new(Bytes::from(body.to_owned())))
        .unwrap();
    let response = tokio::time::timeout(Duration::from_secs(20), client.request(request))
        .await
        .unwrap()
        .unwrap();
    let status = response.status().as_u16();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

/// A JSON-RPC call to the gateway.
pub async fn call(url: &str, method: &str, params: Value, id: Value) -> (u16, Value) {
    let body = json!({"jsonrpc": "2.0", "method": method, "params": params, "id": id});
    post_raw(url, "application/json", &body.to_string()).await
}

/// The local application: `echo` answers at once with its params and the id it was given;
/// `later` answers `{"_async": true}` and then calls `respond` on the gateway; `scalar` returns 42;
/// `fail` returns an error; `slow` never answers in time.
pub async fn start_app(gateway: Arc<std::sync::OnceLock<String>>) -> SocketAddr {
    let listener = listener().await;
    let addr = listener.local_addr().unwrap();
    let app = axum::Router::new()
        .route("/jsonrpc", axum::routing::post(app_handler))
        .with_state(gateway);
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    addr
}

async fn app_handler(
    State(gateway): State<Arc<std::sync::OnceLock<String>>>,
    Json(request): Json<Value>,
) -> Json<Value> {
    let id = request["id"].clone();
    let reply = match request["method"].as_str().unwrap_or_default() {
        "echo" => json!({"result": {"params": request["params"], "id_seen": id}}),
        "scalar" => json!({"result": 42}),
        "fail" => json!({"error": {"code": 17, "message": "nope", "data": "why"}}),
        "slow" => {
            tokio::time::sleep(Duration::from_secs(30)).await;
            json!({"result": {}})
        }
        "later" => {
            let url = gateway.get().unwrap().clone();
            let params =
                json!({"id": id, "result": {"late": true, "seen": request["params"]["x"]}});
            tokio::spawn(async move {
                let (status, body) = call(&url, "respond", params, json!(99)).await;
                assert_eq!((status, &body["result"]), (200, &json!("ok")), "{body}");
            });
            json!({"result": {"_async": true}})
        }
        other => json!({"error": {"code": -32601, "message": format!("no method {other}")}}),
    };
    let mut reply = reply;
    reply["jsonrpc"] = json!("2.0");
    reply["id"] = id;
    Json(reply)
}

/// Settings of an operator `op` whose directory is the sd at `sd` (api type, TLS as `op`), with
/// `channels` and `timeouts` — the one builder the hyper, metrics and p2p tests share.
pub fn api_settings(
    pki: &crate::pki::TestPki,
    sd: std::net::SocketAddr,
    op: &str,
    channels: Vec<tandem_settings::hyper::ChannelSettings>,
    timeouts: tandem_settings::hyper::Timeouts,
) -> tandem_settings::HyperSettings {
    use tandem_settings::hyper::{
        ApiDirectorySettings, DirectoryClientSettings, DirectorySettings,
    };
    tandem_settings::HyperSettings {
        name: op.into(),
        directory: DirectorySettings::Api(ApiDirectorySettings {
            endpoints: vec![format!("https://{sd}/jsonrpc")],
            server_names: vec!["sd-1".into()],
            jsonrpc_client: DirectoryClientSettings {
                tls: Some(pki.client_tls_settings(op, "sd-1")),
                proxy_url: None,
            },
            ca_certificate_files: vec![pki.root_cert()],
            ca_intermediate_certificate_files: vec![pki.intermediate_cert()],
            cache_entries_for: std::time::Duration::from_secs(5),
        }),
        channels,
        signing: None,
        metrics: None,
        log_level: None,
        timeouts,
    }
}

/// An unsigned directory record of `section` for operator `name`, timestamped now.
pub fn change_record(name: &str, section: Section, data: Value) -> ChangeRecord {
    ChangeRecord::new(
        name.into(),
        section,
        &data,
        RecordTime::from_utc(chrono::Utc::now()),
    )
    .unwrap()
}

/// A channel of `kind` with its default name and no service restriction.
pub fn channel(kind: ChannelKind) -> ChannelSettings {
    ChannelSettings {
        name: kind.type_name().into(),
        services: Vec::new(),
        kind,
    }
}

/// 127.0.0.1 on a port the OS picks.
pub fn loopback() -> HostPort {
    HostPort {
        host: "127.0.0.1".into(),
        port: 0,
    }
}

/// hd-2 with only a JSON-RPC gateway (json directory: hd-2 in `health-departments` with the
/// internal services), bound to 127.0.0.1:0 with `tls`, `cors` and the kit's `serving` policy.
pub fn gateway_settings(
    dir: &Path,
    tls: Option<tandem_settings::TlsSettings>,
    cors: Option<tandem_settings::listeners::CorsSettings>,
    serving: tandem_serving::ServingConfig,
) -> HyperSettings {
    use tandem_settings::JsonRpcServerSettings;
    use tandem_settings::hyper::{DirectorySettings, JsonDirectorySettings, Timeouts};
    let path = dir.join("directory.json");
    write_records(
        &path,
        vec![
            record("hd-2", "groups", json!(["health-departments"])),
            record("hd-2", "services", hd_services()),
        ],
    );
    let gateway = ChannelKind::JsonRpcServer(
        JsonRpcServerSettings {
            bind_address: loopback(),
            path: "/jsonrpc".into(),
            cors,
            tls,
            tcp_rate_limits: Vec::new(),
            serving,
        }
        .into(),
    );
    HyperSettings {
        name: "hd-2".into(),
        directory: DirectorySettings::Json(JsonDirectorySettings { path }),
        channels: vec![ChannelSettings {
            name: "local".into(),
            services: Vec::new(),
            kind: gateway,
        }],
        signing: None,
        metrics: None,
        log_level: None,
        timeouts: Timeouts {
            call: Duration::from_secs(2),
            connect: Duration::from_secs(1),
        },
    }
}

/// A plain-HTTP gateway channel on 127.0.0.1:0 with the kit's defaults (the tests' local apps).
pub fn plain_gateway() -> ChannelSettings {
    channel(ChannelKind::JsonRpcServer(
        tandem_settings::JsonRpcServerSettings {
            serving: Default::default(),
            bind_address: loopback(),
            path: "/jsonrpc".into(),
            cors: None,
            tls: None,
            tcp_rate_limits: Vec::new(),
        }
        .into(),
    ))
}
