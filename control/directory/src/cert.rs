//! Signing certificates (SPEC §3.4 steps 2–3, §6.1–6.2): the first PEM block of a signature's `c`, key usage
//! digitalSignature, an ECDSA P-256 key, and the `iris-name://` / `iris-group://` / DNS SANs. Also the fingerprint
//! (§6.2) and Go's PEM encoding.

use base64::Engine as _;
use p256::pkcs8::DecodePublicKey as _;
use sha2::{Digest, Sha256};
use x509_parser::extensions::GeneralName;
use x509_parser::oid_registry::OID_KEY_TYPE_EC_PUBLIC_KEY;
use x509_parser::pem::Pem;
use x509_parser::prelude::{FromDer, X509Certificate};

/// Why a certificate cannot sign directory records.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CertError {
    /// No PEM block, or the first block is not a `CERTIFICATE`.
    #[error("not a PEM certificate")]
    NotPem,
    /// DER does not parse as X.509.
    #[error("malformed certificate: {0}")]
    Malformed(String),
    /// No keyUsage digitalSignature ("expected a certificate for signing").
    #[error("expected a certificate for signing")]
    NotForSigning,
    /// Not an ECDSA key ("expected an ECDSA-based certificate").
    #[error("expected an ECDSA-based certificate")]
    NotEcdsa,
    /// ECDSA on a curve other than P-256 (the original accepts any ECDSA curve; Tandem verifies P-256 only).
    #[error("unsupported ECDSA curve (only P-256)")]
    UnsupportedCurve,
}

/// What a signing certificate says about its holder.
#[derive(Debug, Clone)]
pub struct SignerCert {
    /// Leaf DER.
    pub der: Vec<u8>,
    /// Host of the last `iris-name://` URI SAN ("" if none).
    pub name: String,
    /// Hosts of `iris-group://` URI SANs (empty hosts ignored).
    pub groups: Vec<String>,
    /// DNS SANs.
    pub dns_names: Vec<String>,
    /// The P-256 public key.
    pub key: p256::ecdsa::VerifyingKey,
}

/// Lowercase hex SHA-256 of a certificate's DER (what `certificates` records pin).
pub fn fingerprint(der: &[u8]) -> String {
    hex::encode(Sha256::digest(der))
}

/// DER of the first PEM block, which must be a `CERTIFICATE` (Go `pem.Decode` + type check).
pub fn first_pem_certificate(pem: &[u8]) -> Result<Vec<u8>, CertError> {
    match Pem::iter_from_buffer(pem).next() {
        Some(Ok(block)) if block.label == "CERTIFICATE" => Ok(block.contents),
        _ => Err(CertError::NotPem),
    }
}

/// Go's `pem.EncodeToMemory` of a `CERTIFICATE` block: 64-column base64 lines, trailing newline.
pub fn pem_encode_certificate(der: &[u8]) -> String {
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = String::from("-----BEGIN CERTIFICATE-----\n");
    for line in b64.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(line).expect("base64 output is ASCII"));
        out.push('\n');
    }
    out.push_str("-----END CERTIFICATE-----\n");
    out
}

/// The host of a URI SAN with the given scheme (Go `url.Parse(..).Host`, userinfo removed), if the scheme matches.
fn uri_host<'a>(uri: &'a str, scheme: &str) -> Option<&'a str> {
    let (found, rest) = uri.split_once("://")?;
    if !found.eq_ignore_ascii_case(scheme) {
        return None;
    }
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    Some(
        authority
            .rsplit_once('@')
            .map_or(authority, |(_, host)| host),
    )
}

/// Parses and checks a signing certificate (steps 2–3 of §3.4, without the group check).
pub fn parse_signing_cert(der: &[u8]) -> Result<SignerCert, CertError> {
    let (_, cert) =
        X509Certificate::from_der(der).map_err(|e| CertError::Malformed(e.to_string()))?;
    let digital_signature = cert
        .key_usage()
        .map_err(|e| CertError::Malformed(e.to_string()))?
        .is_some_and(|ku| ku.value.digital_signature());
    if !digital_signature {
        return Err(CertError::NotForSigning);
    }
    let spki = &cert.tbs_certificate.subject_pki;
    if spki.algorithm.algorithm != OID_KEY_TYPE_EC_PUBLIC_KEY {
        return Err(CertError::NotEcdsa);
    }
    let key = p256::ecdsa::VerifyingKey::from_public_key_der(spki.raw)
        .map_err(|_| CertError::UnsupportedCurve)?;
    let mut signer = SignerCert {
        der: der.to_vec(),
        name: String::new(),
        groups: Vec::new(),
        dns_names: Vec::new(),
        key,
    };
    let san = cert
        .subject_alternative_name()
        .map_err(|e| CertError::Malformed(e.to_string()))?;
    for general_name in san.iter().flat_map(|ext| ext.value.general_names.iter()) {
        match general_name {
            GeneralName::URI(uri) => {
                if let Some(name) = uri_host(uri, "iris-name") {
                    signer.name = name.to_owned();
                } else if let Some(group) = uri_host(uri, "iris-group").filter(|g| !g.is_empty()) {
                    signer.groups.push(group.to_owned());
                }
            }
            GeneralName::DNSName(dns) => signer.dns_names.push((*dns).to_owned()),
            _ => {}
        }
    }
    Ok(signer)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uri_hosts_like_go_url_parse() {
        assert_eq!(uri_host("iris-name://hd-1", "iris-name"), Some("hd-1"));
        assert_eq!(uri_host("IRIS-NAME://hd-1/x?y", "iris-name"), Some("hd-1"));
        assert_eq!(uri_host("iris-group://", "iris-group"), Some(""));
        assert_eq!(
            uri_host("iris-group://u@sd-admin", "iris-group"),
            Some("sd-admin")
        );
        assert_eq!(uri_host("https://hd-1", "iris-name"), None);
    }

    #[test]
    fn pem_roundtrip_uses_64_columns() {
        let der: Vec<u8> = (0..=255u8).collect();
        let pem = pem_encode_certificate(&der);
        assert!(pem.lines().all(|l| l.len() <= 64));
        assert_eq!(first_pem_certificate(pem.as_bytes()).unwrap(), der);
        let key = pem.replace("CERTIFICATE", "EC PRIVATE KEY");
        assert_eq!(
            first_pem_certificate(key.as_bytes()),
            Err(CertError::NotPem)
        );
        assert_eq!(first_pem_certificate(b"garbage"), Err(CertError::NotPem));
    }
}
