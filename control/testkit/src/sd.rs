//! An in-process `sd` on 127.0.0.1:0 over a [`TestPki`], with its settings, signers, clients and
//! record builders. (The `sd` binary as a child process is the system tests' business.)

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use crate::pki::TestPki;
use serde_json::{Value, json};
use tandem_directory::signing::Signer;
use tandem_directory::{ChangeRecord, RecordTime, Section, SignedChangeRecord};
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
        log_level: None,
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
