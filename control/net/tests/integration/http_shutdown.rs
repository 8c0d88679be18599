//! What a SIGTERM does to requests in flight on an HTTP server of the kit (`http::serve`): a request
//! that started before the shutdown is answered, and the server returns once it is; a request that
//! does not finish within the configured grace is cut and the server returns anyway.
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
