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

/// Candidate operator names of a certificate: the subject CN ([`common_name`]), then every DNS
/// SAN, in certificate order, duplicates kept (as the original's `VerifyCredentials`, SPEC §6.4
/// step 1). A certificate that does not parse has no names (and therefore matches nothing).
pub fn certificate_names(leaf_der: &[u8]) -> Vec<String> {
    match X509Certificate::from_der(leaf_der) {
        Ok((_, cert)) => names_of(&cert),
        Err(_) => Vec::new(),
    }
}

/// [`certificate_names`] of a parsed certificate.
pub fn names_of(cert: &X509Certificate<'_>) -> Vec<String> {
    let mut names: Vec<String> = common_name(cert).map(str::to_owned).into_iter().collect();
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

/// The certificate's common name, by the one rule every identity check uses: like Go's
/// `Subject.CommonName` (what the original reads), the **last** CN attribute of the subject
/// counts when there are several; an empty CN or one that is not a string counts as none.
pub fn common_name<'a>(cert: &'a X509Certificate<'_>) -> Option<&'a str> {
    cert.subject()
        .iter_common_name()
        .last()
        .and_then(|attr| attr.as_str().ok())
        .filter(|cn| !cn.is_empty())
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

    /// A self-signed certificate whose subject holds the CN attributes `cns` (at most two) in
    /// order, with DNS SANs `sans`. rcgen keeps one value per attribute type, so the second CN is
    /// written as a custom type with the CN OID 2.5.4.3: the same attribute on the wire.
    fn with_cns(cns: &[&str], sans: &[&str]) -> Vec<u8> {
        let mut params =
            rcgen::CertificateParams::new(sans.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>())
                .unwrap();
        params.distinguished_name = rcgen::DistinguishedName::new();
        assert!(cns.len() <= 2, "at most two CN attributes");
        for (i, cn) in cns.iter().enumerate() {
            let ty = match i {
                0 => rcgen::DnType::CommonName,
                _ => rcgen::DnType::CustomDnType(vec![2, 5, 4, 3]),
            };
            params.distinguished_name.push(ty, *cn);
        }
        let key = rcgen::KeyPair::generate().unwrap();
        params.self_signed(&key).unwrap().der().to_vec()
    }

    fn multi_cn_certificate(cns: &[&str]) -> Vec<u8> {
        with_cns(cns, &[])
    }

    #[test]
    fn the_last_of_several_common_names_counts() {
        let der = multi_cn_certificate(&["first-cn", "hd-1"]);
        let (_, cert) = X509Certificate::from_der(&der).unwrap();
        assert_eq!(cert.subject().iter_common_name().count(), 2);
        assert_eq!(common_name(&cert), Some("hd-1"));
        assert_eq!(certificate_names(&der), ["hd-1"]);
        let der = multi_cn_certificate(&["hd-1", "other"]);
        assert_eq!(
            certificate_names(&der),
            ["other"],
            "the first CN is not a name"
        );
    }

    #[test]
    fn an_empty_or_absent_common_name_is_no_name() {
        assert_eq!(certificate_names(&with_cns(&[""], &["hd-2"])), ["hd-2"]);
        assert_eq!(certificate_names(&with_cns(&[], &["hd-2"])), ["hd-2"]);
        let der = multi_cn_certificate(&["hd-1", ""]);
        assert!(certificate_names(&der).is_empty(), "the last CN is empty");
    }
}
