//! The brokered-connection mesh: sd, hd-1 (gateway + gRPC client), hd-2 (gRPC server behind
//! `public-proxy-1.ga`, reverse stream to it), the proxy's Hyper and an in-test stand-in of the
//! public proxy's `requestConnection` that pairs through a real `tandem_engine`.
#![allow(clippy::unwrap_used, dead_code)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::Json;
use axum::extract::State;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value, json};
use tandem_directory::Section;
use tandem_engine::{Engine, EngineConfig, EngineHandle, PairKind, RefuseAll};
use tandem_hyper::hyper_server::{HyperServer, Listeners};
use tandem_settings::HyperSettings;
use tandem_settings::hyper::{
    ChannelKind, ChannelSettings, GrpcClientSettings, GrpcServerSettings, JsonRpcClientSettings,
    Timeouts,
};
use tandem_testkit::hyper_node::{change_record as record, channel, loopback};
use tandem_testkit::pki::TestPki;
use tokio::net::TcpListener;

use tandem_testkit::hyper_node::{call, hd_services, listener};
use tandem_testkit::sd::{
    Sd, admin_chain, certificates_record, client, file_store, groups_record,
    settings as sd_settings, start,
};

/// The proxy operator.
pub const PROXY: &str = "public-proxy-1.ga";
/// Deadline of one call (generous: the first call sets up two TLS connections and a pair).
pub const CALL: Duration = Duration::from_secs(5);

/// The public proxy stand-in: `requestConnection` creates an engine pair, has the proxy's Hyper
/// send `<to>._connectionRequest` with side B, and returns side A.
#[derive(Clone)]
pub struct ProxyApp {
    engine: EngineHandle,
    /// The proxy Hyper's gateway.
    gateway: String,
    requests: Arc<AtomicUsize>,
    /// When set, the endpoint handed to the requester instead of the pairing endpoint (a lying
    /// proxy); the target is still sent the real one.
    offered: Arc<std::sync::Mutex<Option<String>>>,
}

impl ProxyApp {
    /// `requestConnection` calls answered so far.
    pub fn requests(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }

    /// Hands `endpoint` to later requesters instead of the pairing endpoint (`None`: the real one).
    pub fn offer(&self, endpoint: Option<String>) {
        *self.offered.lock().unwrap() = endpoint;
    }
}

/// Standard base64 of a token.
pub fn token_text(bytes: [u8; 32]) -> String {
    STANDARD.encode(bytes)
}

/// An address where nothing listens.
pub async fn closed_port() -> String {
    let l = listener().await;
    let addr = l.local_addr().unwrap().to_string();
    drop(l);
    addr
}

async fn proxy_handler(State(app): State<ProxyApp>, Json(request): Json<Value>) -> Json<Value> {
    let id = request["id"].clone();
    let params = &request["params"];
    let reply = if request["method"] != "requestConnection" {
        json!({"error": {"code": -32601, "message": "method not found"}})
    } else {
        app.requests.fetch_add(1, Ordering::SeqCst);
        let to = params["to"].as_str().unwrap_or_default();
        let ticket = app.engine.create_pair(PairKind::Direct).unwrap();
        let endpoint = app.engine.local_addrs().pairing.to_string();
        let target = json!({"endpoint": endpoint, "client": params["_client"],
            "channel": params["channel"], "token": token_text(*ticket.side_b.as_bytes())});
        let method = format!("{to}._connectionRequest");
        let (_, body) = call(&app.gateway, &method, target, json!("cr")).await;
        match body.get("error") {
            Some(error) => json!({"error": error}),
            None => {
                let offered = app.offered.lock().unwrap().clone().unwrap_or(endpoint);
                json!({"result": {"token": token_text(*ticket.side_a.as_bytes()),
                "endpoint": offered}})
            }
        }
    };
    let mut reply = reply;
    reply["jsonrpc"] = json!("2.0");
    reply["id"] = id;
    Json(reply)
}

async fn start_proxy_app(app: ProxyApp) -> SocketAddr {
    let listener = listener().await;
    let addr = listener.local_addr().unwrap();
    let router = axum::Router::new()
        .route("/jsonrpc", axum::routing::post(proxy_handler))
        .with_state(app);
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    addr
}

/// Pairs completed by the engine.
pub fn paired(engine: &EngineHandle) -> u64 {
    engine.stats().iter().map(|s| s.paired).sum()
}

fn service(name: &str, group: &str, methods: &[&str]) -> Value {
    let methods: Vec<Value> = methods
        .iter()
        .map(|m| json!({"name": m, "permissions": []}))
        .collect();
    json!({"name": name, "permissions": [{"group": group, "rights": ["call"]}], "methods": methods})
}

/// hd-1 may call hd-2's `_ping` and the proxy's `requestConnection`; the proxy may call hd-2's
/// `_connectionRequest`; hd-2's gRPC server is reachable only through the proxy, whose pairing
/// endpoint is `pairing` (its entry's `proxy` channel).
async fn publish(
    pki: &TestPki,
    sd: SocketAddr,
    hd2_grpc: SocketAddr,
    proxy_grpc: SocketAddr,
    pairing: SocketAddr,
) {
    let mut hd2_services = hd_services().as_array().unwrap().clone();
    hd2_services.push(service(
        "proxy-connections",
        "proxy-providers",
        &["_connectionRequest"],
    ));
    let grpc_client = json!({"type": "grpc_client", "settings": {}});
    let entries = [
        (
            "hd-1",
            "health-departments",
            hd_services(),
            json!([grpc_client]),
        ),
        (
            "hd-2",
            "health-departments",
            Value::Array(hd2_services),
            json!([grpc_client, {"type": "grpc_server",
                "settings": {"address": hd2_grpc.to_string(), "proxy": PROXY}}]),
        ),
        (
            PROXY,
            "proxy-providers",
            json!([service(
                "hd-proxy",
                "health-departments",
                &["requestConnection"]
            )]),
            json!([grpc_client, {"type": "grpc_server",
                "settings": {"address": proxy_grpc.to_string()}},
                {"type": "proxy", "settings": {"endpoints": [pairing.to_string()]}}]),
        ),
    ];
    let mut records = Vec::new();
    for (op, group, services, channels) in entries {
        records.push(certificates_record(pki, op));
        records.push(groups_record(op, &[group]));
        records.push(record(op, Section::Services, services));
        records.push(record(op, Section::Channels, channels));
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
        connect: Duration::from_secs(3),
    };
    tandem_testkit::hyper_node::api_settings(pki, sd, op, channels, timeouts)
}

fn grpc_server(pki: &TestPki, op: &str) -> ChannelSettings {
    channel(ChannelKind::GrpcServer(GrpcServerSettings {
        serving: Default::default(),
        bind_address: loopback(),
        tls: pki.tls_settings(op),
        tcp_rate_limits: Vec::new(),
    }))
}

fn grpc_client(pki: &TestPki, op: &str) -> ChannelSettings {
    channel(ChannelKind::GrpcClient(GrpcClientSettings {
        tls: pki.tls_settings(op),
        use_proxy: true,
    }))
}

fn gateway() -> ChannelSettings {
    tandem_testkit::hyper_node::plain_gateway()
}

fn url(listener: &TcpListener) -> String {
    format!("http://{}/jsonrpc", listener.local_addr().unwrap())
}

/// Everything running.
pub struct Mesh {
    _tmp: tempfile::TempDir,
    sd: Sd,
    pub engine: EngineHandle,
    pub proxy_app: ProxyApp,
    pub proxy: HyperServer,
    pub hd1: HyperServer,
    /// `None` after [`Mesh::without_hd2`].
    pub hd2: Option<HyperServer>,
    /// hd-1's gateway.
    pub url: String,
    /// The proxy Hyper's gateway.
    pub proxy_url: String,
}

impl Mesh {
    /// Starts everything and waits until hd-2's reverse stream to the proxy is up.
    pub async fn start() -> Self {
        Self::start_with(EngineConfig::default().idle_timeout).await
    }

    /// [`Mesh::start`] with the engine closing pairs idle for `idle_timeout`.
    pub async fn start_with(idle_timeout: Option<Duration>) -> Self {
        let tmp = tempfile::tempdir().unwrap();
        let pki = TestPki::generate(tmp.path(), &["hd-1", "hd-2", "sd-1", PROXY]).unwrap();
        let sd = start(sd_settings(&pki, file_store(tmp.path()), None)).await;
        let (hd2_grpc, proxy_grpc) = (listener().await, listener().await);
        let (hd1_gateway, proxy_gateway) = (listener().await, listener().await);
        let (url, proxy_url) = (url(&hd1_gateway), url(&proxy_gateway));
        let config = EngineConfig {
            cores: Some(vec![0]),
            pin: false,
            idle_timeout,
            ..EngineConfig::default()
        };
        let (engine, _events) = Engine::start(config, Arc::new(RefuseAll)).unwrap();
        publish(
            &pki,
            sd.addr,
            hd2_grpc.local_addr().unwrap(),
            proxy_grpc.local_addr().unwrap(),
            engine.local_addrs().pairing,
        )
        .await;
        let proxy_app = ProxyApp {
            engine: engine.clone(),
            gateway: proxy_url.clone(),
            requests: Arc::new(AtomicUsize::new(0)),
            offered: Arc::default(),
        };
        let app = start_proxy_app(proxy_app.clone()).await;

        let proxy_channels = vec![
            channel(ChannelKind::JsonRpcClient(JsonRpcClientSettings {
                endpoint: Some(format!("http://{app}/jsonrpc")),
                proxy_url: None,
                local: true,
                tls: None,
            })),
            grpc_server(&pki, PROXY),
            grpc_client(&pki, PROXY),
            gateway(),
        ];
        let listeners = Listeners {
            grpc: Some(proxy_grpc.into()),
            jsonrpc: Some(proxy_gateway.into()),
        };
        let proxy = HyperServer::start(
            &hyper_settings(&pki, sd.addr, PROXY, proxy_channels),
            listeners,
        )
        .unwrap();
        let listeners = Listeners {
            grpc: Some(hd2_grpc.into()),
            jsonrpc: None,
        };
        let hd2_channels = vec![grpc_server(&pki, "hd-2"), grpc_client(&pki, "hd-2")];
        let hd2 = HyperServer::start(
            &hyper_settings(&pki, sd.addr, "hd-2", hd2_channels),
            listeners,
        )
        .unwrap();
        let listeners = Listeners {
            grpc: None,
            jsonrpc: Some(hd1_gateway.into()),
        };
        let hd1_channels = vec![grpc_client(&pki, "hd-1"), gateway()];
        let hd1 = HyperServer::start(
            &hyper_settings(&pki, sd.addr, "hd-1", hd1_channels),
            listeners,
        )
        .unwrap();
        let reverse = proxy.grpc_server.as_ref().unwrap().reverse.clone();
        assert!(
            reverse.wait_for("hd-2", Duration::from_secs(10)).await,
            "hd-2 keeps a reverse stream to the proxy"
        );
        Self {
            _tmp: tmp,
            sd,
            engine,
            proxy_app,
            proxy,
            hd1,
            hd2: Some(hd2),
            url,
            proxy_url,
        }
    }

    /// Stops hd-2 (its reverse stream to the proxy ends with it).
    pub async fn without_hd2(self) -> Self {
        let hd2_gone = self.hd2.expect("hd-2 is running");
        let reverse = self.proxy.grpc_server.as_ref().unwrap().reverse.clone();
        tokio::time::timeout(Duration::from_secs(15), hd2_gone.shutdown())
            .await
            .unwrap();
        assert!(
            reverse.wait_gone("hd-2", Duration::from_secs(10)).await,
            "the proxy saw hd-2's reverse stream end"
        );
        Self { hd2: None, ..self }
    }

    /// A local app's `hd-2._ping` on hd-1's gateway.
    pub async fn ping(&self, id: i64) -> (u16, Value) {
        call(&self.url, "hd-2._ping", json!({"n": id}), json!(id)).await
    }

    /// Stops everything (bounded).
    pub async fn stop(self) {
        tokio::time::timeout(Duration::from_secs(30), async {
            self.hd1.shutdown().await;
            if let Some(hd2) = self.hd2 {
                hd2.shutdown().await;
            }
            self.proxy.shutdown().await;
            self.sd.stop().await;
        })
        .await
        .unwrap();
        let engine = self.engine;
        tokio::task::spawn_blocking(move || engine.shutdown())
            .await
            .unwrap()
            .unwrap();
    }
}

/// `hd-2._connectionRequest` with `params`, sent by the proxy's Hyper (as the real proxy does),
/// pushed to hd-2 over its reverse stream.
pub async fn reverse_call(mesh: &Mesh, params: Value) -> (u16, Value) {
    reverse_call_at(mesh.proxy_url.clone(), params, "cr".into()).await
}

/// [`reverse_call`] on the proxy gateway `url` with the JSON-RPC id `id` (spawnable; concurrent
/// calls need distinct ids).
pub async fn reverse_call_at(url: String, params: Value, id: String) -> (u16, Value) {
    call(&url, "hd-2._connectionRequest", params, json!(id)).await
}
