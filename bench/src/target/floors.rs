//! The floors of the `broker` workload, in this process on 127.0.0.1: a bare tonic `Hyper.Call`
//! server and a bare axum JSON-RPC POST handler, both over rustls with client certificates (as the
//! Hyper path is), both answering with the same result the real path answered with. What the real
//! path costs beyond these two is what Tandem adds.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::routing::post;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use rustls::ServerConfig;
use serde::Serialize;
use serde_json::Value;
use tandem_hyper::certs::{CertsPlan, generate};
use tandem_proto::hyper::hyper_server::{Hyper, HyperServer};
use tandem_settings::tls::TlsSettings;
use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;

use crate::workload::broker::caller::JsonRpcServer;

/// Server and client names of the floors' own PKI.
const SERVER: &str = "floor-server";
const CLIENT: &str = "floor-client";

/// Both floor servers; they stop when this is dropped.
pub struct Floors {
    /// The tonic `Hyper.Call` server.
    pub grpc: JsonRpcServer,
    /// The axum JSON-RPC server (HTTP/1.1 and HTTP/2).
    pub axum: JsonRpcServer,
    tasks: JoinSet<()>,
    _dir: tempfile::TempDir,
}

#[derive(Clone)]
struct Answer {
    result: Arc<Value>,
    pb: Arc<tandem_proto::hyper::Response>,
}

#[tonic::async_trait]
impl Hyper for Answer {
    async fn call(
        &self,
        request: tonic::Request<tandem_proto::Request>,
    ) -> Result<tonic::Response<tandem_proto::Response>, tonic::Status> {
        let mut answer = (*self.pb).clone();
        answer.id = request.into_inner().id;
        Ok(tonic::Response::new(answer))
    }

    type ServerCallStream = tokio_stream::Empty<Result<tandem_proto::Request, tonic::Status>>;

    async fn server_call(
        &self,
        _request: tonic::Request<tonic::Streaming<tandem_proto::Response>>,
    ) -> Result<tonic::Response<Self::ServerCallStream>, tonic::Status> {
        Err(tonic::Status::unimplemented("the floor answers Call only"))
    }
}

#[derive(Serialize)]
struct RpcAnswer<'a> {
    jsonrpc: &'static str,
    id: Value,
    result: &'a Value,
}

async fn rpc(State(answer): State<Answer>, Json(request): Json<Value>) -> axum::response::Response {
    use axum::response::IntoResponse;
    let id = request.get("id").cloned().unwrap_or(Value::Null);
    Json(RpcAnswer {
        jsonrpc: "2.0",
        id,
        result: &answer.result,
    })
    .into_response()
}

impl Floors {
    /// Starts both servers, answering with `result` (the real path's answer).
    pub async fn start(result: Value) -> anyhow::Result<Self> {
        let dir = tempfile::tempdir()?;
        let certs = dir.path().join("certs");
        generate(&CertsPlan::with_operators(
            &certs,
            dir.path().join("directory"),
            &[SERVER, CLIENT],
            &[],
        ))?;
        let tls = |op: &str, verify_client: bool| TlsSettings {
            ca_certificate_files: vec![certs.join("root.crt")],
            certificate_file: Some(certs.join(format!("{op}.crt"))),
            key_file: Some(certs.join(format!("{op}.key"))),
            server_name: Some(SERVER.into()),
            verify_client,
            request_client_cert: false,
            insecure_skip_verify: false,
        };
        let server_tls = tandem_net::tls::server_config(&tls(SERVER, true), &[b"h2", b"http/1.1"])?;
        let client_tls = tandem_net::tls::client_config(&tls(CLIENT, false), &[])?;
        let pb = match result.as_object() {
            Some(map) => tandem_proto::Response {
                id: String::new(),
                result: Some(map.clone()),
                error: None,
            },
            None => anyhow::bail!("the real path's result is not an object"),
        };
        let answer = Answer {
            result: Arc::new(result),
            pb: Arc::new(pb),
        };
        let mut tasks = JoinSet::new();
        let grpc_service = HyperServer::new(answer.clone())
            .max_decoding_message_size(tandem_proto::MAX_MESSAGE_BYTES)
            .max_encoding_message_size(tandem_proto::MAX_MESSAGE_BYTES);
        let grpc_addr = serve(&mut tasks, server_tls.clone(), with(grpc_service)).await?;
        let router = axum::Router::new()
            .route("/jsonrpc", post(rpc))
            .with_state(answer);
        let axum_addr = serve(&mut tasks, server_tls, with(router)).await?;
        let name = rustls_pki_types::ServerName::try_from(SERVER)?.to_owned();
        let server = |addr| JsonRpcServer {
            addr,
            server_name: name.clone(),
            tls: client_tls.clone(),
            path: "/jsonrpc".into(),
        };
        Ok(Floors {
            grpc: server(grpc_addr),
            axum: server(axum_addr),
            tasks,
            _dir: dir,
        })
    }
}

impl Drop for Floors {
    fn drop(&mut self) {
        self.tasks.abort_all();
    }
}

type Io = TokioIo<tokio_rustls::server::TlsStream<tokio::net::TcpStream>>;
type ConnFuture = std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>;

/// Serves one connection with a tower service (HTTP/1.1 or HTTP/2 by what the client speaks).
fn with<S, B>(service: S) -> impl Fn(Io) -> ConnFuture + Send + Sync + 'static
where
    S: tower::Service<http::Request<hyper::body::Incoming>, Response = http::Response<B>>
        + Clone
        + Send
        + Sync
        + 'static,
    S::Future: Send + 'static,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    B: http_body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    move |io| {
        let service = TowerToHyperService::new(service.clone());
        Box::pin(async move {
            let _ = auto::Builder::new(TokioExecutor::new())
                .serve_connection(io, service)
                .await;
        })
    }
}

/// Accepts TLS connections on a fresh loopback port and serves each with `handle`. Connection
/// tasks belong to the accept task and end when it is aborted.
async fn serve<H>(
    tasks: &mut JoinSet<()>,
    tls: Arc<ServerConfig>,
    handle: H,
) -> anyhow::Result<SocketAddr>
where
    H: Fn(Io) -> ConnFuture + Send + Sync + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let acceptor = TlsAcceptor::from(tls);
    let handle = Arc::new(handle);
    tasks.spawn(async move {
        let mut conns = JoinSet::new();
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                // Out of fds or similar: pause instead of spinning.
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                continue;
            };
            let _ = tcp.set_nodelay(true);
            let acceptor = acceptor.clone();
            let handle = handle.clone();
            conns.spawn(async move {
                if let Ok(tls) = acceptor.accept(tcp).await {
                    handle(TokioIo::new(tls)).await;
                }
            });
            while conns.try_join_next().is_some() {}
        }
    });
    Ok(addr)
}
