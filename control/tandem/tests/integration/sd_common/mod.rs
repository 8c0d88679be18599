//! Shared set-up for the sd tests: a PKI, an in-process `sd` on 127.0.0.1:0, signers, clients.
#![allow(clippy::unwrap_used, dead_code)]

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use tandem_directory::signing::Signer;
use tandem_directory::{ChangeRecord, RecordTime, Section, SignedChangeRecord};
use tandem_hyper::certs::TestPki;
use tandem_hyper::sdclient::SdClient;
use tandem_net::http::JsonRpcClient;
use tandem_settings::datastore::{DatastoreSettings, FileDatastoreSettings};
use tandem_settings::listeners::{RatePeriod, TcpRateLimit};
use tandem_settings::sd::{SdDirectorySettings, SdLimits, SdSettings};
use tandem_settings::{HostPort, JsonRpcServerSettings};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// Operators the tests' PKI knows.
pub const OPS: &[&str] = &["hd-1", "hd-2", "sd-1"];

/// A running in-process sd.
pub struct Sd {
    pub addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl Sd {
    /// Stops the server and waits for it.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.unwrap();
        }
    }
}

/// sd settings over `pki` with `datastore` and optional per-hour rate limit.
pub fn settings(pki: &TestPki, datastore: DatastoreSettings, per_hour: Option<u32>) -> SdSettings {
    SdSettings {
        jsonrpc_server: JsonRpcServerSettings {
            serving: Default::default(),
            bind_address: HostPort {
                host: "127.0.0.1".into(),
                port: 0,
            },
            path: "/jsonrpc".into(),
            cors: None,
            tls: Some(pki.tls_settings("sd-1")),
            tcp_rate_limits: per_hour
                .map(|n| {
                    vec![TcpRateLimit {
                        period: RatePeriod::Hour,
                        limit: n.try_into().unwrap(),
                    }]
                })
                .unwrap_or_default(),
        },
        directory: SdDirectorySettings {
            datastore,
            ca_certificate_files: vec![pki.root_cert()],
            ca_intermediate_certificate_files: vec![pki.intermediate_cert()],
        },
        metrics: None,
        limits: SdLimits::default(),
    }
}

/// The file datastore under `dir`.
pub fn file_store(dir: &Path) -> DatastoreSettings {
    DatastoreSettings::File(FileDatastoreSettings {
        filename: dir.join("sd.records"),
    })
}

/// Starts sd with `settings` on 127.0.0.1:0.
pub async fn start(settings: SdSettings) -> Sd {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = oneshot::channel();
    let task = tokio::spawn(async move {
        tandem_sd::run(&settings, listener, async {
            let _ = stopped.await;
        })
        .await
        .unwrap();
    });
    Sd {
        addr,
        stop: Some(stop),
        task: Some(task),
    }
}

/// A JSON-RPC client of `sd` presenting `op`'s TLS certificate.
pub fn rpc(pki: &TestPki, addr: SocketAddr, op: &str) -> JsonRpcClient {
    let tls = tandem_net::tls::client_config(&pki.client_tls_settings(op, "sd-1"), &[]).unwrap();
    JsonRpcClient::new(
        &format!("https://{addr}/jsonrpc"),
        Some(tls),
        Some("sd-1"),
        Duration::from_secs(10),
    )
    .unwrap()
}

/// A directory client of `sd` as `op`.
pub fn client(pki: &TestPki, addr: SocketAddr, op: &str) -> SdClient {
    SdClient::new(rpc(pki, addr, op))
}

/// The signer of `op` (its `-sign` certificate), or its alternative key with `alt`.
pub fn signer(pki: &TestPki, op: &str, alt: bool) -> Signer {
    let (key, cert) = if alt {
        (pki.sign_alt_key(op), pki.sign_alt_cert(op))
    } else {
        (pki.sign_key(op), pki.sign_cert(op))
    };
    Signer::from_pem(
        &std::fs::read_to_string(key).unwrap(),
        &std::fs::read_to_string(cert).unwrap(),
    )
    .unwrap()
}

/// A `groups` record for `name`.
pub fn groups_record(name: &str, groups: &[&str]) -> ChangeRecord {
    ChangeRecord::new(
        name.into(),
        Section::Groups,
        &json!(groups),
        RecordTime::from_utc(chrono::Utc::now()),
    )
    .unwrap()
}

/// The `certificates` record that pins `op`'s signing and TLS fingerprints.
pub fn certificates_record(pki: &TestPki, op: &str) -> ChangeRecord {
    let data = json!([
        {"fingerprint": pki.signing_fingerprint(op).unwrap(), "key_usage": "signing"},
        {"fingerprint": pki.fingerprint(op).unwrap(), "key_usage": "encryption"},
    ]);
    ChangeRecord::new(
        op.into(),
        Section::Certificates,
        &data,
        RecordTime::from_utc(chrono::Utc::now()),
    )
    .unwrap()
}

/// Signs `records` as a chain after `parent` with hd-1 (the sd-admin).
pub fn admin_chain(
    pki: &TestPki,
    parent: &str,
    records: Vec<ChangeRecord>,
) -> Vec<SignedChangeRecord> {
    signer(pki, "hd-1", false)
        .sign_chain(parent, records)
        .unwrap()
}

/// The JSON-RPC error code of a failed call.
pub fn rpc_code(err: &tandem_hyper::sdclient::SdClientError) -> Option<i64> {
    match err {
        tandem_hyper::sdclient::SdClientError::Call(tandem_net::http::ClientError::Rpc {
            error,
            ..
        }) => Some(error.code),
        _ => None,
    }
}

/// Records of the chain as JSON, for comparisons.
pub fn hashes(records: &[SignedChangeRecord]) -> Vec<String> {
    records.iter().map(|r| r.hash.clone()).collect()
}

/// `Value` of a JSON string, for asserts.
pub fn s(v: &str) -> Value {
    Value::String(v.into())
}

/// The client TLS config of `op` as rustls wants it (for raw connections).
pub fn raw_tls(pki: &TestPki, op: &str) -> Arc<rustls::ClientConfig> {
    tandem_net::tls::client_config(&pki.client_tls_settings(op, "sd-1"), &[b"http/1.1"]).unwrap()
}

/// The `sd` binary cargo built for these tests.
pub const SD: &str = env!("CARGO_BIN_EXE_sd");

/// Starts the `sd` binary on `settings` and returns it with its address once it listens (bounded).
pub fn spawn_sd(settings: &Path) -> (std::process::Child, SocketAddr) {
    let (child, addrs) = spawn_sd_with(settings, &["sd listening"]);
    (child, addrs[0])
}

/// Starts the `sd` binary and returns the address logged with each of `events`, in order
/// (bounded wait; the log lines seen are in the panic message when it does not come up).
pub fn spawn_sd_with(settings: &Path, events: &[&str]) -> (std::process::Child, Vec<SocketAddr>) {
    use std::io::{BufRead, BufReader};
    let mut child = std::process::Command::new(SD)
        .arg("run")
        .env("SD_SETTINGS", settings)
        .env("RUST_LOG", "info")
        .stderr(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let mut found = vec![None; events.len()];
    let mut seen = Vec::new();
    while found.iter().any(Option::is_none) {
        let Ok(line) = rx.recv_timeout(Duration::from_secs(30)) else {
            panic!(
                "sd did not start within 30 s; it said:\n{}",
                seen.join("\n")
            );
        };
        for (slot, event) in found.iter_mut().zip(events) {
            let addr = line
                .split("address=")
                .nth(1)
                .and_then(|r| r.split_whitespace().next());
            if let (true, Some(addr)) = (line.contains(event), addr) {
                *slot = Some(addr.parse().unwrap());
            }
        }
        seen.push(line);
    }
    (child, found.into_iter().map(Option::unwrap).collect())
}

/// Writes an sd role directory under `dir` serving on 127.0.0.1:0 with `datastore_yaml` (indented
/// four spaces) and `extra_yaml` appended; returns the role directory.
pub fn write_settings(
    dir: &Path,
    pki: &TestPki,
    datastore_yaml: &str,
    extra_yaml: &str,
) -> std::path::PathBuf {
    let role = dir.join("role");
    std::fs::create_dir_all(&role).unwrap();
    let yaml = format!(
        "jsonrpc_server:\n  bind_address: \"127.0.0.1:0\"\n  tls:\n    ca_certificate_files: [\"{root}\"]\n    certificate_file: \"{cert}\"\n    key_file: \"{key}\"\ndirectory:\n  datastore:\n{datastore_yaml}\n  ca_certificate_files: [\"{root}\"]\n  ca_intermediate_certificate_files: [\"{inter}\"]\n{extra_yaml}",
        root = pki.root_cert().display(),
        inter = pki.intermediate_cert().display(),
        cert = pki.cert("sd-1").display(),
        key = pki.key("sd-1").display(),
    );
    std::fs::write(role.join("001_default.yml"), yaml).unwrap();
    role
}
