//! gRPC fixtures: a generated PKI, a static directory, stub sinks, and
//! servers/clients on 127.0.0.1:0.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::pki::TestPki;
use serde_json::{Map, Value, json};
use tandem_directory::entry::{
    DirectoryEntry, OperatorCertificate, OperatorChannel, OperatorService, Permission,
    ServiceMethod,
};
use tandem_hyper::broker::types::{
    BoxFuture, ClientInfo, DeliveryError, DirectorySource, Entries, HyperRequest, HyperResponse,
    OperatorName, RequestSink, SourceError,
};
use tandem_hyper::grpc::{GrpcClient, GrpcServer, GrpcServerHandle};
use tandem_proto::hyper::hyper_client::HyperClient;
use tandem_settings::hyper::{GrpcClientSettings, GrpcServerSettings, Timeouts};
use tandem_settings::listeners::HostPort;
use tandem_settings::tls::TlsSettings;
use tokio::net::TcpListener;
use tokio::sync::{Notify, oneshot};

/// A directory that never changes.
pub struct StaticDirectory(pub Entries);

impl DirectorySource for StaticDirectory {
    fn entries(&self) -> BoxFuture<'_, Result<Entries, SourceError>> {
        let entries = self.0.clone();
        Box::pin(async move { Ok(entries) })
    }
}

/// An entry pinning `op`'s TLS certificate, in `group`, with a `grpc_server` channel when given.
pub fn entry(pki: &TestPki, op: &str, group: &str, grpc_server: Option<Value>) -> DirectoryEntry {
    let mut e = DirectoryEntry::new(op);
    e.groups = vec![group.into()];
    if let Some(fp) = pki.fingerprint(op) {
        e.certificates.push(OperatorCertificate {
            fingerprint: fp.to_owned(),
            key_usage: "encryption".into(),
        });
    }
    if let Some(settings) = grpc_server {
        e.channels.push(OperatorChannel {
            kind: "grpc_server".into(),
            settings: settings.as_object().cloned(),
        });
    }
    e
}

/// Lets `group` call `method` on `e`.
pub fn allow(e: &mut DirectoryEntry, group: &str, method: &str) {
    e.services.push(OperatorService {
        name: format!("svc-{method}"),
        permissions: vec![Permission {
            group: group.into(),
            rights: vec!["call".into()],
        }],
        methods: vec![ServiceMethod {
            name: method.into(),
            permissions: vec![],
            parameters: None,
        }],
    });
}

pub fn directory(entries: Vec<DirectoryEntry>) -> Arc<dyn DirectorySource> {
    let map: BTreeMap<String, DirectoryEntry> =
        entries.into_iter().map(|e| (e.name.clone(), e)).collect();
    Arc::new(StaticDirectory(Arc::new(map)))
}

pub fn pki(dir: &Path) -> TestPki {
    TestPki::generate(dir, &["hd-1", "hd-2", "hd-3"]).expect("test PKI")
}

pub fn timeouts(call_ms: u64) -> Timeouts {
    Timeouts {
        call: Duration::from_millis(call_ms),
        connect: Duration::from_secs(5),
    }
}

pub fn request(op: &str, method: &str, id: &str, params: Value) -> HyperRequest {
    HyperRequest {
        method: format!("{op}.{method}"),
        params: params.as_object().cloned().unwrap_or_default(),
        id: format!("{op}.{method}({id})"),
        client_name: String::new(),
    }
}

pub fn me(name: &str) -> ClientInfo {
    ClientInfo {
        name: name.parse().unwrap(),
        entry: DirectoryEntry::new(name),
    }
}

/// What a sink saw.
#[derive(Debug, Clone)]
pub struct Seen {
    pub request: HyperRequest,
    pub client: String,
}

/// Answers `{"method", "params", "client"}` and records every request.
#[derive(Default)]
pub struct EchoSink {
    pub seen: Mutex<Vec<Seen>>,
}

impl RequestSink for EchoSink {
    fn deliver_request(
        &self,
        request: HyperRequest,
        caller: OperatorName,
    ) -> BoxFuture<'_, Result<HyperResponse, DeliveryError>> {
        self.seen.lock().unwrap().push(Seen {
            request: request.clone(),
            client: caller.to_string(),
        });
        let result = json!({
            "method": request.method,
            "params": Value::Object(request.params.clone()),
            "client": caller,
        });
        Box::pin(async move { Ok(HyperResponse::result(request.id, obj(result))) })
    }
}

/// Never answers; signals each arrival.
#[derive(Default)]
pub struct HangSink {
    pub arrived: Notify,
}

impl RequestSink for HangSink {
    fn deliver_request(
        &self,
        _request: HyperRequest,
        _caller: OperatorName,
    ) -> BoxFuture<'_, Result<HyperResponse, DeliveryError>> {
        self.arrived.notify_one();
        Box::pin(std::future::pending())
    }
}

pub fn obj(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        other => panic!("not an object: {other}"),
    }
}

pub fn server_settings(pki: &TestPki, op: &str) -> GrpcServerSettings {
    GrpcServerSettings {
        serving: Default::default(),
        bind_address: HostPort {
            host: "127.0.0.1".into(),
            port: 0,
        },
        tls: pki.tls_settings(op),
        tcp_rate_limits: vec![],
    }
}

/// A running server and the sender that stops it.
pub struct Server {
    pub handle: GrpcServerHandle,
    pub stop: Option<oneshot::Sender<()>>,
}

impl Server {
    pub fn addr(&self) -> String {
        self.handle.local_addr.to_string()
    }
}

/// A listener on 127.0.0.1:0 and its address.
pub async fn bind() -> (TcpListener, String) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    (listener, addr)
}

pub fn start_server(
    pki: &TestPki,
    op: &str,
    listener: TcpListener,
    directory: Arc<dyn DirectorySource>,
    sink: Arc<dyn RequestSink>,
    call_ms: u64,
) -> Server {
    start_server_with(
        server_settings(pki, op),
        op,
        listener,
        directory,
        sink,
        call_ms,
    )
}

pub fn start_server_with(
    settings: GrpcServerSettings,
    op: &str,
    listener: TcpListener,
    directory: Arc<dyn DirectorySource>,
    sink: Arc<dyn RequestSink>,
    call_ms: u64,
) -> Server {
    let (tx, rx) = oneshot::channel();
    let handle = GrpcServer::start(
        tandem_serving::ServingMetrics::default(),
        &settings,
        op,
        &timeouts(call_ms),
        directory,
        sink,
        listener,
        async move {
            let _ = rx.await;
        },
    )
    .expect("server starts");
    Server {
        handle,
        stop: Some(tx),
    }
}

/// `op`'s grpc_client with the TLS identity of `cert_op`.
pub fn client_as(
    pki: &TestPki,
    op: &str,
    cert_op: &str,
    directory: Arc<dyn DirectorySource>,
    call_ms: u64,
) -> Arc<GrpcClient> {
    let settings = GrpcClientSettings {
        tls: pki.tls_settings(cert_op),
        use_proxy: true,
    };
    GrpcClient::new(&settings, op, timeouts(call_ms), directory).expect("client")
}

/// A bare tonic client speaking to `addr` over mTLS with `tls` (ServerName `server_name`), for
/// sending what our own channel never would (wrong clientName, oversized messages).
pub async fn raw_client(
    tls: &TlsSettings,
    addr: &str,
    server_name: &str,
) -> HyperClient<tonic::transport::Channel> {
    let mut config = (*tandem_net::tls::client_config(tls, &[b"h2"]).unwrap()).clone();
    config.alpn_protocols = vec![b"h2".to_vec()];
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let (addr, name) = (addr.to_owned(), server_name.to_owned());
    let channel = tonic::transport::Endpoint::from_static("http://raw.invalid")
        .connect_with_connector(tower::service_fn(move |_: http::Uri| {
            let (connector, addr, name) = (connector.clone(), addr.clone(), name.clone());
            async move {
                let tcp = tokio::net::TcpStream::connect(addr).await?;
                let name = rustls_pki_types::ServerName::try_from(name).unwrap();
                let tls = connector.connect(name, tcp).await?;
                Ok::<_, std::io::Error>(hyper_util::rt::TokioIo::new(tls))
            }
        }))
        .await
        .expect("raw connect");
    HyperClient::new(channel)
}

/// Why a [`ping`] got no answer.
#[derive(Debug)]
pub enum PingError {
    /// The request never left the client: its connection closed (a GOAWAY) before it was sent.
    /// Safe to send again (gRPC's "transparent retry").
    NeverSent(String),
    /// Anything else: the call may have reached the server and was not answered.
    Failed(String),
}

/// Whether `status` reports a request the client never sent (the product's own test: hyper's
/// `Canceled`, a refused stream, a GOAWAY that applied to it).
pub use tandem_hyper::grpc::convert::never_sent;

/// Calls `<to>._ping` (call `n`) as `from` over `client`: the name the answering server gives in
/// `serverInfo`, or why there is no answer.
pub async fn ping(
    client: &mut HyperClient<tonic::transport::Channel>,
    from: &str,
    to: &str,
    n: u64,
) -> Result<String, PingError> {
    let mut call = request(to, "_ping", &format!("n:{n}"), json!({}));
    call.client_name = from.to_owned();
    let pb = tandem_hyper::grpc::convert::request_to_pb(call);
    let response = client.call(pb).await.map_err(|s| {
        if never_sent(&s) {
            PingError::NeverSent(s.to_string())
        } else {
            PingError::Failed(s.to_string())
        }
    })?;
    let response = tandem_hyper::grpc::convert::response_from_pb(response.into_inner());
    match (response.result, response.error) {
        (Some(result), None) => result["serverInfo"]["name"]
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| PingError::Failed(format!("no serverInfo.name in {result:?}"))),
        (_, error) => Err(PingError::Failed(format!("error answer: {error:?}"))),
    }
}

/// What [`raw_client`] returns: a tonic client over one cached channel.
pub type RawClient = HyperClient<tonic::transport::Channel>;
