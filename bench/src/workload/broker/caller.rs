//! The harness's native clients: JSON-RPC over HTTPS (HTTP/1.1 keep-alive, one connection per
//! caller; or HTTP/2, callers multiplexed) and a bare tonic `Hyper.Call` client, all over rustls
//! with a client certificate. Each call carries a unique id and its answer is checked: the same id
//! back and a result, else the call counts as an error with the reason.

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::client::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::ClientConfig;
use rustls_pki_types::ServerName;
use serde::Deserialize;
use serde::de::IgnoredAny;
use tandem_proto::hyper::hyper_client::HyperClient;
use tokio::net::{TcpSocket, TcpStream};
use tokio_rustls::TlsConnector;
use tonic::transport::{Channel, Endpoint};

/// Largest answer body read, in bytes (a `_ping` answer carries the callee's directory entry:
/// a few KiB; 4 MiB is the gRPC message bound the answer crossed).
const MAX_ANSWER_BYTES: usize = 4 * 1024 * 1024;

/// The HTTP version callers speak to a JSON-RPC server.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Http {
    /// HTTP/1.1 keep-alive, one connection per caller.
    H1,
    /// HTTP/2, callers multiplexed on shared connections.
    H2,
}

impl Http {
    /// Label in the report.
    pub fn as_str(self) -> &'static str {
        match self {
            Http::H1 => "h1",
            Http::H2 => "h2",
        }
    }
}

/// Where JSON-RPC calls go and how to authenticate.
#[derive(Clone)]
pub struct JsonRpcServer {
    /// Address.
    pub addr: SocketAddr,
    /// Name its certificate is verified against (also the `Host`).
    pub server_name: ServerName<'static>,
    /// Client config (trust anchor and client certificate); ALPN is set per connection.
    pub tls: Arc<ClientConfig>,
    /// Request path, e.g. `/jsonrpc`.
    pub path: String,
}

/// One caller's way to make a call.
pub enum Conn {
    /// JSON-RPC over HTTP/1.1.
    H1(http1::SendRequest<Full<Bytes>>),
    /// JSON-RPC over HTTP/2.
    H2(http2::SendRequest<Full<Bytes>>),
    /// `Hyper.Call` over tonic.
    Grpc(HyperClient<Channel>),
}

async fn tcp(addr: SocketAddr, from: Option<Ipv4Addr>) -> std::io::Result<TcpStream> {
    let socket = TcpSocket::new_v4()?;
    if let Some(ip) = from {
        socket.bind(SocketAddr::V4(SocketAddrV4::new(ip, 0)))?;
    }
    let s = socket.connect(addr).await?;
    s.set_nodelay(true)?;
    Ok(s)
}

async fn tls(
    server: &JsonRpcServer,
    alpn: &[u8],
    from: Option<Ipv4Addr>,
) -> Result<TokioIo<tokio_rustls::client::TlsStream<TcpStream>>, String> {
    let mut config = (*server.tls).clone();
    config.alpn_protocols = vec![alpn.to_vec()];
    let stream = tcp(server.addr, from)
        .await
        .map_err(|e| format!("connect: {e}"))?;
    let tls = TlsConnector::from(Arc::new(config))
        .connect(server.server_name.clone(), stream)
        .await
        .map_err(|e| format!("TLS: {e}"))?;
    Ok(TokioIo::new(tls))
}

/// Opens one JSON-RPC connection. The connection task is spawned on the current runtime and ends
/// when the connection closes.
pub async fn connect(
    server: &JsonRpcServer,
    http: Http,
    from: Option<Ipv4Addr>,
) -> Result<Conn, String> {
    match http {
        Http::H1 => {
            let io = tls(server, b"http/1.1", from).await?;
            let (send, conn) = http1::handshake(io)
                .await
                .map_err(|e| format!("HTTP/1.1 handshake: {e}"))?;
            tokio::spawn(conn);
            Ok(Conn::H1(send))
        }
        Http::H2 => {
            let io = tls(server, b"h2", from).await?;
            let (send, conn) = http2::handshake(TokioExecutor::new(), io)
                .await
                .map_err(|e| format!("HTTP/2 handshake: {e}"))?;
            tokio::spawn(conn);
            Ok(Conn::H2(send))
        }
    }
}

/// A tonic channel to a `Hyper` server over TLS (ALPN h2).
pub async fn connect_grpc(server: &JsonRpcServer) -> Result<HyperClient<Channel>, String> {
    let mut config = (*server.tls).clone();
    config.alpn_protocols = vec![b"h2".to_vec()];
    let config = Arc::new(config);
    let addr = server.addr;
    let name = server.server_name.clone();
    let channel = Endpoint::from_static("http://floor")
        .connect_with_connector(tower::service_fn(move |_: http::Uri| {
            let config = config.clone();
            let name = name.clone();
            async move {
                let s = tcp(addr, None).await?;
                let tls = TlsConnector::from(config).connect(name, s).await?;
                Ok::<_, std::io::Error>(TokioIo::new(tls))
            }
        }))
        .await
        .map_err(|e| format!("gRPC connect: {e}"))?;
    Ok(HyperClient::new(channel)
        .max_decoding_message_size(tandem_proto::MAX_MESSAGE_BYTES)
        .max_encoding_message_size(tandem_proto::MAX_MESSAGE_BYTES))
}

#[derive(Deserialize)]
struct Answer {
    id: Option<u64>,
    result: Option<IgnoredAny>,
    error: Option<serde_json::Value>,
}

/// The JSON-RPC request body of call `id`.
pub fn request_body(method: &str, id: u64) -> Bytes {
    Bytes::from(format!(
        r#"{{"jsonrpc":"2.0","method":"{method}","id":{id},"params":{{"hello":"tandem"}}}}"#
    ))
}

impl Conn {
    /// False once the connection can no longer carry calls (the caller reconnects).
    pub fn is_open(&self) -> bool {
        match self {
            Conn::H1(s) => !s.is_closed(),
            Conn::H2(s) => !s.is_closed(),
            Conn::Grpc(_) => true,
        }
    }

    /// One call with id `id`; `Err(reason)` for a transport failure, a JSON-RPC error or an
    /// answer that is not the one asked for.
    pub async fn call(
        &mut self,
        server: &JsonRpcServer,
        method: &str,
        id: u64,
    ) -> Result<(), String> {
        if let Conn::Grpc(client) = self {
            return grpc_call(client, method, id).await;
        }
        let (status, bytes) = self.exchange(server, method, id).await?;
        check_answer(status, &bytes, id)
    }

    /// One JSON-RPC POST; the answer's status and body.
    async fn exchange(
        &mut self,
        server: &JsonRpcServer,
        method: &str,
        id: u64,
    ) -> Result<(http::StatusCode, Bytes), String> {
        let answer = match self {
            Conn::Grpc(_) => return Err("not a JSON-RPC connection".into()),
            Conn::H1(s) => {
                s.ready().await.map_err(|e| format!("HTTP/1.1: {e}"))?;
                let req = http::Request::post(server.path.as_str())
                    .header(http::header::HOST, server_host(server))
                    .header(http::header::CONTENT_TYPE, "application/json")
                    .body(Full::new(request_body(method, id)))
                    .map_err(|e| e.to_string())?;
                s.send_request(req)
                    .await
                    .map_err(|e| format!("HTTP/1.1: {e}"))?
            }
            Conn::H2(s) => {
                s.ready().await.map_err(|e| format!("HTTP/2: {e}"))?;
                let uri = format!("https://{}{}", server_host(server), server.path);
                let req = http::Request::post(uri)
                    .header(http::header::CONTENT_TYPE, "application/json")
                    .body(Full::new(request_body(method, id)))
                    .map_err(|e| e.to_string())?;
                s.send_request(req)
                    .await
                    .map_err(|e| format!("HTTP/2: {e}"))?
            }
        };
        let status = answer.status();
        let bytes = Limited::new(answer.into_body(), MAX_ANSWER_BYTES)
            .collect()
            .await
            .map_err(|e| format!("reading the answer: {e}"))?
            .to_bytes();
        Ok((status, bytes))
    }
}

/// One call of `method` over a fresh HTTP/1.1 connection; the answer's `result`.
pub async fn fetch_result(
    server: &JsonRpcServer,
    method: &str,
) -> Result<serde_json::Value, String> {
    let mut conn = connect(server, Http::H1, None).await?;
    let (status, bytes) = conn.exchange(server, method, 1).await?;
    check_answer(status, &bytes, 1)?;
    let mut v: serde_json::Value = serde_json::from_slice(&bytes).map_err(|e| e.to_string())?;
    Ok(v["result"].take())
}

fn server_host(server: &JsonRpcServer) -> String {
    match &server.server_name {
        ServerName::DnsName(n) => format!("{}:{}", n.as_ref(), server.addr.port()),
        _ => server.addr.to_string(),
    }
}

fn check_answer(status: http::StatusCode, bytes: &[u8], id: u64) -> Result<(), String> {
    let answer: Answer = serde_json::from_slice(bytes)
        .map_err(|_| format!("HTTP {status}: not a JSON-RPC answer"))?;
    if let Some(e) = answer.error {
        let code = e.get("code").cloned().unwrap_or_default();
        let msg = e.get("message").and_then(|m| m.as_str()).unwrap_or("");
        return Err(format!("JSON-RPC error {code}: {}", truncate(msg)));
    }
    if answer.id != Some(id) {
        return Err(format!("answer for id {:?}, asked {id}", answer.id));
    }
    if answer.result.is_none() {
        return Err("answer without result".into());
    }
    Ok(())
}

fn truncate(s: &str) -> String {
    // Ids, pair tokens and ports vary per call: keep the message's stable head only.
    s.chars().take(100).collect()
}

async fn grpc_call(client: &mut HyperClient<Channel>, method: &str, id: u64) -> Result<(), String> {
    let mut params = serde_json::Map::new();
    params.insert("hello".into(), "tandem".into());
    let params = Some(params);
    let want = format!("{method}({id})");
    let request = tandem_proto::Request {
        method: method.to_owned(),
        params,
        id: want.clone(),
        client_name: "floor-client".into(),
    };
    let answer = client
        .call(request)
        .await
        .map_err(|s| format!("gRPC {:?}: {}", s.code(), truncate(s.message())))?
        .into_inner();
    if answer.id != want || answer.result.is_none() {
        return Err(format!("gRPC answer for {:?}, asked {want:?}", answer.id));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_are_checked_by_id_and_result() {
        let ok = br#"{"jsonrpc":"2.0","id":7,"result":{"a":1}}"#;
        assert!(check_answer(http::StatusCode::OK, ok, 7).is_ok());
        assert!(
            check_answer(http::StatusCode::OK, ok, 8)
                .unwrap_err()
                .contains("asked 8")
        );
        let err = br#"{"jsonrpc":"2.0","id":7,"error":{"code":-32000,"message":"busy"}}"#;
        assert_eq!(
            check_answer(http::StatusCode::OK, err, 7).unwrap_err(),
            "JSON-RPC error -32000: busy"
        );
        assert!(check_answer(http::StatusCode::BAD_GATEWAY, b"<html>", 7).is_err());
        let body = request_body("hd-2._ping", 42);
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["id"], 42);
        assert_eq!(v["method"], "hd-2._ping");
    }
}
