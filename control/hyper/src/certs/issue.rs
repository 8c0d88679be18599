//! Building the certificates with rcgen: subjects, extensions, validity, key encodings.

use chrono::{Datelike, Duration, Utc};
use p256::pkcs8::DecodePrivateKey;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, PKCS_ECDSA_P256_SHA256, SanType, SerialNumber,
};
use rustls_pki_types::CertificateDer;

use super::CertsError;
use super::plan::{CA_VALIDITY_DAYS, CertKind, LEAF_VALIDITY_DAYS, OperatorSpec};

/// Subject fields shared by every certificate (SPEC §6.1), before the CN.
const SUBJECT: [(DnType, &str); 5] = [
    (DnType::CountryName, "DE"),
    (DnType::StateOrProvinceName, "Berlin"),
    (DnType::LocalityName, "Berlin"),
    (DnType::OrganizationName, "IRIS"),
    (DnType::OrganizationalUnitName, "IT"),
];

/// CN of the root certificate.
pub(crate) const ROOT_CN: &str = "Testing-Development";

/// CN of the intermediate certificate.
pub(crate) const INTERMEDIATE_CN: &str = "intermediate";

/// A CA able to sign: its certificate and the rcgen issuer holding its key.
pub(crate) struct Ca {
    pub(crate) cert_der: CertificateDer<'static>,
    pub(crate) cert_pem: String,
    pub(crate) issuer: Issuer<'static, KeyPair>,
}

impl Ca {
    /// PKCS#8 PEM of the CA key.
    pub(crate) fn key_pem(&self) -> String {
        self.issuer.key().serialize_pem()
    }
}

/// A freshly issued leaf: the file contents and the leaf DER (for fingerprints).
pub(crate) struct Leaf {
    pub(crate) leaf_der: CertificateDer<'static>,
    /// Leaf PEM followed by the intermediate PEM.
    pub(crate) chain_pem: String,
    /// PKCS#8 for TLS kinds, SEC1 `EC PRIVATE KEY` for signing kinds.
    pub(crate) key_pem: String,
}

fn subject(cn: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    for (ty, value) in SUBJECT {
        dn.push(ty, value);
    }
    dn.push(DnType::CommonName, cn);
    dn
}

fn new_key(what: &str) -> Result<KeyPair, CertsError> {
    KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).map_err(|e| CertsError::generate(what, e))
}

/// Random positive 128-bit serial number (RFC 5280 allows up to 20 octets).
fn serial() -> SerialNumber {
    let mut bytes: [u8; 16] = rand::random();
    bytes[0] = (bytes[0] & 0x7f) | 0x01;
    SerialNumber::from_slice(&bytes)
}

/// Params valid from yesterday (clock skew between dev machines) for `days` days.
fn base_params(cn: &str, days: i64) -> CertificateParams {
    let today = Utc::now().date_naive();
    let to_rcgen = |d: chrono::NaiveDate| {
        // chrono months/days are 1-based and always fit in u8.
        rcgen::date_time_ymd(d.year(), d.month() as u8, d.day() as u8)
    };
    let mut params = CertificateParams::default();
    params.not_before = to_rcgen(today - Duration::days(1));
    params.not_after = to_rcgen(today + Duration::days(days));
    params.serial_number = Some(serial());
    params.distinguished_name = subject(cn);
    params
}

fn ca_params(cn: &str, constraints: BasicConstraints) -> CertificateParams {
    let mut params = base_params(cn, CA_VALIDITY_DAYS);
    params.is_ca = IsCa::Ca(constraints);
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::KeyCertSign,
    ];
    params
}

/// A new self-signed root (`CA:true`, no path length limit, SKI).
pub(crate) fn new_root() -> Result<Ca, CertsError> {
    let key = new_key("root key")?;
    let params = ca_params(ROOT_CN, BasicConstraints::Unconstrained);
    let cert = params
        .self_signed(&key)
        .map_err(|e| CertsError::generate("root certificate", e))?;
    Ok(Ca {
        cert_der: cert.der().clone(),
        cert_pem: cert.pem(),
        issuer: Issuer::new(params, key),
    })
}

/// A new intermediate under `root` (`CA:true, pathlen:0`, SKI/AKI).
pub(crate) fn new_intermediate(root: &Ca) -> Result<Ca, CertsError> {
    let key = new_key("intermediate key")?;
    let mut params = ca_params(INTERMEDIATE_CN, BasicConstraints::Constrained(0));
    params.use_authority_key_identifier_extension = true;
    let cert = params
        .signed_by(&key, &root.issuer)
        .map_err(|e| CertsError::generate("intermediate certificate", e))?;
    Ok(Ca {
        cert_der: cert.der().clone(),
        cert_pem: cert.pem(),
        issuer: Issuer::new(params, key),
    })
}

/// Rebuilds a CA from its certificate DER and PKCS#8 key DER (reuse of an existing PKI).
pub(crate) fn load_ca(
    what: &str,
    cert_der: CertificateDer<'static>,
    pkcs8_der: &[u8],
) -> Result<Ca, CertsError> {
    let key = KeyPair::try_from(pkcs8_der).map_err(|e| CertsError::generate(what, e))?;
    let issuer =
        Issuer::from_ca_cert_der(&cert_der, key).map_err(|e| CertsError::generate(what, e))?;
    Ok(Ca {
        cert_pem: pem_encode("CERTIFICATE", &cert_der),
        cert_der,
        issuer,
    })
}

/// PEM-encodes DER with 64-column lines, as OpenSSL and rcgen do.
pub(crate) fn pem_encode(label: &str, der: &[u8]) -> String {
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for line in b64.as_bytes().chunks(64) {
        // base64 output is ASCII, so every chunk is valid UTF-8.
        out.push_str(std::str::from_utf8(line).unwrap_or_default());
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

/// The SANs of an operator certificate of `kind`, in the order the original wrote them.
pub(crate) fn sans(op: &OperatorSpec, kind: CertKind) -> Vec<(SanKind, String)> {
    let name = &op.name;
    if kind.is_signing() {
        let mut sans = vec![(SanKind::Uri, format!("iris-name://{name}"))];
        if let Some(group) = &op.group {
            sans.push((SanKind::Uri, format!("iris-group://{group}")));
        }
        sans.push((SanKind::Dns, name.clone()));
        sans
    } else {
        vec![
            (SanKind::Dns, name.clone()),
            (SanKind::Dns, format!("*.{name}.local")),
        ]
    }
}

/// Which kind of SAN entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SanKind {
    Dns,
    Uri,
}

fn leaf_params(op: &OperatorSpec, kind: CertKind) -> Result<CertificateParams, CertsError> {
    let what = || format!("{}{} certificate", op.name, kind.suffix());
    let mut params = base_params(&op.name, LEAF_VALIDITY_DAYS);
    params.is_ca = IsCa::ExplicitNoCa;
    params.use_authority_key_identifier_extension = true;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    if !kind.is_signing() {
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
    }
    for (san_kind, value) in sans(op, kind) {
        let ia5 = value
            .try_into()
            .map_err(|e| CertsError::generate(what(), e))?;
        params.subject_alt_names.push(match san_kind {
            SanKind::Dns => SanType::DnsName(ia5),
            SanKind::Uri => SanType::URI(ia5),
        });
    }
    Ok(params)
}

/// Issues the `kind` certificate of `op` under `intermediate`, with a new key.
pub(crate) fn new_leaf(
    op: &OperatorSpec,
    kind: CertKind,
    intermediate: &Ca,
) -> Result<Leaf, CertsError> {
    let what = format!("{}{}", op.name, kind.suffix());
    let key = new_key(&what)?;
    let cert = leaf_params(op, kind)?
        .signed_by(&key, &intermediate.issuer)
        .map_err(|e| CertsError::generate(what.clone(), e))?;
    let key_pem = if kind.is_signing() {
        sec1_pem(&what, key.serialized_der())?
    } else {
        key.serialize_pem()
    };
    Ok(Leaf {
        leaf_der: cert.der().clone(),
        chain_pem: format!("{}{}", cert.pem(), intermediate.cert_pem),
        key_pem,
    })
}

/// Converts a PKCS#8 P-256 key to SEC1 PEM (`EC PRIVATE KEY`), the format the original's
/// `helpers.LoadPrivateKey` requires for signing keys.
fn sec1_pem(what: &str, pkcs8_der: &[u8]) -> Result<String, CertsError> {
    let key_err = |reason: String| CertsError::Key {
        what: what.to_owned(),
        reason,
    };
    let secret = p256::SecretKey::from_pkcs8_der(pkcs8_der).map_err(|e| key_err(e.to_string()))?;
    let pem = secret
        .to_sec1_pem(p256::pkcs8::LineEnding::LF)
        .map_err(|e| key_err(e.to_string()))?;
    Ok(pem.as_str().to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signing_key_is_sec1_and_tls_key_is_pkcs8() {
        let root = new_root().unwrap();
        let inter = new_intermediate(&root).unwrap();
        let op = OperatorSpec {
            name: "hd-1".into(),
            group: Some("sd-admin".into()),
        };
        let sign = new_leaf(&op, CertKind::Sign, &inter).unwrap();
        assert!(sign.key_pem.starts_with("-----BEGIN EC PRIVATE KEY-----\n"));
        let tls = new_leaf(&op, CertKind::Tls, &inter).unwrap();
        assert!(tls.key_pem.starts_with("-----BEGIN PRIVATE KEY-----\n"));
        assert!(tls.chain_pem.ends_with(&inter.cert_pem));
        assert_eq!(tls.chain_pem.matches("BEGIN CERTIFICATE").count(), 2);
    }

    #[test]
    fn pem_encoding_matches_rcgen() {
        let root = new_root().unwrap();
        assert_eq!(
            pem_encode("CERTIFICATE", &root.cert_der),
            root.cert_pem.replace("\r\n", "\n")
        );
    }

    #[test]
    fn signing_sans_carry_the_group_only_when_there_is_one() {
        let with = OperatorSpec {
            name: "hd-1".into(),
            group: Some("sd-admin".into()),
        };
        let without = OperatorSpec {
            name: "hd-2".into(),
            group: None,
        };
        let uris = |op: &OperatorSpec| {
            sans(op, CertKind::Sign)
                .into_iter()
                .filter(|(k, _)| *k == SanKind::Uri)
                .map(|(_, v)| v)
                .collect::<Vec<_>>()
        };
        assert_eq!(uris(&with), ["iris-name://hd-1", "iris-group://sd-admin"]);
        assert_eq!(uris(&without), ["iris-name://hd-2"]);
    }
}
