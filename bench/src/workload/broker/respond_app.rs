//! hd-2's local application for the `async-respond` row: hd-2's `jsonrpc_client` channel posts
//! each `bench` call here; the app answers `{"_async": true}` at once and then calls `respond`
//! with the result on hd-2's gateway (over one HTTP/2 connection with hd-2's certificate), as an
//! application that answers later does.

use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::client::conn::http2;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::Mutex;
use tokio::task::JoinSet;

use super::caller::JsonRpcServer;

/// The method hd-1's callers call for this row.
pub const ASYNC_METHOD: &str = "hd-2.bench";
/// Largest request the app reads, in bytes (hd-2 posts a small params object plus `_client`).
const MAX_REQUEST_BYTES: usize = 1024 * 1024;

struct Inner {
    respond_to: OnceLock<JsonRpcServer>,
    conn: Mutex<Option<http2::SendRequest<Full<Bytes>>>>,
}

/// The application's listener and its tasks (stopped on drop).
pub struct RespondApp {
    addr: SocketAddr,
    inner: Arc<Inner>,
    tasks: JoinSet<()>,
}

impl RespondApp {
    /// Binds 127.0.0.1:0 and starts serving (answers fail until [`Self::set_respond_to`]).
    pub async fn bind() -> anyhow::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let inner = Arc::new(Inner {
            respond_to: OnceLock::new(),
            conn: Mutex::new(None),
        });
        let mut tasks = JoinSet::new();
        let served = inner.clone();
        tasks.spawn(async move {
            let mut conns = JoinSet::new();
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                    continue;
                };
                let _ = tcp.set_nodelay(true);
                let inner = served.clone();
                conns.spawn(async move {
                    let service = service_fn(move |req| handle(inner.clone(), req));
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(tcp), service)
                        .await;
                });
                while conns.try_join_next().is_some() {}
            }
        });
        Ok(RespondApp { addr, inner, tasks })
    }

    /// The app's address (hd-2's `jsonrpc_client` endpoint).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Where `respond` goes: hd-2's gateway, with hd-2's certificate.
    pub fn set_respond_to(&self, server: JsonRpcServer) {
        let _ = self.inner.respond_to.set(server);
    }
}

impl Drop for RespondApp {
    fn drop(&mut self) {
        self.tasks.abort_all();
    }
}

async fn handle(
    inner: Arc<Inner>,
    req: http::Request<hyper::body::Incoming>,
) -> Result<http::Response<Full<Bytes>>, std::convert::Infallible> {
    let body = Limited::new(req.into_body(), MAX_REQUEST_BYTES)
        .collect()
        .await;
    let request: Value = body
        .ok()
        .and_then(|b| serde_json::from_slice(&b.to_bytes()).ok())
        .unwrap_or(Value::Null);
    let id = request.get("id").cloned().unwrap_or(Value::Null);
    let answer = match id.as_str() {
        Some(hyper_id) => {
            let hyper_id = hyper_id.to_owned();
            tokio::spawn(async move {
                if let Err(e) = respond(&inner, &hyper_id).await {
                    tracing::warn!(error = %e, "respond failed");
                }
            });
            json!({"jsonrpc": "2.0", "id": id, "result": {"_async": true}})
        }
        None => json!({"jsonrpc": "2.0", "id": id, "error": {"code": -32600, "message": "no id"}}),
    };
    Ok(http::Response::new(Full::new(Bytes::from(
        answer.to_string(),
    ))))
}

/// `respond {id, result}` on hd-2's gateway.
async fn respond(inner: &Inner, hyper_id: &str) -> Result<(), String> {
    let server = inner
        .respond_to
        .get()
        .ok_or("hd-2's gateway is not known yet")?;
    let mut send = {
        let mut conn = inner.conn.lock().await;
        match conn.as_ref().filter(|c| !c.is_closed()) {
            Some(c) => c.clone(),
            None => {
                let fresh = open(server).await?;
                *conn = Some(fresh.clone());
                fresh
            }
        }
    };
    let body = json!({
        "jsonrpc": "2.0", "method": "respond", "id": 1,
        "params": {"id": hyper_id, "result": {"hello": "tandem", "answered": "later"}}
    });
    send.ready().await.map_err(|e| e.to_string())?;
    let uri = format!(
        "https://{}:{}{}",
        name(server),
        server.addr.port(),
        server.path
    );
    let req = http::Request::post(uri)
        .header(http::header::CONTENT_TYPE, "application/json")
        .body(Full::new(Bytes::from(body.to_string())))
        .map_err(|e| e.to_string())?;
    let answer = send.send_request(req).await.map_err(|e| e.to_string())?;
    let bytes = Limited::new(answer.into_body(), MAX_REQUEST_BYTES)
        .collect()
        .await
        .map_err(|e| e.to_string())?
        .to_bytes();
    let v: Value = serde_json::from_slice(&bytes).map_err(|e| e.to_string())?;
    match v.get("error") {
        Some(e) => Err(format!("respond refused: {e}")),
        None => Ok(()),
    }
}

fn name(server: &JsonRpcServer) -> String {
    match &server.server_name {
        rustls_pki_types::ServerName::DnsName(n) => n.as_ref().to_owned(),
        _ => server.addr.ip().to_string(),
    }
}

async fn open(server: &JsonRpcServer) -> Result<http2::SendRequest<Full<Bytes>>, String> {
    let mut config = (*server.tls).clone();
    config.alpn_protocols = vec![b"h2".to_vec()];
    let tcp = tokio::net::TcpStream::connect(server.addr)
        .await
        .map_err(|e| e.to_string())?;
    let _ = tcp.set_nodelay(true);
    let tls = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(server.server_name.clone(), tcp)
        .await
        .map_err(|e| e.to_string())?;
    let (send, conn) = http2::handshake(TokioExecutor::new(), TokioIo::new(tls))
        .await
        .map_err(|e| e.to_string())?;
    tokio::spawn(conn);
    Ok(send)
}
