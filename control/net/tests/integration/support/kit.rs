//! The kit's test server: an echo JSON-RPC router served by `http::serve` on mutual TLS, with the
//! policy and metrics each test chooses.

use std::net::SocketAddr;
use std::num::{NonZeroU32, NonZeroUsize};
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use tandem_net::http::{Methods, PeerInfo, RouteConfig, ServerLimits, jsonrpc_router, serve};
use tandem_net::jsonrpc::{ErrorObject, Request};
use tandem_serving::{Rate, ServingConfig, ServingMetrics};
use tandem_testkit::pki::TestPki;
use tokio::net::TcpListener;
use tokio::sync::oneshot;

use tandem_testkit::hostile::*;

struct Echo;

impl Methods for Echo {
    async fn call(&self, request: Request, _peer: PeerInfo) -> Result<Value, ErrorObject> {
        Ok(json!({"method": request.method}))
    }
}

const NAME: &str = "kit";

pub struct Kit {
    pub addr: SocketAddr,
    metrics: ServingMetrics,
    pub client: Arc<rustls::ClientConfig>,
    pub pki: TestPki,
    _dir: tempfile::TempDir,
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
}

impl Kit {
    pub async fn start(serving: ServingConfig) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let pki = TestPki::generate(dir.path(), &["srv", "app"]).unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let tls = tandem_net::tls::server_config(&pki.tls_settings("srv"), &[b"h2", b"http/1.1"])
            .unwrap();
        let client =
            tandem_net::tls::client_config(&pki.client_tls_settings("app", "srv"), &[b"http/1.1"])
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
            Some(tls.into()),
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
            pki,
            _dir: dir,
            stop: Some(stop),
            task,
        }
    }

    pub async fn legit_call_from(&self, last: u8) {
        let (status, body) =
            call_once(src(last), self.addr, &self.client, "srv", "ping", json!({})).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["result"]["method"], "ping", "{body}");
    }

    pub fn count(&self, event: &'static str) -> u64 {
        self.metrics.get(NAME, event)
    }

    pub async fn stop(mut self) {
        let _ = self.stop.take().unwrap().send(());
        tokio::time::timeout(COMPLETES, &mut self.task)
            .await
            .unwrap()
            .unwrap();
    }
}

pub fn config(max: usize, per_source: u32, rate: Option<Rate>) -> ServingConfig {
    let mut c = ServingConfig::default();
    c.admission.max_connections = NonZeroUsize::new(max).unwrap();
    c.admission.per_source_connections = NonZeroU32::new(per_source).unwrap();
    c.admission.per_source_rate = rate;
    c
}

pub async fn count_closed<S: tokio::io::AsyncRead + Unpin>(conns: &mut [S]) -> usize {
    let mut n = 0;
    for c in conns.iter_mut() {
        if is_closed(c).await {
            n += 1;
        }
    }
    n
}

/// The defaults with one change.
pub fn short(f: impl FnOnce(&mut ServingConfig)) -> ServingConfig {
    let mut c = ServingConfig::default();
    f(&mut c);
    c
}

/// The short deadline of the cut-off tests.
pub const SHORT: Duration = Duration::from_millis(500);
