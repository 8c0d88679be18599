//! Hostile clients for the serving kit's tests: connections from chosen loopback source addresses
//! (127.0.0.x) that stay silent, complete a TLS handshake and then idle, drip bytes, or flood; and
//! a small HTTP/1.1-over-TLS client bound to a source address, for the legitimate caller that must
//! be served while an attack runs.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use tokio::io::AsyncReadExt;
use tokio::net::{TcpSocket, TcpStream};
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

/// Generous bound for anything that must complete (a loaded CI machine is slow, never this slow).
pub const COMPLETES: Duration = Duration::from_secs(60);

/// `127.0.0.last`.
pub fn src(last: u8) -> Ipv4Addr {
    Ipv4Addr::new(127, 0, 0, last)
}

/// A TCP connection to `addr` from `source`.
pub async fn connect_from(source: Ipv4Addr, addr: SocketAddr) -> std::io::Result<TcpStream> {
    let socket = TcpSocket::new_v4()?;
    socket.bind(SocketAddr::from((source, 0)))?;
    socket.connect(addr).await
}

/// `n` silent TCP connections from `source` (those the kernel refused are skipped).
pub async fn silent_flood(source: Ipv4Addr, addr: SocketAddr, n: usize) -> Vec<TcpStream> {
    let mut conns = Vec::with_capacity(n);
    for _ in 0..n {
        if let Ok(c) = connect_from(source, addr).await {
            conns.push(c);
        }
    }
    conns
}

/// A completed TLS handshake from `source`, then nothing: `None` when the server closed first.
pub async fn tls_from(
    source: Ipv4Addr,
    addr: SocketAddr,
    tls: Arc<rustls::ClientConfig>,
    server_name: &str,
) -> Option<TlsStream<TcpStream>> {
    let tcp = connect_from(source, addr).await.ok()?;
    let name = rustls_pki_types::ServerName::try_from(server_name.to_owned()).ok()?;
    let handshake = TlsConnector::from(tls).connect(name, tcp);
    tokio::time::timeout(COMPLETES, handshake).await.ok()?.ok()
}

/// `n` idle TLS connections from `source` (handshakes that failed or were cut are skipped).
pub async fn idle_tls_flood(
    source: Ipv4Addr,
    addr: SocketAddr,
    tls: &Arc<rustls::ClientConfig>,
    server_name: &str,
    n: usize,
) -> Vec<TlsStream<TcpStream>> {
    let mut conns = Vec::with_capacity(n);
    for _ in 0..n {
        if let Some(c) = tls_from(source, addr, tls.clone(), server_name).await {
            conns.push(c);
        }
    }
    conns
}

/// Waits (at most [`COMPLETES`]) until the server closes `stream`: reads until EOF or an error.
/// `Err` if it is still open then.
pub async fn closed_by_server<S: tokio::io::AsyncRead + Unpin>(stream: &mut S) -> Result<(), ()> {
    let mut buf = [0u8; 512];
    let read_to_end = async {
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    };
    tokio::time::timeout(COMPLETES, read_to_end)
        .await
        .map_err(|_| ())
}

/// Whether the server has already closed `stream` (nothing pending means open).
pub async fn is_closed<S: tokio::io::AsyncRead + Unpin>(stream: &mut S) -> bool {
    let mut buf = [0u8; 64];
    match tokio::time::timeout(Duration::from_millis(5), stream.read(&mut buf)).await {
        Ok(Ok(0)) | Ok(Err(_)) => true,
        Ok(Ok(_)) | Err(_) => false,
    }
}

/// An HTTP/1.1 keep-alive client over TLS from a chosen source address.
pub struct Caller {
    send: hyper::client::conn::http1::SendRequest<Full<Bytes>>,
    task: tokio::task::JoinHandle<()>,
}

impl Caller {
    /// Connects from `source` and runs the TLS handshake.
    pub async fn connect(
        source: Ipv4Addr,
        addr: SocketAddr,
        tls: Arc<rustls::ClientConfig>,
        server_name: &str,
    ) -> Option<Self> {
        let stream = tls_from(source, addr, tls, server_name).await?;
        let (send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .ok()?;
        let task = tokio::spawn(async move {
            let _ = conn.await;
        });
        Some(Self { send, task })
    }

    /// One JSON-RPC call on this connection: the HTTP status and the decoded body.
    pub async fn call(&mut self, method: &str, params: Value) -> Result<(u16, Value), String> {
        let body = json!({"jsonrpc": "2.0", "id": "1", "method": method, "params": params});
        let request = http::Request::post("/jsonrpc")
            .header("host", "localhost")
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(body.to_string())))
            .map_err(|e| e.to_string())?;
        let exchange = async {
            self.send.ready().await.map_err(|e| e.to_string())?;
            let response = self
                .send
                .send_request(request)
                .await
                .map_err(|e| e.to_string())?;
            let status = response.status().as_u16();
            let bytes = response
                .into_body()
                .collect()
                .await
                .map_err(|e| e.to_string())?
                .to_bytes();
            let value = serde_json::from_slice(&bytes).map_err(|e| e.to_string())?;
            Ok((status, value))
        };
        tokio::time::timeout(COMPLETES, exchange)
            .await
            .map_err(|_| "no answer".to_owned())?
    }
}

impl Caller {
    /// Waits (at most [`COMPLETES`]) until the server has closed this connection.
    pub async fn closed(&mut self) {
        tokio::time::timeout(COMPLETES, &mut self.task)
            .await
            .expect("the server never closed the connection")
            .expect("connection task");
    }
}

impl Drop for Caller {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// One call on a new connection from `source`; panics with the reason when it is not answered.
pub async fn call_once(
    source: Ipv4Addr,
    addr: SocketAddr,
    tls: &Arc<rustls::ClientConfig>,
    server_name: &str,
    method: &str,
    params: Value,
) -> (u16, Value) {
    let Some(mut caller) = Caller::connect(source, addr, tls.clone(), server_name).await else {
        panic!("legitimate client from {source}: connection refused or cut");
    };
    match caller.call(method, params).await {
        Ok(answer) => answer,
        Err(e) => panic!("legitimate call from {source} not served: {e}"),
    }
}
