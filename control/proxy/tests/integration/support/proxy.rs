//! Shared pieces of the proxy tests: a generated PKI, directory entries, settings on
//! 127.0.0.1:0, and `FakeHyper`, a small JSON-RPC app playing a proxy's Hyper node (a test
//! double of a *peer*): it answers `_directory`, plays the target's `_connectionRequest` (dial
//! the endpoint, write the token) or fails on demand, and forwards calls for other operators
//! to their proxy with `_client` injected, as Hyper does.
#![allow(clippy::unwrap_used, dead_code)]

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Map, Value, json};
use tandem_directory::entry::{DirectoryEntry, OperatorService, OperatorSettings, Permission};
use tandem_net::http::{
    JsonRpcClient, Methods, PeerInfo, RouteConfig, ServerLimits, jsonrpc_router, serve,
};
use tandem_net::jsonrpc::{ErrorObject, Request};
use tandem_proxy::settings::PublicProxySettings;
use tandem_proxy::settings::{ProxyClientSettings, ProxyEngineSettings};
use tandem_settings::datastore::{DatastoreSettings, FileDatastoreSettings};
use tandem_settings::listeners::{HostPort, JsonRpcServerSettings};
use tandem_testkit::pki::TestPki;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot};

pub const PUBLIC: &str = "public-proxy-1.ga";
pub const PRIVATE: &str = "private-proxy-1.ga";
pub const CALL_TIMEOUT: Duration = Duration::from_secs(5);

pub fn pki(dir: &Path) -> TestPki {
    TestPki::generate(
        dir,
        &[PUBLIC, PRIVATE, "hd-1", "hd-2", "ls-1", "internal-server"],
    )
    .unwrap()
}

pub fn entry(name: &str, groups: &[&str], permitted: &[&str]) -> DirectoryEntry {
    let mut e = DirectoryEntry::new(name);
    e.groups = groups.iter().map(|g| g.to_string()).collect();
    if !permitted.is_empty() {
        e.services.push(OperatorService {
            name: "internals".into(),
            permissions: permitted
                .iter()
                .map(|g| Permission {
                    group: g.to_string(),
                    rights: vec!["call".into()],
                })
                .collect(),
            methods: Vec::new(),
        });
    }
    e
}

/// An entry allowed to announce `suffixes` through `proxy`.
pub fn with_proxy_settings(
    mut e: DirectoryEntry,
    proxy: &str,
    suffixes: &[&str],
) -> DirectoryEntry {
    let mut settings = Map::new();
    settings.insert("allowed_domains".into(), json!(suffixes));
    e.settings.push(OperatorSettings {
        operator: proxy.into(),
        service: "proxy".into(),
        environment: String::new(),
        settings: Some(settings),
    });
    e
}

/// `e` with a `proxy` channel listing `endpoints`: the pairing endpoints a public proxy hands
/// out, the only ones peers dial for it.
pub fn with_pairing_endpoints(mut e: DirectoryEntry, endpoints: &[&str]) -> DirectoryEntry {
    e.channels.push(tandem_directory::entry::OperatorChannel {
        kind: "proxy".into(),
        settings: json!({ "endpoints": endpoints }).as_object().cloned(),
    });
    e
}

pub fn client_info(e: &DirectoryEntry) -> Value {
    json!({"name": e.name, "entry": e})
}

pub fn local() -> HostPort {
    HostPort {
        host: "127.0.0.1".into(),
        port: 0,
    }
}

pub fn public_settings(pki: &TestPki, dir: &Path, hyper: SocketAddr) -> PublicProxySettings {
    let mut engine = ProxyEngineSettings::default();
    engine.config.cores = Some(vec![0, 1]);
    engine.config.pin = false;
    engine.config.max_conns_per_core = 256;
    engine.config.pipe_pool_size = 16;
    engine.drain_grace = Duration::from_millis(200);
    PublicProxySettings {
        name: PUBLIC.into(),
        tls_bind_address: local(),
        internal_bind_address: local(),
        internal_endpoint: None,
        accept_timeout: Duration::from_secs(10),
        tcp_rate_limits: Vec::new(),
        datastore: DatastoreSettings::File(FileDatastoreSettings {
            filename: dir.join("public.records"),
        }),
        jsonrpc_client: ProxyClientSettings {
            endpoint: format!("http://{hyper}/jsonrpc"),
            tls: None,
            proxy_url: None,
        },
        jsonrpc_server: JsonRpcServerSettings {
            serving: Default::default(),
            bind_address: local(),
            path: "/jsonrpc".into(),
            cors: None,
            tls: Some(pki.tls_settings(PUBLIC)),
            tcp_rate_limits: Vec::new(),
        },
        call_timeout: CALL_TIMEOUT,
        engine,
        control: None,
        announcements: Default::default(),
        access_log: None,
        quotas: Default::default(),
    }
}

/// A client of the public proxy's JSON-RPC server presenting `op`'s certificate.
pub fn proxy_client(pki: &TestPki, op: &str, addr: SocketAddr) -> JsonRpcClient {
    let tls = tandem_net::tls::client_config(&pki.client_tls_settings(op, PUBLIC), &[b"http/1.1"])
        .unwrap();
    JsonRpcClient::new(
        &format!("https://{addr}/jsonrpc"),
        Some(tls),
        Some(PUBLIC),
        CALL_TIMEOUT,
    )
    .unwrap()
}

/// What the target does on `_connectionRequest`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TargetMode {
    /// Dial the endpoint and write the token (what hd-2 does).
    Dial,
    /// Answer with a JSON-RPC error.
    Fail,
}

/// A route to another operator's proxy: calls for it are forwarded with `_client` = `caller`.
pub struct Route {
    pub client: JsonRpcClient,
    pub caller: Value,
}

pub struct FakeHyper {
    pub own: String,
    pub entries: Mutex<HashMap<String, DirectoryEntry>>,
    pub mode: Mutex<TargetMode>,
    pub dialed: mpsc::Sender<(TcpStream, String)>,
    pub routes: Mutex<HashMap<String, Route>>,
    pub calls: Mutex<Vec<String>>,
}

impl FakeHyper {
    pub fn calls_to(&self, method: &str) -> usize {
        self.calls
            .lock()
            .unwrap()
            .iter()
            .filter(|m| m.as_str() == method)
            .count()
    }
}

impl Methods for FakeHyper {
    async fn call(&self, request: Request, _peer: PeerInfo) -> Result<Value, ErrorObject> {
        self.calls.lock().unwrap().push(request.method.clone());
        let (operator, method) = request.method.rsplit_once('.').unwrap();
        let mut params = request.params;
        if operator == self.own && method == "_directory" {
            let wanted = params
                .get("operator")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_owned();
            let entries: Vec<DirectoryEntry> = self
                .entries
                .lock()
                .unwrap()
                .values()
                .filter(|e| wanted.is_empty() || e.name == wanted)
                .cloned()
                .collect();
            return Ok(json!({"entries": entries}));
        }
        if method == "_connectionRequest" {
            let mode = *self.mode.lock().unwrap();
            if mode == TargetMode::Fail {
                return Err(ErrorObject::new(-100, "target cannot dial the proxy"));
            }
            let endpoint = params["endpoint"].as_str().unwrap().to_owned();
            let token = params["token"].as_str().unwrap().to_owned();
            let bytes = STANDARD.decode(&token).unwrap();
            let mut stream = TcpStream::connect(&endpoint).await.unwrap();
            stream.write_all(&bytes).await.unwrap();
            self.dialed.send((stream, token)).await.unwrap();
            return Ok(json!({}));
        }
        let route = {
            let routes = self.routes.lock().unwrap();
            routes
                .get(operator)
                .map(|r| (r.client.clone(), r.caller.clone()))
        };
        match route {
            Some((client, caller)) => {
                params.insert("_client".into(), caller);
                client.call(method, params).await.map_err(|e| match e {
                    tandem_net::http::ClientError::Rpc { error, .. } => error,
                    other => ErrorObject::new(500, other.to_string()),
                })
            }
            None => Err(ErrorObject::new(404, format!("no route to {operator}"))),
        }
    }
}

/// A running fake Hyper node (plain HTTP).
pub struct RunningHyper {
    pub hyper: Arc<FakeHyper>,
    pub addr: SocketAddr,
    pub dialed: mpsc::Receiver<(TcpStream, String)>,
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
}

impl RunningHyper {
    pub async fn start(own: &str, entries: Vec<DirectoryEntry>) -> Self {
        let (tx, dialed) = mpsc::channel(16);
        let hyper = Arc::new(FakeHyper {
            own: own.into(),
            entries: Mutex::new(entries.into_iter().map(|e| (e.name.clone(), e)).collect()),
            mode: Mutex::new(TargetMode::Dial),
            dialed: tx,
            routes: Mutex::new(HashMap::new()),
            calls: Mutex::new(Vec::new()),
        });
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let route = RouteConfig {
            body_timeout: tandem_serving::DEFAULT_BODY_TIMEOUT,
            path: "/jsonrpc".into(),
            max_body_bytes: 1 << 20,
            rate_limits: Vec::new(),
            call_timeout: Duration::from_secs(10),
            cors: None,
        };
        let router = jsonrpc_router(hyper.clone(), route);
        let (stop, rx) = oneshot::channel();
        let task = tokio::spawn(serve(
            listener,
            None,
            router,
            ServerLimits::default(),
            async {
                let _ = rx.await;
            },
        ));
        Self {
            hyper,
            addr,
            dialed,
            stop: Some(stop),
            task,
        }
    }

    pub async fn stop(mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        let _ = self.task.await;
    }
}

/// Polls `f` until true (bounded, see [`tandem_testkit::poll`]); engine counters update
/// asynchronously.
pub async fn eventually(what: &str, mut f: impl FnMut() -> bool) {
    let check = || std::future::ready(f().then_some(()));
    tandem_testkit::poll::until(what, tandem_testkit::poll::POLL_BOUND, check).await;
}

/// A self-signed certificate for `name`: (cert DER, PKCS#8 key DER).
pub fn self_signed(
    name: &str,
) -> (
    rustls_pki_types::CertificateDer<'static>,
    rustls_pki_types::PrivateKeyDer<'static>,
) {
    let ck = rcgen::generate_simple_self_signed(vec![name.to_owned()]).unwrap();
    let key = rustls_pki_types::PrivatePkcs8KeyDer::from(ck.signing_key.serialize_der());
    (ck.cert.der().clone(), key.into())
}

pub fn private_settings(
    dir: &Path,
    hyper: SocketAddr,
    internal: SocketAddr,
) -> tandem_proxy::settings::PrivateProxySettings {
    use tandem_proxy::settings::InternalEndpointSettings;
    tandem_proxy::settings::PrivateProxySettings {
        name: PRIVATE.into(),
        datastore: DatastoreSettings::File(FileDatastoreSettings {
            filename: dir.join("private.records"),
        }),
        jsonrpc_client: ProxyClientSettings {
            endpoint: format!("http://{hyper}/jsonrpc"),
            tls: None,
            proxy_url: None,
        },
        jsonrpc_server: JsonRpcServerSettings {
            serving: Default::default(),
            bind_address: local(),
            path: "/jsonrpc".into(),
            cors: None,
            tls: None,
            tcp_rate_limits: Vec::new(),
        },
        internal_endpoint: InternalEndpointSettings {
            address: internal.into(),
            tls: None,
            jsonrpc_client: None,
            jsonrpc_path: "/jsonrpc".into(),
            timeout: Duration::from_secs(5),
            idle_timeout: Duration::from_secs(60),
            send_proxy_v2: false,
        },
        call_timeout: CALL_TIMEOUT,
        dial_timeout: Duration::from_secs(5),
        reannounce_interval: Duration::from_secs(600),
        announcements: Default::default(),
    }
}

/// A public proxy serving on `127.0.0.1:0` in this test, with a JSON-RPC client as its Hyper node
/// (`PUBLIC`'s certificate).
pub struct ServedPublic {
    pub handle: tandem_proxy::PublicHandle,
    pub client: JsonRpcClient,
    stop: oneshot::Sender<()>,
    task: tokio::task::JoinHandle<Result<(), tandem_proxy::ProxyError>>,
}

impl ServedPublic {
    /// Starts the proxy of `settings` and serves it until [`ServedPublic::stop`].
    pub async fn start(settings: &PublicProxySettings, pki: &TestPki) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let proxy = tandem_proxy::PublicProxy::start(settings, listener)
            .await
            .unwrap();
        let handle = proxy.handle();
        let client = proxy_client(pki, PUBLIC, handle.jsonrpc_addr());
        let (stop, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(proxy.serve(async {
            let _ = rx.await;
        }));
        Self {
            handle,
            client,
            stop,
            task,
        }
    }

    /// Stops serving and waits until the proxy has stopped (it must stop cleanly).
    pub async fn stop(self) {
        drop((self.handle, self.client));
        let _ = self.stop.send(());
        self.task.await.unwrap().unwrap();
    }
}
