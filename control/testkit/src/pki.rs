//! [`TestPki`], the one test PKI of the workspace: the dev layout `hyper certs` generates (the
//! production generator, so tests see exactly what operators get) under a directory of the test's,
//! with path accessors and ready-made [`TlsSettings`]; and signing leaves issued on demand from its
//! intermediate ([`TestPki::signing`]) as plain PEM/DER data, for unit tests of the directory's
//! signatures and identities (which cannot take the directory's own types from this crate).

use std::path::{Path, PathBuf};

use rcgen::{
    CertificateParams, DnType, ExtendedKeyUsagePurpose, Issuer, KeyPair, KeyUsagePurpose,
    PKCS_ECDSA_P256_SHA256, SanType,
};
use tandem_hyper::certs::{
    CertKind, CertsError, CertsPlan, CertsReport, DEV_GROUPS, OperatorFingerprints, PkiLayout,
    generate,
};
use tandem_settings::tls::TlsSettings;

/// A generated PKI under `<dir>/certs` with its records file in `<dir>/directory`.
#[derive(Debug)]
pub struct TestPki {
    layout: PkiLayout,
    directory_dir: PathBuf,
    report: CertsReport,
    root_pem: String,
    intermediate_pem: String,
    intermediate: Issuer<'static, KeyPair>,
    /// Set when the PKI lives in a directory of its own ([`TestPki::temporary`]); removed on drop.
    _own_dir: Option<tempfile::TempDir>,
}

/// A signing identity issued by [`TestPki::signing`]: plain data, so that any crate's tests can
/// build their own signer from it.
#[derive(Debug, Clone)]
pub struct TestSigner {
    /// Private key PEM (PKCS#8).
    pub key_pem: String,
    /// Leaf certificate PEM (leaf only, no intermediate).
    pub cert_pem: String,
    /// Leaf DER.
    pub cert_der: Vec<u8>,
}

impl TestPki {
    /// A PKI in a temporary directory of its own (removed on drop) for the one operator `hd-1`:
    /// for tests that need only a root, an intermediate and leaves from [`TestPki::signing`].
    pub fn temporary() -> Self {
        let dir = tempfile::tempdir().expect("temporary directory");
        let mut pki = Self::generate(dir.path(), &["hd-1"]).expect("test PKI");
        pki._own_dir = Some(dir);
        pki
    }

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
        let layout = plan.layout();
        let read = |path: PathBuf| {
            std::fs::read_to_string(&path).map_err(|source| CertsError::Io { path, source })
        };
        let root_pem = read(layout.root_cert())?;
        let intermediate_pem = read(layout.intermediate_cert())?;
        let key = KeyPair::from_pem(&read(layout.intermediate_key())?).expect("intermediate key");
        let intermediate =
            Issuer::from_ca_cert_pem(&intermediate_pem, key).expect("intermediate certificate");
        Ok(Self {
            layout,
            directory_dir,
            report,
            root_pem,
            intermediate_pem,
            intermediate,
            _own_dir: None,
        })
    }

    /// `root.crt` as PEM.
    pub fn root_pem(&self) -> &str {
        &self.root_pem
    }

    /// `intermediate.crt` as PEM.
    pub fn intermediate_pem(&self) -> &str {
        &self.intermediate_pem
    }

    /// A fresh signing leaf for `name` in `group` ("" = the empty `iris-group://` of non-admins),
    /// issued by the intermediate with the conventions of SPEC §6.1: `iris-name://<name>`,
    /// `iris-group://<group>` URI SANs, `DNS:<name>`, keyUsage digitalSignature. Not pinned in the
    /// records file (a new key each call).
    pub fn signing(&self, name: &str, group: &str) -> TestSigner {
        self.leaf(name, group, None)
    }

    /// Like [`TestPki::signing`] with an extended key usage.
    pub fn signing_with_eku(
        &self,
        name: &str,
        group: &str,
        eku: ExtendedKeyUsagePurpose,
    ) -> TestSigner {
        self.leaf(name, group, Some(eku))
    }

    fn leaf(&self, name: &str, group: &str, eku: Option<ExtendedKeyUsagePurpose>) -> TestSigner {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("no SANs");
        params.distinguished_name.push(DnType::CommonName, name);
        params.subject_alt_names = vec![
            SanType::URI(format!("iris-name://{name}").try_into().expect("ia5")),
            SanType::URI(format!("iris-group://{group}").try_into().expect("ia5")),
            SanType::DnsName(name.try_into().expect("ia5")),
        ];
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = eku.into_iter().collect();
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).expect("P-256 key generation");
        let cert = params.signed_by(&key, &self.intermediate).expect("leaf");
        TestSigner {
            key_pem: key.serialize_pem(),
            cert_pem: cert.pem(),
            cert_der: cert.der().to_vec(),
        }
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
