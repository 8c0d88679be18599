//! Shared setup of the ControlService tests: a generated PKI, a real engine on 127.0.0.1:0, the
//! ControlService over mTLS on 127.0.0.1:0, clients, and byte transfers through a pair.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rustls_pki_types::ServerName;
use sha2::{Digest, Sha256};
use tandem_directory::entry::{DirectoryEntry, OperatorCertificate};
use tandem_directory::source::{BoxFuture, DirectorySource, Entries, SourceError};
use tandem_engine::{Engine, EngineConfig, EngineHandle, RefuseAll};
use tandem_proxy::control_service::{
    AdminPolicy, ClientError, ControlClient, ControlServer, EventHub,
};
use tandem_testkit::pki::TestPki;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// The proxy's own certificate name.
pub const PROXY: &str = "pp-1";
/// An operator on the static allow-list.
pub const ADMIN: &str = "ops-1";
/// An operator admitted through the directory group.
pub const GROUP_ADMIN: &str = "ops-2";
/// A valid operator that is not an admin.
pub const OTHER: &str = "hd-2";
/// Upper bound for any single awaited step (a hang fails instead of stalling CI).
pub const STEP: Duration = Duration::from_secs(30);

pub fn pki(dir: &Path) -> TestPki {
    TestPki::generate(dir, &[PROXY, ADMIN, GROUP_ADMIN, OTHER]).expect("test PKI")
}

/// A directory that never changes.
pub struct StaticDirectory(pub Entries);

impl DirectorySource for StaticDirectory {
    fn entries(&self) -> BoxFuture<'_, Result<Entries, SourceError>> {
        let entries = self.0.clone();
        Box::pin(async move { Ok(entries) })
    }
}

/// A directory where `op` is in `group` and pins its TLS certificate.
pub fn directory(pki: &TestPki, members: &[(&str, &str)]) -> Arc<dyn DirectorySource> {
    let mut map = BTreeMap::new();
    for (op, group) in members {
        let mut e = DirectoryEntry::new(*op);
        e.groups = vec![(*group).into()];
        e.certificates.push(OperatorCertificate {
            fingerprint: pki.fingerprint(op).unwrap().to_owned(),
            key_usage: "encryption".into(),
        });
        map.insert((*op).to_owned(), e);
    }
    Arc::new(StaticDirectory(Arc::new(map)))
}

/// The allow-list {ADMIN} plus the directory group `proxy-admin` = {GROUP_ADMIN}.
pub fn policy(pki: &TestPki) -> AdminPolicy {
    let dir = directory(pki, &[(GROUP_ADMIN, "proxy-admin"), (OTHER, "users")]);
    AdminPolicy::names([ADMIN]).with_directory_group(dir, "proxy-admin")
}

pub fn engine_config() -> EngineConfig {
    EngineConfig {
        cores: Some(vec![0, 1]),
        pin: false,
        ..EngineConfig::default()
    }
}

/// A running engine plus ControlService.
pub struct Proxy {
    pub engine: EngineHandle,
    pub hub: EventHub,
    pub server: ControlServer,
    pub control_addr: SocketAddr,
    pub pairing: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl Proxy {
    pub async fn start(pki: &TestPki, policy: AdminPolicy) -> Proxy {
        let admission =
            tandem_serving::Admission::new("control", Default::default(), Default::default());
        Self::start_with(pki, policy, admission).await
    }

    /// [`Proxy::start`] with the control port under `admission`.
    pub async fn start_with(
        pki: &TestPki,
        policy: AdminPolicy,
        admission: tandem_serving::Admission,
    ) -> Proxy {
        Self::start_with_quotas(pki, policy, admission, Default::default()).await
    }

    /// [`Proxy::start_with`] with per-operator `quotas` on `CreatePair`.
    pub async fn start_with_quotas(
        pki: &TestPki,
        policy: AdminPolicy,
        admission: tandem_serving::Admission,
        quotas: tandem_proxy::settings::QuotaSettings,
    ) -> Proxy {
        let (engine, events) = Engine::start(engine_config(), Arc::new(RefuseAll)).unwrap();
        let counter = Arc::new(tandem_proxy::quota::MemoryCounter::default());
        let quotas = Arc::new(tandem_proxy::quota::Quotas::new(quotas, counter));
        let hub = EventHub::with_quotas(events, quotas).unwrap();
        let pairing = engine.local_addrs().pairing;
        let server = ControlServer::new(engine.clone(), pairing.to_string(), policy, hub.clone());
        let tls = ControlServer::tls_config(&pki.tls_settings(PROXY)).unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let control_addr = listener.local_addr().unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        let serving = server
            .clone()
            .serve_with(listener, tls, admission, async move {
                let _ = stopped.await;
            });
        let task = tokio::spawn(serving);
        let task = tokio::spawn(async move {
            task.await.unwrap().unwrap();
        });
        Proxy {
            engine,
            hub,
            server,
            control_addr,
            pairing,
            stop: Some(stop),
            task: Some(task),
        }
    }

    /// A client presenting `op`'s certificate from `pki`.
    pub async fn client_from(&self, pki: &TestPki, op: &str) -> Result<ControlClient, ClientError> {
        let tls =
            tandem_net::tls::client_config(&pki.client_tls_settings(op, PROXY), &[b"h2"]).unwrap();
        ControlClient::connect(
            &self.control_addr.to_string(),
            tls,
            ServerName::try_from(PROXY).unwrap(),
            Duration::from_secs(10),
        )
        .await
    }

    pub async fn stop(mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.task.take() {
            tokio::time::timeout(STEP, t).await.unwrap().unwrap();
        }
        let (engine, hub) = (self.engine.clone(), self.hub.clone());
        tokio::task::spawn_blocking(move || {
            engine.shutdown().unwrap();
            hub.shutdown();
        })
        .await
        .unwrap();
    }
}

/// Dials `endpoint` and writes `token`.
pub async fn dial(endpoint: &str, token: impl AsRef<[u8]>) -> TcpStream {
    let mut s = TcpStream::connect(endpoint).await.unwrap();
    s.write_all(token.as_ref()).await.unwrap();
    s
}

/// A deterministic 1 MiB block (xorshift), different per `seed`.
pub fn block(seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..1 << 20)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// Sends `blocks` copies of `block` on `w`, then shuts the write side; returns the sha256 sent.
async fn send(mut w: tokio::net::tcp::OwnedWriteHalf, block: Vec<u8>, blocks: usize) -> [u8; 32] {
    let mut h = Sha256::new();
    for _ in 0..blocks {
        w.write_all(&block).await.unwrap();
        h.update(&block);
    }
    w.shutdown().await.unwrap();
    h.finalize().into()
}

/// Reads to EOF; returns (bytes, sha256).
async fn receive(mut r: tokio::net::tcp::OwnedReadHalf) -> (u64, [u8; 32]) {
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 256 * 1024];
    let mut n = 0u64;
    loop {
        let got = r.read(&mut buf).await.unwrap();
        if got == 0 {
            return (n, h.finalize().into());
        }
        n += got as u64;
        h.update(&buf[..got]);
    }
}

/// Moves `mib` MiB each way between `a` and `b` at once and checks the sha256 of both directions.
pub async fn transfer_both_ways(a: TcpStream, b: TcpStream, mib: usize) {
    let (ar, aw) = a.into_split();
    let (br, bw) = b.into_split();
    let a_to_b = tokio::spawn(send(aw, block(1), mib));
    let b_to_a = tokio::spawn(send(bw, block(2), mib));
    let at_b = tokio::spawn(receive(br));
    let at_a = tokio::spawn(receive(ar));
    let all = async {
        let sent_ab = a_to_b.await.unwrap();
        let sent_ba = b_to_a.await.unwrap();
        let (n_b, got_b) = at_b.await.unwrap();
        let (n_a, got_a) = at_a.await.unwrap();
        assert_eq!((n_b, n_a), ((mib as u64) << 20, (mib as u64) << 20));
        assert_eq!(got_b, sent_ab, "A to B arrives intact");
        assert_eq!(got_a, sent_ba, "B to A arrives intact");
    };
    tokio::time::timeout(Duration::from_secs(120), all)
        .await
        .expect("transfer finishes");
}
