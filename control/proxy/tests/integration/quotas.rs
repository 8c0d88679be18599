//! Per-operator quotas and bandwidth limits end to end: `requestConnection` (JSON-RPC) and
//! `CreatePair` (gRPC) refuse with an error naming the quota and its limit, the quota is released
//! when the engine reports the pair's end, a hostile operator at its quota does not affect another
//! operator's new or live pairs, and the settings' pair bandwidth holds a brokered pair's rate.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support::{control_service, proxy};

use std::num::NonZeroU64;
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use proxy::*;
use serde_json::{Value, json};
use tandem_net::http::{ClientError, JsonRpcClient};
use tandem_net::jsonrpc::params;
use tandem_proxy::PublicProxy;
use tandem_proxy::settings::{QuotaLimits, QuotaSettings};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

fn directory() -> Vec<tandem_directory::entry::DirectoryEntry> {
    vec![
        entry("hd-1", &["health-departments"], &["health-departments"]),
        entry("hd-2", &["health-departments"], &["health-departments"]),
    ]
}

async fn request(client: &JsonRpcClient, from: &str, to: &str) -> Result<Value, ClientError> {
    let dir = directory();
    let requester = dir.iter().find(|e| e.name == from).unwrap();
    client
        .call(
            "requestConnection",
            params([
                ("to", json!(to)),
                ("channel", json!("grpc_server")),
                ("_client", client_info(requester)),
            ]),
        )
        .await
}

/// Dials the requester's side of an offer.
async fn requester_side(offer: &Value) -> TcpStream {
    let endpoint = offer["endpoint"].as_str().unwrap();
    let token = STANDARD.decode(offer["token"].as_str().unwrap()).unwrap();
    let mut s = TcpStream::connect(endpoint).await.unwrap();
    s.write_all(&token).await.unwrap();
    s
}

async fn ping(a: &mut TcpStream, b: &mut TcpStream) {
    a.write_all(b"ping").await.unwrap();
    let mut buf = [0u8; 4];
    b.read_exact(&mut buf).await.unwrap();
    assert_eq!(&buf, b"ping");
}

struct Running {
    client: JsonRpcClient,
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<Result<(), tandem_proxy::ProxyError>>,
}

async fn start_public(
    pki: &tandem_testkit::pki::TestPki,
    dir: &std::path::Path,
    hyper: &RunningHyper,
    quotas: QuotaSettings,
) -> Running {
    let mut settings = public_settings(pki, dir, hyper.addr);
    settings.quotas = quotas;
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let proxy = PublicProxy::start(&settings, listener).await.unwrap();
    let client = proxy_client(pki, PUBLIC, proxy.handle().jsonrpc_addr());
    let (stop, rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(proxy.serve(async {
        let _ = rx.await;
    }));
    Running { client, stop, task }
}

impl Running {
    async fn stop(self) {
        drop(self.client);
        let _ = self.stop.send(());
        self.task.await.unwrap().unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_connection_quota_names_itself_spares_others_and_is_released() {
    let dir = tempfile::tempdir().unwrap();
    let pki = pki(dir.path());
    let mut hyper = RunningHyper::start(PUBLIC, directory()).await;
    let mut quotas = QuotaSettings::default();
    let one = QuotaLimits {
        live_pairs: NonZeroU64::new(1),
        ..Default::default()
    };
    quotas.operators.insert("hd-1".into(), one);
    let proxy = start_public(&pki, dir.path(), &hyper, quotas).await;

    // hd-1's one pair relays.
    let offer = request(&proxy.client, "hd-1", "hd-2").await.unwrap();
    let (mut target, _) = hyper.dialed.recv().await.unwrap();
    let mut requester = requester_side(&offer).await;
    ping(&mut requester, &mut target).await;

    // The hostile hd-1 asks again and again while hd-2 asks at the same time.
    let many = |from: &'static str, to: &'static str, n: usize| {
        let client = &proxy.client;
        async move {
            let mut out = Vec::new();
            for _ in 0..n {
                out.push(request(client, from, to).await);
            }
            out
        }
    };
    let (refused, granted) = tokio::join!(many("hd-1", "hd-2", 5), many("hd-2", "hd-1", 3));
    for r in refused {
        let ClientError::Rpc { error, .. } = r.unwrap_err() else {
            panic!("a JSON-RPC error");
        };
        assert_eq!(error.code, 429);
        assert!(
            error.message.contains("live_pairs") && error.message.contains("limit 1"),
            "the error names the quota and its limit: {}",
            error.message
        );
        let data = error.data.unwrap();
        assert_eq!(
            (data["quota"].as_str(), data["limit"].as_u64()),
            (Some("live_pairs"), Some(1))
        );
    }
    for g in granted {
        g.expect("another operator's pairs are not refused");
        hyper.dialed.recv().await.unwrap();
    }
    ping(&mut target, &mut requester).await;

    // The pair ends: its close event releases hd-1's quota.
    drop((requester, target));
    let client = &proxy.client;
    tandem_testkit::poll::until(
        "hd-1's quota released",
        tandem_testkit::poll::POLL_BOUND,
        || async { request(client, "hd-1", "hd-2").await.ok() },
    )
    .await;
    proxy.stop().await;
    hyper.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_brokered_pair_is_held_to_the_settings_pair_bandwidth() {
    let dir = tempfile::tempdir().unwrap();
    let pki = pki(dir.path());
    let mut hyper = RunningHyper::start(PUBLIC, directory()).await;
    let mut quotas = QuotaSettings::default();
    quotas.default.pair_bandwidth = Some(tandem_engine::ByteRate {
        per_second: NonZeroU64::new(1 << 20).unwrap(),
        burst: NonZeroU64::new(64 << 10).unwrap(),
    });
    let proxy = start_public(&pki, dir.path(), &hyper, quotas).await;
    let offer = request(&proxy.client, "hd-1", "hd-2").await.unwrap();
    let (mut target, _) = hyper.dialed.recv().await.unwrap();
    let mut requester = requester_side(&offer).await;
    // 20 MiB offered; a 1 MiB/s pair cannot deliver them in 2 s however fast the machine.
    let writer = tokio::spawn(async move {
        let chunk = vec![0u8; 1 << 20];
        for _ in 0..20 {
            if requester.write_all(&chunk).await.is_err() {
                break;
            }
        }
        requester
    });
    let start = Instant::now();
    let mut got = 0u64;
    let mut buf = vec![0u8; 256 << 10];
    while start.elapsed() < Duration::from_secs(2) {
        let left = Duration::from_secs(2).saturating_sub(start.elapsed());
        match tokio::time::timeout(left, target.read(&mut buf)).await {
            Ok(Ok(0)) | Err(_) => break,
            Ok(Ok(n)) => got += n as u64,
            Ok(Err(e)) => panic!("read: {e}"),
        }
    }
    let took = start.elapsed().as_secs_f64();
    let most = (64 << 10) + (took * f64::from(1 << 20)) as u64 + (64 << 10);
    assert!(
        got > 0 && got <= most,
        "{got} bytes in {took:.2} s through a 1 MiB/s pair"
    );
    drop(target);
    writer.abort();
    proxy.stop().await;
    hyper.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_pair_quota_names_itself_and_is_released_by_pair_events() {
    use control_service::*;
    let dir = tempfile::tempdir().unwrap();
    let pki = control_service::pki(dir.path());
    let mut quotas = QuotaSettings::default();
    let limits = QuotaLimits {
        waiting_pairs: NonZeroU64::new(1),
        live_pairs: NonZeroU64::new(2),
        ..Default::default()
    };
    quotas.operators.insert(ADMIN.into(), limits);
    let admission =
        tandem_serving::Admission::new("control", Default::default(), Default::default());
    let proxy = Proxy::start_with_quotas(&pki, policy(&pki), admission, quotas).await;
    let admin = proxy.client_from(&pki, ADMIN).await.unwrap();
    let other = proxy.client_from(&pki, GROUP_ADMIN).await.unwrap();

    let first = admin.create_pair(None).await.unwrap();
    let refused = admin.create_pair(None).await.unwrap_err();
    let tandem_proxy::control_service::ClientError::Status(status) = refused else {
        panic!("a status: {refused}");
    };
    assert_eq!(status.code(), tonic::Code::ResourceExhausted);
    assert!(
        status.message().contains("waiting_pairs") && status.message().contains("limit 1"),
        "{}",
        status.message()
    );
    for _ in 0..3 {
        other
            .create_pair(None)
            .await
            .expect("another admin is not refused");
    }

    // Pairing releases the waiting quota (the pair still counts as live).
    let a = dial(&first.endpoint, &first.tokens[0]).await;
    let b = dial(&first.endpoint, &first.tokens[1]).await;
    tandem_testkit::poll::until(
        "waiting released",
        tandem_testkit::poll::POLL_BOUND,
        || async { admin.create_pair(None).await.ok() },
    )
    .await;
    let refused = admin.create_pair(None).await.unwrap_err().to_string();
    assert!(
        refused.contains("live_pairs") || refused.contains("waiting_pairs"),
        "{refused}"
    );
    let usage = proxy
        .hub
        .quotas()
        .usage(ADMIN, std::time::SystemTime::now());
    assert_eq!((usage.live_pairs, usage.waiting_pairs), (2, 1));

    // The relayed pair ends: its live slot comes back.
    transfer_both_ways(a, b, 1).await;
    tandem_testkit::poll::until(
        "live released",
        tandem_testkit::poll::POLL_BOUND,
        || async {
            let u = proxy
                .hub
                .quotas()
                .usage(ADMIN, std::time::SystemTime::now());
            (u.live_pairs == 1 && u.bytes_today >= 2 << 20).then_some(())
        },
    )
    .await;
    proxy.stop().await;
}
