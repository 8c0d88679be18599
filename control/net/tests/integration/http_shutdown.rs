//! What a SIGTERM does to requests in flight on an HTTP server of the kit (`http::serve`): a request
//! that started before the shutdown is answered, and the server returns once it is; a request that
//! does not finish within the configured grace is cut and the server returns anyway; an idle
//! keep-alive is closed at once, a request in flight on a keep-alive is answered with
//! `connection: close` (a request pipelined behind it is left for the client to resend), and half
//! a request is cut when the grace ends.
#![allow(clippy::unwrap_used)]

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};
use tandem_net::http::{Methods, PeerInfo, RouteConfig, ServerLimits, jsonrpc_router, serve};
use tandem_net::jsonrpc::{ErrorObject, Request};
use tandem_testkit::hostile::COMPLETES;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot};

/// A method that reports it started, then answers when released (never, if never released).
struct Held {
    started: mpsc::Sender<()>,
    release: Mutex<Option<oneshot::Receiver<()>>>,
}

impl Methods for Held {
    async fn call(&self, _request: Request, _peer: PeerInfo) -> Result<Value, ErrorObject> {
        let release = self.release.lock().unwrap().take();
        let _ = self.started.send(()).await;
        if let Some(release) = release {
            let _ = release.await;
        }
        Ok(json!("done"))
    }
}

struct Server {
    addr: SocketAddr,
    started: mpsc::Receiver<()>,
    release: oneshot::Sender<()>,
    stop: oneshot::Sender<()>,
    task: tokio::task::JoinHandle<()>,
}

async fn start(grace: Duration) -> Server {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (started_tx, started) = mpsc::channel(1);
    let (release, released) = oneshot::channel();
    let methods = Held {
        started: started_tx,
        release: Mutex::new(Some(released)),
    };
    let route = RouteConfig {
        path: "/jsonrpc".into(),
        max_body_bytes: 1 << 20,
        rate_limits: Vec::new(),
        call_timeout: Duration::from_secs(600),
        body_timeout: Duration::from_secs(30),
        cors: None,
    };
    let (stop, stopped) = oneshot::channel::<()>();
    let limits = ServerLimits {
        grace,
        ..ServerLimits::default()
    };
    let task = tokio::spawn(serve(
        listener,
        None,
        jsonrpc_router(Arc::new(methods), route),
        limits,
        async {
            let _ = stopped.await;
        },
    ));
    Server {
        addr,
        started,
        release,
        stop,
        task,
    }
}

async fn send_call(addr: SocketAddr) -> TcpStream {
    let mut s = TcpStream::connect(addr).await.unwrap();
    let body = r#"{"jsonrpc":"2.0","id":1,"method":"held","params":{}}"#;
    let request = format!(
        "POST /jsonrpc HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\nconnection: close\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    );
    s.write_all(request.as_bytes()).await.unwrap();
    s
}

#[tokio::test]
async fn a_request_in_flight_at_shutdown_is_answered() {
    let mut server = start(COMPLETES).await;
    let mut conn = send_call(server.addr).await;
    tokio::time::timeout(COMPLETES, server.started.recv())
        .await
        .unwrap()
        .unwrap();
    server.stop.send(()).unwrap();
    // The handler finishes only after the shutdown started.
    server.release.send(()).unwrap();
    let mut answer = String::new();
    tokio::time::timeout(COMPLETES, conn.read_to_string(&mut answer))
        .await
        .unwrap()
        .unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.contains("\"done\""), "{answer}");
    // The server returns once the request in flight is answered.
    tokio::time::timeout(COMPLETES, server.task)
        .await
        .unwrap()
        .unwrap();
}

#[tokio::test]
async fn a_request_outliving_the_grace_is_cut() {
    let mut server = start(Duration::from_millis(200)).await;
    let mut conn = send_call(server.addr).await;
    tokio::time::timeout(COMPLETES, server.started.recv())
        .await
        .unwrap()
        .unwrap();
    server.stop.send(()).unwrap();
    // Never released: the grace passes and the server cuts the connection and returns.
    tokio::time::timeout(COMPLETES, server.task)
        .await
        .unwrap()
        .unwrap();
    let mut answer = String::new();
    let _ = tokio::time::timeout(COMPLETES, conn.read_to_string(&mut answer))
        .await
        .unwrap();
    assert!(answer.is_empty(), "no answer after the cut: {answer}");
    drop(server.release);
}

/// A keep-alive call (no `connection: close`).
async fn send_keep_alive_call(s: &mut TcpStream) {
    let body = r#"{"jsonrpc":"2.0","id":1,"method":"held","params":{}}"#;
    let request = format!(
        "POST /jsonrpc HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    );
    s.write_all(request.as_bytes()).await.unwrap();
}

/// Reads one whole response (head and `content-length` body), lower-cased.
async fn read_response(s: &mut TcpStream) -> String {
    let mut got = Vec::new();
    let mut buf = [0u8; 1024];
    let whole = async {
        loop {
            let text = String::from_utf8_lossy(&got).to_lowercase();
            if let Some(end) = text.find("\r\n\r\n") {
                let length = text
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length: "))
                    .map(|n| n.trim().parse::<usize>().unwrap())
                    .unwrap();
                if got.len() >= end + 4 + length {
                    return text;
                }
            }
            let n = s.read(&mut buf).await.unwrap();
            assert!(n > 0, "closed before a whole response: {text}");
            got.extend_from_slice(&buf[..n]);
        }
    };
    tokio::time::timeout(COMPLETES, whole).await.unwrap()
}

/// Whether the server closes `s` (EOF or reset) within [`COMPLETES`], reading nothing more.
async fn closed(s: &mut TcpStream) -> bool {
    let mut buf = [0u8; 64];
    matches!(
        tokio::time::timeout(COMPLETES, s.read(&mut buf)).await,
        Ok(Ok(0) | Err(_))
    )
}

/// Longer than any test waits: a server that needed its grace would fail the test.
const LONG_GRACE: Duration = Duration::from_secs(3600);

#[tokio::test]
async fn an_idle_keep_alive_is_closed_at_once_at_shutdown() {
    let server = start(LONG_GRACE).await;
    server.release.send(()).unwrap();
    let mut idle = TcpStream::connect(server.addr).await.unwrap();
    send_keep_alive_call(&mut idle).await;
    let answer = read_response(&mut idle).await;
    assert!(answer.starts_with("http/1.1 200"), "{answer}");
    assert!(!answer.contains("connection: close"), "{answer}");
    server.stop.send(()).unwrap();
    assert!(closed(&mut idle).await, "the idle keep-alive is closed");
    // Nothing else holds the server: it returns long before its grace.
    tokio::time::timeout(COMPLETES, server.task)
        .await
        .unwrap()
        .unwrap();
}

#[tokio::test]
async fn a_keep_alive_request_in_flight_at_shutdown_is_answered_with_connection_close() {
    let mut server = start(LONG_GRACE).await;
    let mut conn = TcpStream::connect(server.addr).await.unwrap();
    send_keep_alive_call(&mut conn).await;
    tokio::time::timeout(COMPLETES, server.started.recv())
        .await
        .unwrap()
        .unwrap();
    server.stop.send(()).unwrap();
    server.release.send(()).unwrap();
    let answer = read_response(&mut conn).await;
    assert!(answer.starts_with("http/1.1 200"), "{answer}");
    assert!(answer.contains("connection: close"), "{answer}");
    assert!(closed(&mut conn).await, "closed after the answer");
    tokio::time::timeout(COMPLETES, server.task)
        .await
        .unwrap()
        .unwrap();
}

#[tokio::test]
async fn a_pipelined_request_behind_the_last_answer_is_left_for_the_client_to_resend() {
    let mut server = start(LONG_GRACE).await;
    let mut conn = TcpStream::connect(server.addr).await.unwrap();
    // Two calls back to back: the first is answered with `connection: close`, which tells the
    // client that the second was not processed (RFC 9112 §9.3.2: it sends it again).
    send_keep_alive_call(&mut conn).await;
    send_keep_alive_call(&mut conn).await;
    tokio::time::timeout(COMPLETES, server.started.recv())
        .await
        .unwrap()
        .unwrap();
    server.stop.send(()).unwrap();
    server.release.send(()).unwrap();
    let first = read_response(&mut conn).await;
    assert!(first.starts_with("http/1.1 200"), "{first}");
    assert!(first.contains("connection: close"), "{first}");
    assert!(
        closed(&mut conn).await,
        "closed after the announced last answer"
    );
    tokio::time::timeout(COMPLETES, server.task)
        .await
        .unwrap()
        .unwrap();
}

#[tokio::test]
async fn half_a_request_is_cut_when_the_grace_ends() {
    let server = start(Duration::from_millis(200)).await;
    let mut half = TcpStream::connect(server.addr).await.unwrap();
    half.write_all(b"POST /jsonrpc HTTP/1.1\r\nhost: x\r\ncontent-ty")
        .await
        .unwrap();
    server.stop.send(()).unwrap();
    // The header deadline (10 s by default) is not what ends it: the grace is.
    tokio::time::timeout(COMPLETES, server.task)
        .await
        .unwrap()
        .unwrap();
    assert!(closed(&mut half).await, "the half request is cut");
    drop(server.release);
}

#[tokio::test]
async fn an_http2_connection_gets_a_goaway_and_its_stream_in_flight_is_answered() {
    use http_body_util::{BodyExt, Full};
    use hyper::body::Bytes;
    use hyper_util::rt::{TokioExecutor, TokioIo};

    let mut server = start(LONG_GRACE).await;
    let tcp = TcpStream::connect(server.addr).await.unwrap();
    let (mut send, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tcp))
            .await
            .unwrap();
    let conn = tokio::spawn(conn);
    let body = r#"{"jsonrpc":"2.0","id":1,"method":"held","params":{}}"#;
    let request = hyper::Request::post("http://x/jsonrpc")
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body)))
        .unwrap();
    // Held open by the client: only the server's GOAWAY ends the connection.
    let keep = send.clone();
    let call = tokio::spawn(async move {
        let response = send.send_request(request).await.unwrap();
        let status = response.status();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        (status, bytes)
    });
    tokio::time::timeout(COMPLETES, server.started.recv())
        .await
        .unwrap()
        .unwrap();
    server.stop.send(()).unwrap();
    server.release.send(()).unwrap();
    let (status, bytes) = tokio::time::timeout(COMPLETES, call)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(status, 200);
    assert!(String::from_utf8_lossy(&bytes).contains("done"));
    // The GOAWAY ends the connection once its stream is answered; the client sees it close.
    tokio::time::timeout(COMPLETES, conn)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    drop(keep);
    tokio::time::timeout(COMPLETES, server.task)
        .await
        .unwrap()
        .unwrap();
}
