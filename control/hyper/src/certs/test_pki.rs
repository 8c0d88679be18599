//! [`TestPki`]: the dev PKI layout generated into a temporary directory, with path accessors and
//! ready-made [`TlsSettings`], for integration tests across the workspace.

use std::path::{Path, PathBuf};

use super::CertsError;
use super::generate::{CertsReport, OperatorFingerprints, generate};
use super::plan::{CertKind, CertsPlan, DEV_GROUPS, PkiLayout};
use tandem_settings::tls::TlsSettings;

/// A generated PKI under `<dir>/certs` with its records file in `<dir>/directory`.
#[derive(Debug, Clone)]
pub struct TestPki {
    layout: PkiLayout,
    directory_dir: PathBuf,
    report: CertsReport,
}

impl TestPki {
    /// Generates certificates for `ops` (with the dev group map: `hd-1` → `sd-admin`) into
    /// `<dir>/certs` and `<dir>/directory/002_certificates.json`. Takes a few milliseconds per operator.
    pub fn generate(dir: &Path, ops: &[&str]) -> Result<Self, CertsError> {
        Self::generate_with_groups(dir, ops, &DEV_GROUPS)
    }

    /// Like [`TestPki::generate`] with an explicit operator → group map.
    pub fn generate_with_groups(
        dir: &Path,
        ops: &[&str],
        groups: &[(&str, &str)],
    ) -> Result<Self, CertsError> {
        let directory_dir = dir.join("directory");
        let plan = CertsPlan::with_operators(dir.join("certs"), &directory_dir, ops, groups);
        let report = generate(&plan)?;
        Ok(Self {
            layout: plan.layout(),
            directory_dir,
            report,
        })
    }

    /// File layout of the certificates directory.
    pub fn layout(&self) -> &PkiLayout {
        &self.layout
    }

    /// The certificates directory (`<dir>/certs`).
    pub fn certs_dir(&self) -> &Path {
        self.layout.dir()
    }

    /// The directory holding `002_certificates.json` (`<dir>/directory`).
    pub fn directory_dir(&self) -> &Path {
        &self.directory_dir
    }

    /// `<dir>/directory/002_certificates.json`.
    pub fn directory_file(&self) -> &Path {
        &self.report.directory_file
    }

    /// `root.crt`, the only trust anchor.
    pub fn root_cert(&self) -> PathBuf {
        self.layout.root_cert()
    }

    /// `intermediate.crt`.
    pub fn intermediate_cert(&self) -> PathBuf {
        self.layout.intermediate_cert()
    }

    /// `<op>.crt` (TLS leaf + intermediate).
    pub fn cert(&self, op: &str) -> PathBuf {
        self.layout.cert(op, CertKind::Tls)
    }

    /// `<op>.key` (PKCS#8).
    pub fn key(&self, op: &str) -> PathBuf {
        self.layout.key(op, CertKind::Tls)
    }

    /// `<op>-alt.crt`: valid chain and names, but not pinned in the directory.
    pub fn alt_cert(&self, op: &str) -> PathBuf {
        self.layout.cert(op, CertKind::TlsAlt)
    }

    /// `<op>-alt.key`.
    pub fn alt_key(&self, op: &str) -> PathBuf {
        self.layout.key(op, CertKind::TlsAlt)
    }

    /// `<op>-sign.crt` (signing leaf + intermediate).
    pub fn sign_cert(&self, op: &str) -> PathBuf {
        self.layout.cert(op, CertKind::Sign)
    }

    /// `<op>-sign.key` (SEC1 `EC PRIVATE KEY`).
    pub fn sign_key(&self, op: &str) -> PathBuf {
        self.layout.key(op, CertKind::Sign)
    }

    /// `<op>-sign-alt.crt`: valid but not pinned.
    pub fn sign_alt_cert(&self, op: &str) -> PathBuf {
        self.layout.cert(op, CertKind::SignAlt)
    }

    /// `<op>-sign-alt.key`.
    pub fn sign_alt_key(&self, op: &str) -> PathBuf {
        self.layout.key(op, CertKind::SignAlt)
    }

    /// Pinned fingerprints of every operator, in generation order.
    pub fn fingerprints(&self) -> &[OperatorFingerprints] {
        &self.report.fingerprints
    }

    /// Pinned TLS ("encryption") fingerprint of `op`, if `op` was generated.
    pub fn fingerprint(&self, op: &str) -> Option<&str> {
        self.operator(op).map(|f| f.encryption.as_str())
    }

    /// Pinned signing fingerprint of `op`, if `op` was generated.
    pub fn signing_fingerprint(&self, op: &str) -> Option<&str> {
        self.operator(op).map(|f| f.signing.as_str())
    }

    fn operator(&self, op: &str) -> Option<&OperatorFingerprints> {
        self.report.fingerprints.iter().find(|f| f.name == op)
    }

    /// mTLS settings for `op`: trust `root.crt`, present `<op>.crt/.key`, require verified client
    /// certificates (servers), verify the server against its name (clients; see `server_name`).
    pub fn tls_settings(&self, op: &str) -> TlsSettings {
        TlsSettings {
            ca_certificate_files: vec![self.root_cert()],
            certificate_file: Some(self.cert(op)),
            key_file: Some(self.key(op)),
            server_name: None,
            verify_client: true,
            request_client_cert: false,
            insecure_skip_verify: false,
        }
    }

    /// Client settings for `op` dialling the operator `server` (sets `server_name`).
    pub fn client_tls_settings(&self, op: &str, server: &str) -> TlsSettings {
        TlsSettings {
            server_name: Some(server.to_owned()),
            ..self.tls_settings(op)
        }
    }
}
