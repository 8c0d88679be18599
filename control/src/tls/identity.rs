//! Who is on the other end of a TLS connection: the peer's leaf, its candidate operator names
//! (SPEC §6.4 step 1) and its pinning fingerprint (SPEC §6.2).

use rustls_pki_types::CertificateDer;
use sha2::{Digest, Sha256};
use x509_parser::prelude::{FromDer, GeneralName, X509Certificate};

/// The peer's leaf certificate after a completed handshake (`None` if it sent none).
/// Works for client and server connections: pass `&conn` (deref to `CommonState`).
pub fn peer_leaf(state: &rustls::CommonState) -> Option<CertificateDer<'static>> {
    state
        .peer_certificates()?
        .first()
        .map(|cert| cert.clone().into_owned())
}

/// Candidate operator names of a certificate: the subject CN, then every DNS SAN, in certificate
/// order, duplicates kept (as the original's `VerifyCredentials`). Like Go's `Subject.CommonName`
/// the last CN attribute counts; an empty or absent CN is left out. A certificate that does not
/// parse has no names (and therefore matches no directory entry).
pub fn certificate_names(leaf_der: &[u8]) -> Vec<String> {
    let Ok((_, cert)) = X509Certificate::from_der(leaf_der) else {
        return Vec::new();
    };
    let mut names = Vec::new();
    if let Some(cn) = cert
        .subject()
        .iter_common_name()
        .last()
        .and_then(|attr| attr.as_str().ok())
        .filter(|cn| !cn.is_empty())
    {
        names.push(cn.to_owned());
    }
    if let Ok(Some(san)) = cert.subject_alternative_name() {
        names.extend(
            san.value
                .general_names
                .iter()
                .filter_map(|name| match name {
                    GeneralName::DNSName(dns) => Some((*dns).to_owned()),
                    _ => None,
                }),
        );
    }
    names
}

/// Lowercase hex SHA-256 of a certificate's DER: the fingerprint pinned in the directory's
/// `certificates` records.
pub fn fingerprint(der: &[u8]) -> String {
    hex::encode(Sha256::digest(der))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprint_is_lowercase_hex_sha256() {
        assert_eq!(
            fingerprint(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn names_are_cn_then_dns_sans_in_order() {
        let mut params = rcgen::CertificateParams::new(vec![
            "hd-1".into(),
            "*.hd-1.local".into(),
            "hd-1".into(),
        ])
        .unwrap();
        params.distinguished_name = rcgen::DistinguishedName::new();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "hd-1");
        params
            .subject_alt_names
            .push(rcgen::SanType::URI("iris-name://x".try_into().unwrap()));
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        assert_eq!(
            certificate_names(cert.der()),
            ["hd-1", "hd-1", "*.hd-1.local", "hd-1"]
        );
        assert!(certificate_names(b"garbage").is_empty());
    }
}
