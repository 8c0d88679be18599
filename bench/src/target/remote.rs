//! A running `proxy` at `--target ADDR`: every pair is created by a ControlService `CreatePair`
//! call over mTLS, then both legs dial the endpoint it names and write their tokens.
//!
//! The async client runs on a dedicated tokio runtime owned by this target; the workload's
//! threads call it blocking through the runtime's handle (one HTTP/2 connection, calls
//! multiplexed, so 64 setup workers mean up to 64 calls in flight).

use std::io::Write;
use std::net::{Ipv4Addr, SocketAddr, TcpStream, ToSocketAddrs};
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Duration;

use anyhow::{Context, bail};
use rustls_pki_types::ServerName;
use serde::{Deserialize, Serialize};
use tandem_proxy::control_service::{ControlClient, CreatedPair};
use tandem_settings::tls::TlsSettings;

use super::echo::ECHO_LEN;
use super::{System, Target};
use crate::net::{dial, echo_through};
use crate::procfs::Resources;
use crate::workload::PairCreation;

/// Tokio worker threads of the client runtime: the HTTP/2 connection needs little CPU, and
/// the machine's cores belong to the proxy and the load generator.
const RUNTIME_THREADS: usize = 2;
/// Pre-created pairs requested at once in `ahead` mode (calls in flight on the connection).
const AHEAD_BATCH: usize = 64;

/// Where the proxy is and how to authenticate as one of its admins.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RemoteSettings {
    /// ControlService address, `HOST:PORT`.
    pub addr: String,
    /// The admin's TLS certificate chain (PEM).
    pub cert: PathBuf,
    /// The admin's private key (PEM).
    pub key: PathBuf,
    /// Trust anchor for the proxy's certificate (PEM).
    pub ca: PathBuf,
    /// Name the proxy's certificate is verified against.
    pub server_name: String,
    /// Bound on connecting and on every ControlService call.
    pub timeout: Duration,
}

/// A proxy driven through its ControlService.
pub struct Remote {
    client: ControlClient,
    runtime: tokio::runtime::Runtime,
    tickets: Mutex<Vec<(SocketAddr, CreatedPair)>>,
    creation: Mutex<PairCreation>,
}

impl Remote {
    /// Builds the mTLS client and connects to the ControlService at `s.addr`.
    pub fn connect(s: &RemoteSettings) -> anyhow::Result<Self> {
        let tls = TlsSettings {
            ca_certificate_files: vec![s.ca.clone()],
            certificate_file: Some(s.cert.clone()),
            key_file: Some(s.key.clone()),
            server_name: Some(s.server_name.clone()),
            verify_client: false,
            request_client_cert: false,
            insecure_skip_verify: false,
        };
        let config = tandem_net::tls::client_config(&tls, &[b"h2"])
            .context("TLS client configuration from --admin-cert/--admin-key/--ca")?;
        let name = ServerName::try_from(s.server_name.clone())
            .with_context(|| format!("server name {:?}", s.server_name))?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(RUNTIME_THREADS)
            .thread_name("bench-control")
            .enable_all()
            .build()?;
        let client = runtime
            .block_on(ControlClient::connect(&s.addr, config, name, s.timeout))
            .with_context(|| format!("ControlService at {}", s.addr))?;
        Ok(Remote {
            client,
            runtime,
            tickets: Mutex::new(Vec::new()),
            creation: Mutex::new(PairCreation::Ahead),
        })
    }

    /// One `CreatePair` call; returns the resolved endpoint and the pair.
    pub fn create(&self) -> anyhow::Result<(SocketAddr, CreatedPair)> {
        let pair = self.runtime.block_on(self.client.create_pair(None))?;
        Ok((resolve(&pair.endpoint)?, pair))
    }

    /// `n` pairs, `AHEAD_BATCH` calls in flight at a time.
    fn create_many(&self, n: usize) -> anyhow::Result<Vec<(SocketAddr, CreatedPair)>> {
        let mut out = Vec::with_capacity(n);
        while out.len() < n {
            let k = AHEAD_BATCH.min(n - out.len());
            let batch = self.runtime.block_on(async {
                let calls = (0..k).map(|_| {
                    let c = self.client.clone();
                    tokio::spawn(async move { c.create_pair(None).await })
                });
                let mut got = Vec::with_capacity(k);
                for call in calls.collect::<Vec<_>>() {
                    got.push(call.await?);
                }
                Ok::<_, tokio::task::JoinError>(got)
            })?;
            for pair in batch {
                let pair = pair?;
                out.push((resolve(&pair.endpoint)?, pair));
            }
        }
        Ok(out)
    }

    fn join(
        addr: SocketAddr,
        pair: &CreatedPair,
        from: Option<Ipv4Addr>,
    ) -> anyhow::Result<(TcpStream, TcpStream)> {
        let mut a = dial(addr, from).context("connect side A")?;
        a.write_all(pair.tokens[0].as_bytes())?;
        let mut b = dial(addr, from).context("connect side B")?;
        b.write_all(pair.tokens[1].as_bytes())?;
        Ok((a, b))
    }
}

/// The pairing endpoint `HOST:PORT` as a socket address (IPv4 first: the dialer binds IPv4
/// source addresses).
fn resolve(endpoint: &str) -> anyhow::Result<SocketAddr> {
    let all: Vec<_> = endpoint
        .to_socket_addrs()
        .with_context(|| format!("pairing endpoint {endpoint:?}"))?
        .collect();
    match all.iter().find(|a| a.is_ipv4()).or(all.first()) {
        Some(a) => Ok(*a),
        None => bail!("pairing endpoint {endpoint:?} resolves to nothing"),
    }
}

impl Target for Remote {
    fn system(&self) -> System {
        System::TandemProxy
    }

    fn open_pair(&self) -> anyhow::Result<(TcpStream, TcpStream)> {
        let (addr, pair) = self.create()?;
        Self::join(addr, &pair, None)
    }

    fn prepare_setup(
        &self,
        ops: usize,
        _threads: usize,
        creation: PairCreation,
    ) -> anyhow::Result<()> {
        *self
            .creation
            .lock()
            .map_err(|_| anyhow::anyhow!("poisoned"))? = creation;
        let made = match creation {
            PairCreation::Ahead => self.create_many(ops)?,
            PairCreation::ControlPerPair => Vec::new(),
        };
        *self
            .tickets
            .lock()
            .map_err(|_| anyhow::anyhow!("poisoned"))? = made;
        Ok(())
    }

    fn setup_op(&self, from: Option<Ipv4Addr>) -> anyhow::Result<()> {
        let creation = *self
            .creation
            .lock()
            .map_err(|_| anyhow::anyhow!("poisoned"))?;
        let (addr, pair) = match creation {
            PairCreation::ControlPerPair => self.create().context("CreatePair")?,
            PairCreation::Ahead => self
                .tickets
                .lock()
                .map_err(|_| anyhow::anyhow!("poisoned"))?
                .pop()
                .context("no pre-created pairs left")?,
        };
        let (mut a, mut b) = Self::join(addr, &pair, from)?;
        echo_through(&mut a, &mut b, &[0x42u8; ECHO_LEN])?;
        Ok(())
    }

    fn finish_setup(&self) {
        // Unused tokens expire with their TTL on the proxy.
        if let Ok(mut t) = self.tickets.lock() {
            t.clear();
        }
    }

    fn relay_cpu(&self) -> Option<Duration> {
        // The proxy is another process, maybe on another host: not measured here.
        None
    }

    fn relay_resources(&self) -> Option<Resources> {
        None
    }

    fn path_note(&self) -> Option<String> {
        Some("running proxy; pairs created through ControlService".into())
    }
}
