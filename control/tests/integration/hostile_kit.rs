//! The serving kit against hostile clients, through the HTTP server every JSON-RPC listener uses
//! (sd, the Hyper gateway, the proxies, metrics), on mutual TLS as in the dev roles: each attack
//! runs from 127.0.0.x source addresses while a legitimate caller is served, and each deadline
//! cuts what it names. Caps are small here so that attacks stay cheap; the defaults are the same
//! code with larger numbers (RELIABILITY.md).
#![allow(clippy::unwrap_used)]

use crate::hostile_support::*;

use std::net::SocketAddr;
use std::num::{NonZeroU32, NonZeroUsize};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tandem_control::certs::TestPki;
use tandem_control::http::{Methods, PeerInfo, RouteConfig, ServerLimits, jsonrpc_router, serve};
use tandem_control::jsonrpc::{ErrorObject, Request};
use tandem_control::serving::{Rate, ServingConfig, ServingMetrics};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;
use tokio::sync::oneshot;

struct Echo;

impl Methods for Echo {
    async fn call(&self, request: Request, _peer: PeerInfo) -> Result<Value, ErrorObject> {
        Ok(json!({"method": request.method}))
    }
}

const NAME: &str = "kit";

struct Kit {
    addr: SocketAddr,
    metrics: ServingMetrics,
    client: Arc<rustls::ClientConfig>,
    _pki: TestPki,
    _dir: tempfile::TempDir,
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
}

impl Kit {
    async fn start(serving: ServingConfig) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let pki = TestPki::generate(dir.path(), &["srv", "app"]).unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let tls =
            tandem_control::tls::server_config(&pki.tls_settings("srv"), &[b"h2", b"http/1.1"])
                .unwrap();
        let client = tandem_control::tls::client_config(
            &pki.client_tls_settings("app", "srv"),
            &[b"http/1.1"],
        )
        .unwrap();
        let route = RouteConfig {
            path: "/jsonrpc".into(),
            max_body_bytes: 1 << 20,
            rate_limits: Vec::new(),
            call_timeout: Duration::from_secs(30),
            body_timeout: serving.deadlines.body,
            cors: None,
        };
        let metrics = ServingMetrics::default();
        let limits = ServerLimits::named(NAME, serving, metrics.clone());
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(serve(
            listener,
            Some(tls),
            jsonrpc_router(Arc::new(Echo), route),
            ServerLimits {
                grace: Duration::from_millis(100),
                ..limits
            },
            async {
                let _ = stopped.await;
            },
        ));
        Self {
            addr,
            metrics,
            client,
            _pki: pki,
            _dir: dir,
            stop: Some(stop),
            task,
        }
    }

    async fn legit_call_from(&self, last: u8) {
        let (status, body) =
            call_once(src(last), self.addr, &self.client, "srv", "ping", json!({})).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["result"]["method"], "ping", "{body}");
    }

    fn count(&self, event: &'static str) -> u64 {
        self.metrics.get(NAME, event)
    }

    async fn stop(mut self) {
        let _ = self.stop.take().unwrap().send(());
        tokio::time::timeout(COMPLETES, &mut self.task)
            .await
            .unwrap()
            .unwrap();
    }
}

fn config(max: usize, per_source: u32, rate: Option<Rate>) -> ServingConfig {
    let mut c = ServingConfig::default();
    c.admission.max_connections = NonZeroUsize::new(max).unwrap();
    c.admission.per_source_connections = NonZeroU32::new(per_source).unwrap();
    c.admission.per_source_rate = rate;
    c
}

async fn count_closed<S: tokio::io::AsyncRead + Unpin>(conns: &mut [S]) -> usize {
    let mut n = 0;
    for c in conns.iter_mut() {
        if is_closed(c).await {
            n += 1;
        }
    }
    n
}

#[tokio::test]
async fn idle_tls_connections_from_one_source_do_not_lock_out_anyone() {
    let kit = Kit::start(config(64, 8, None)).await;
    // 40 idle-after-handshake connections with a valid client certificate, from one address.
    let mut held = idle_tls_flood(src(2), kit.addr, &kit.client, "srv", 40).await;
    assert_eq!(
        held.len(),
        40,
        "each handshake completes before the next evicts it"
    );
    // Others are served, and so is a new client from the attacker's own address: each newcomer
    // evicts that source's oldest idle connection.
    kit.legit_call_from(1).await;
    kit.legit_call_from(2).await;
    let closed = count_closed(&mut held).await;
    assert!(
        closed >= 40 - 8,
        "only the source's cap stays open: {closed} of 40 closed"
    );
    assert!(kit.count("evicted_source_full") >= 32);
    kit.stop().await;
}

#[tokio::test]
async fn a_flood_from_many_sources_evicts_the_oldest_idle_connections_first() {
    let kit = Kit::start(config(32, 8, None)).await;
    let mut floods = Vec::new();
    for last in 10..18 {
        floods.push(idle_tls_flood(src(last), kit.addr, &kit.client, "srv", 6).await);
    }
    // 48 idle connections for 32 slots: the oldest 16 (and then one per newcomer) were evicted.
    kit.legit_call_from(1).await;
    assert!(
        kit.count("evicted_full") >= 17,
        "{}",
        kit.count("evicted_full")
    );
    let oldest_closed = count_closed(&mut floods[0]).await;
    assert_eq!(
        oldest_closed, 6,
        "the first source's connections were the oldest"
    );
    let newest_closed = count_closed(&mut floods[7]).await;
    assert_eq!(
        newest_closed, 0,
        "the newest idle connections keep their slots"
    );
    kit.stop().await;
}

#[tokio::test]
async fn a_connection_that_completed_a_request_is_never_evicted() {
    let kit = Kit::start(config(8, 8, None)).await;
    let mut proven = Caller::connect(src(1), kit.addr, kit.client.clone(), "srv")
        .await
        .unwrap();
    assert_eq!(proven.call("ping", json!({})).await.unwrap().0, 200);
    let _flood = idle_tls_flood(src(3), kit.addr, &kit.client, "srv", 20).await;
    // The same keep-alive connection still answers after the flood churned every other slot.
    assert_eq!(proven.call("again", json!({})).await.unwrap().0, 200);
    kit.stop().await;
}

#[tokio::test]
async fn silent_tcp_connections_from_many_sources_do_not_lock_out_anyone() {
    let kit = Kit::start(config(32, 8, None)).await;
    let mut all = Vec::new();
    for last in 20..30 {
        all.extend(silent_flood(src(last), kit.addr, 10).await);
    }
    let attack = {
        let addr = kit.addr;
        // The attack goes on while the legitimate call is made.
        tokio::spawn(async move { silent_flood(src(31), addr, 50).await })
    };
    kit.legit_call_from(1).await;
    let more = attack.await.unwrap();
    assert!(!more.is_empty());
    assert!(kit.count("evicted_full") + kit.count("evicted_source_full") > 0);
    kit.stop().await;
}

#[tokio::test]
async fn a_fast_opener_is_refused_past_its_accept_rate() {
    let rate = Rate {
        per_second: 1,
        burst: 5,
    };
    let kit = Kit::start(config(64, 64, Some(rate))).await;
    let mut conns = silent_flood(src(2), kit.addr, 30).await;
    // The burst is admitted; the rest is closed at accept (one token per second refills).
    let closed = count_closed_eventually(&mut conns, 20).await;
    assert!(closed >= 20, "{closed} of 30 refused");
    assert!(kit.count("source_rate") >= 20);
    kit.legit_call_from(3).await;
    kit.stop().await;
}

/// Counts closed connections, waiting (bounded) until at least `want` are seen closed.
async fn count_closed_eventually<S: tokio::io::AsyncRead + Unpin>(
    conns: &mut [S],
    want: usize,
) -> usize {
    let until = Instant::now() + COMPLETES;
    loop {
        let n = count_closed(conns).await;
        if n >= want || Instant::now() > until {
            return n;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

// ---- deadlines: each cut-off tested with a short deadline, completion bounds generous ----------

fn short(f: impl FnOnce(&mut ServingConfig)) -> ServingConfig {
    let mut c = ServingConfig::default();
    f(&mut c);
    c
}

const SHORT: Duration = Duration::from_millis(500);

#[tokio::test]
async fn a_silent_connection_is_cut_at_the_handshake_deadline() {
    let kit = Kit::start(short(|c| c.deadlines.handshake = SHORT)).await;
    let mut silent = connect_from(src(2), kit.addr).await.unwrap();
    let started = Instant::now();
    closed_by_server(&mut silent).await.unwrap();
    assert!(started.elapsed() >= SHORT - Duration::from_millis(50));
    assert_eq!(kit.count("handshake_timeout"), 1);
    kit.stop().await;
}

#[tokio::test]
async fn an_idle_connection_after_the_handshake_is_cut_at_the_first_request_deadline() {
    let kit = Kit::start(short(|c| c.deadlines.first_request = SHORT)).await;
    let mut idle = tls_from(src(2), kit.addr, kit.client.clone(), "srv")
        .await
        .unwrap();
    let started = Instant::now();
    closed_by_server(&mut idle).await.unwrap();
    assert!(started.elapsed() >= SHORT - Duration::from_millis(50));
    assert_eq!(kit.count("first_request_timeout"), 1);
    kit.stop().await;
}

#[tokio::test]
async fn a_keepalive_connection_is_cut_after_the_idle_timeout_not_before() {
    let kit = Kit::start(short(|c| c.deadlines.idle = Duration::from_secs(1))).await;
    let mut caller = Caller::connect(src(2), kit.addr, kit.client.clone(), "srv")
        .await
        .unwrap();
    // Requests closer together than the idle timeout keep the connection.
    for _ in 0..3 {
        assert_eq!(caller.call("ping", json!({})).await.unwrap().0, 200);
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let deadline = Instant::now() + COMPLETES;
    while kit.count("idle_timeout") == 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(kit.count("idle_timeout"), 1);
    assert!(caller.call("late", json!({})).await.is_err());
    kit.stop().await;
}

#[tokio::test]
async fn slow_drip_headers_are_cut_while_others_are_served() {
    let kit = Kit::start(short(|c| c.deadlines.header = SHORT)).await;
    let mut drip = tls_from(src(2), kit.addr, kit.client.clone(), "srv")
        .await
        .unwrap();
    let dripping = tokio::spawn(async move {
        for byte in b"POST /jsonrpc HTTP/1.1\r\nHost: x\r\nX-Slow: "
            .iter()
            .cycle()
            .take(200)
        {
            if drip.write_all(&[*byte]).await.is_err() || drip.flush().await.is_err() {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        false
    });
    kit.legit_call_from(1).await;
    let cut = tokio::time::timeout(COMPLETES, dripping)
        .await
        .unwrap()
        .unwrap();
    assert!(cut, "the dripping client was never cut");
    kit.stop().await;
}

#[tokio::test]
async fn a_slow_drip_body_gets_408_while_others_are_served() {
    let kit = Kit::start(short(|c| c.deadlines.body = SHORT)).await;
    let mut drip = tls_from(src(2), kit.addr, kit.client.clone(), "srv")
        .await
        .unwrap();
    drip.write_all(
        b"POST /jsonrpc HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{",
    )
    .await
    .unwrap();
    drip.flush().await.unwrap();
    kit.legit_call_from(1).await;
    let mut answer = Vec::new();
    let read = async {
        use tokio::io::AsyncReadExt;
        let mut buf = [0u8; 1024];
        loop {
            match drip.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => answer.extend_from_slice(&buf[..n]),
            }
            if answer.windows(4).any(|w| w == b"\r\n\r\n") {
                break;
            }
        }
    };
    tokio::time::timeout(COMPLETES, read).await.unwrap();
    let head = String::from_utf8_lossy(&answer);
    assert!(head.starts_with("HTTP/1.1 408"), "{head}");
    kit.stop().await;
}

/// A request body that never sends its end.
struct Endless;

impl hyper::body::Body for Endless {
    type Data = bytes::Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<bytes::Bytes>, Self::Error>>> {
        std::task::Poll::Pending
    }
}

#[tokio::test]
async fn an_http2_stream_flood_is_bounded_per_connection_and_others_are_served() {
    let kit = Kit::start(short(|c| c.deadlines.body = SHORT)).await;
    let h2 =
        tandem_control::tls::client_config(&kit._pki.client_tls_settings("app", "srv"), &[b"h2"])
            .unwrap();
    let stream = tls_from(src(2), kit.addr, h2, "srv").await.unwrap();
    let (send, conn) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        hyper_util::rt::TokioIo::new(stream),
    )
    .await
    .unwrap();
    let conn = tokio::spawn(conn);
    // 200 streams whose bodies never end: the server runs at most its stream limit at once.
    let mut floods = Vec::new();
    for _ in 0..200 {
        let mut send = send.clone();
        floods.push(tokio::spawn(async move {
            let request = http::Request::post("https://srv/jsonrpc")
                .header("content-type", "application/json")
                .body(Endless)
                .unwrap();
            send.ready().await.map_err(|e| e.to_string())?;
            let response = send
                .send_request(request)
                .await
                .map_err(|e| format!("{e:?}"))?;
            Ok::<u16, String>(response.status().as_u16())
        }));
    }
    kit.legit_call_from(1).await;
    // Every stream ends: answered 408 at the body deadline, or refused (REFUSED_STREAM) when the
    // client opened it past the server's limit before learning it. None hangs.
    let mut answered = 0;
    for flood in floods {
        match tokio::time::timeout(COMPLETES, flood)
            .await
            .unwrap()
            .unwrap()
        {
            Ok(status) => {
                assert_eq!(status, 408);
                answered += 1;
            }
            Err(e) => assert!(e.contains("REFUSED_STREAM"), "{e}"),
        }
    }
    assert!(answered >= 64, "only {answered} streams were answered");
    conn.abort();
    kit.stop().await;
}
