//! Test certificates with the conventions of SPEC §6.1: a root, an intermediate, and P-256 signing leaves with
//! `iris-name://<op>`, `iris-group://<group>` URI SANs, `DNS:<op>` and keyUsage digitalSignature.

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose, PKCS_ECDSA_P256_SHA256, SanType,
};

use super::signing::Signer;
use super::verify::Verifier;

/// A CA hierarchy for tests.
pub struct TestPki {
    /// Root certificate PEM.
    pub root_pem: String,
    /// Intermediate certificate PEM.
    pub intermediate_pem: String,
    intermediate: CertifiedIssuer<'static, KeyPair>,
}

/// A signing identity: key PEM (PKCS#8) and certificate PEM (leaf only).
pub struct TestSigner {
    /// Private key PEM.
    pub key_pem: String,
    /// Leaf certificate PEM.
    pub cert_pem: String,
    /// Leaf DER.
    pub cert_der: Vec<u8>,
}

impl TestSigner {
    /// A [`Signer`] for this identity.
    pub fn signer(&self) -> Signer {
        Signer::from_pem(&self.key_pem, &self.cert_pem).expect("test signer")
    }
}

fn ca_params(cn: &str, constraint: BasicConstraints) -> CertificateParams {
    let mut params = CertificateParams::new(Vec::<String>::new()).expect("no SANs");
    params.distinguished_name.push(DnType::CommonName, cn);
    params.is_ca = IsCa::Ca(constraint);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    params
}

fn key() -> KeyPair {
    KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).expect("P-256 key generation")
}

impl TestPki {
    /// A fresh root and intermediate.
    pub fn new() -> Self {
        let root = CertifiedIssuer::self_signed(
            ca_params("Testing-Development", BasicConstraints::Unconstrained),
            key(),
        )
        .expect("root");
        let intermediate = CertifiedIssuer::signed_by(
            ca_params("intermediate", BasicConstraints::Constrained(0)),
            key(),
            &root,
        )
        .expect("intermediate");
        Self {
            root_pem: root.pem(),
            intermediate_pem: intermediate.pem(),
            intermediate,
        }
    }

    /// A verifier trusting this root through this intermediate.
    pub fn verifier(&self) -> Verifier {
        Verifier::from_pem(
            &[self.root_pem.clone().into_bytes()],
            &[self.intermediate_pem.clone().into_bytes()],
        )
        .expect("verifier")
    }

    /// A signing leaf for `name` in `group` ("" = the empty `iris-group://` of non-admins).
    pub fn signing(&self, name: &str, group: &str) -> TestSigner {
        self.leaf(name, group, None)
    }

    /// A signing leaf with an extended key usage.
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
        let key = key();
        let cert = params.signed_by(&key, &self.intermediate).expect("leaf");
        TestSigner {
            key_pem: key.serialize_pem(),
            cert_pem: cert.pem(),
            cert_der: cert.der().to_vec(),
        }
    }
}
