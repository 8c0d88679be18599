//! Faults of peers and certificates: an expired operator certificate issued by a
//! [`TestPki`]'s own intermediate, a blackholed TCP address, and a silent-peer probe.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use chrono::Datelike;
use rcgen::{
    CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType,
};
use sha2::{Digest, Sha256};
use tandem_settings::tls::TlsSettings;
use tandem_testkit::pki::TestPki;
use tokio::io::AsyncReadExt;

/// An operator certificate whose validity ended yesterday, written next to the PKI.
pub struct ExpiredCert {
    /// Leaf followed by the intermediate, PEM.
    pub cert: PathBuf,
    /// PKCS#8 PEM key.
    pub key: PathBuf,
    /// Lowercase hex SHA-256 of the leaf DER (what a directory would pin).
    pub fingerprint: String,
}

impl ExpiredCert {
    /// `pki.tls_settings(op)` presenting this certificate instead of the valid one.
    pub fn tls_settings(&self, pki: &TestPki, op: &str) -> TlsSettings {
        TlsSettings {
            certificate_file: Some(self.cert.clone()),
            key_file: Some(self.key.clone()),
            ..pki.tls_settings(op)
        }
    }
}

/// Issues a TLS certificate for `op` (CN and DNS SAN `op`, client and server auth) signed by the
/// PKI's intermediate, valid from 30 days ago until yesterday: right CA, right names, expired.
pub fn expired_cert(pki: &TestPki, op: &str) -> ExpiredCert {
    let dir = pki.certs_dir();
    let ca_pem = std::fs::read_to_string(pki.intermediate_cert()).unwrap();
    let ca_key =
        KeyPair::from_pem(&std::fs::read_to_string(dir.join("intermediate.key")).unwrap()).unwrap();
    let issuer = Issuer::from_ca_cert_pem(&ca_pem, ca_key).unwrap();

    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, "IRIS");
    dn.push(DnType::CommonName, op);
    params.distinguished_name = dn;
    params.is_ca = IsCa::ExplicitNoCa;
    params.use_authority_key_identifier_extension = true;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ServerAuth,
        ExtendedKeyUsagePurpose::ClientAuth,
    ];
    params.subject_alt_names = vec![SanType::DnsName(op.try_into().unwrap())];
    let today = chrono::Utc::now().date_naive();
    // chrono months and days are 1-based and fit in u8.
    let ymd = |d: chrono::NaiveDate| rcgen::date_time_ymd(d.year(), d.month() as u8, d.day() as u8);
    params.not_before = ymd(today - chrono::Duration::days(30));
    params.not_after = ymd(today - chrono::Duration::days(1));
    let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let cert = params.signed_by(&key, &issuer).unwrap();

    let cert_path = dir.join(format!("{op}-expired.crt"));
    let key_path = dir.join(format!("{op}-expired.key"));
    std::fs::write(&cert_path, format!("{}{ca_pem}", cert.pem())).unwrap();
    std::fs::write(&key_path, key.serialize_pem()).unwrap();
    ExpiredCert {
        cert: cert_path,
        key: key_path,
        fingerprint: hex::encode(Sha256::digest(cert.der())),
    }
}

/// A loopback address whose listener never accepts and whose accept queue is full, so a TCP
/// connect to it stays in SYN-SENT (Linux drops SYNs to a full queue). Keep the value alive.
pub struct Blackhole {
    pub addr: SocketAddr,
    _listener: tokio::net::TcpListener,
    _queued: Vec<std::net::TcpStream>,
}

/// Builds a [`Blackhole`] and checks that a plain connect to it really hangs for 300 ms.
pub async fn blackhole() -> Blackhole {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let listener = socket.listen(0).unwrap();
    let addr = listener.local_addr().unwrap();
    let mut queued = Vec::new();
    // Backlog 0 queues one connection; a few more make sure the queue is full.
    for _ in 0..4 {
        if let Ok(s) = std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(100)) {
            queued.push(s);
        }
    }
    let probe = tokio::time::timeout(
        Duration::from_millis(300),
        tokio::net::TcpStream::connect(addr),
    )
    .await;
    assert!(
        probe.is_err(),
        "precondition: a connect to a full accept queue must hang (got {probe:?})"
    );
    Blackhole {
        addr,
        _listener: listener,
        _queued: queued,
    }
}

/// Connects to `addr`, sends nothing, and returns how long the server took to close the
/// connection (EOF or reset). Panics if it is still open after `bound`.
pub async fn silent_client_closed_after(addr: SocketAddr, bound: Duration) -> Duration {
    let mut tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let started = Instant::now();
    let mut buf = [0u8; 512];
    let read = tokio::time::timeout(bound, async {
        loop {
            match tcp.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {} // a server may send an alert before closing
            }
        }
    })
    .await;
    assert!(read.is_ok(), "{addr}: still open after {bound:?}");
    started.elapsed()
}

/// A TCP listener that accepts connections and then never sends a byte (a peer stuck before
/// its TLS handshake). Connections are held until the returned task is dropped/aborted.
pub async fn silent_server() -> (SocketAddr, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        let mut held = Vec::new();
        // Bounded: a test opens a handful of connections.
        while held.len() < 64 {
            match listener.accept().await {
                Ok((s, _)) => held.push(s),
                Err(_) => break,
            }
        }
        std::future::pending::<()>().await;
    });
    (addr, task)
}
