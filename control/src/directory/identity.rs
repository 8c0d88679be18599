//! mTLS identity → operator names (SPEC §6.4): the peer leaf's CN and DNS SANs whose directory entry pins the leaf's
//! fingerprint with key_usage `encryption`.

use std::collections::BTreeMap;

use x509_parser::extensions::GeneralName;
use x509_parser::prelude::{FromDer, X509Certificate};

use super::entry::DirectoryEntry;

pub use super::cert::fingerprint;

/// The leaf does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed peer certificate: {0}")]
pub struct IdentityError(String);

/// Candidate names (CN first, then DNS SANs, duplicates kept) whose entry pins this leaf for `encryption`, in order.
/// Empty means "no name matched" (the handshake must be refused).
pub fn names_for_certificate(
    leaf_der: &[u8],
    entries: &BTreeMap<String, DirectoryEntry>,
) -> Result<Vec<String>, IdentityError> {
    let (_, cert) =
        X509Certificate::from_der(leaf_der).map_err(|e| IdentityError(e.to_string()))?;
    let mut candidates: Vec<String> = cert
        .subject()
        .iter_common_name()
        .filter_map(|cn| cn.as_str().ok())
        .take(1)
        .map(str::to_owned)
        .collect();
    let san = cert
        .subject_alternative_name()
        .map_err(|e| IdentityError(e.to_string()))?;
    for name in san.iter().flat_map(|ext| ext.value.general_names.iter()) {
        if let GeneralName::DNSName(dns) = name {
            candidates.push((*dns).to_owned());
        }
    }
    let fp = fingerprint(leaf_der);
    Ok(candidates
        .into_iter()
        .filter(|name| {
            entries.get(name).is_some_and(|e| {
                e.certificates
                    .iter()
                    .any(|c| c.key_usage == "encryption" && c.fingerprint == fp)
            })
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::directory::entry::OperatorCertificate;
    use crate::directory::testpki::TestPki;

    #[test]
    fn names_need_a_pinned_encryption_fingerprint() {
        let pki = TestPki::new();
        let leaf = pki.signing("hd-1", "");
        let mut entries = BTreeMap::new();
        let mut entry = DirectoryEntry::new("hd-1");
        entry.certificates.push(OperatorCertificate {
            fingerprint: fingerprint(&leaf.cert_der),
            key_usage: "signing".into(),
        });
        entries.insert("hd-1".to_string(), entry.clone());
        assert!(
            names_for_certificate(&leaf.cert_der, &entries)
                .unwrap()
                .is_empty(),
            "signing pin does not count"
        );
        entry.certificates.push(OperatorCertificate {
            fingerprint: fingerprint(&leaf.cert_der),
            key_usage: "encryption".into(),
        });
        entries.insert("hd-1".to_string(), entry);
        // CN and DNS SAN are both hd-1: duplicates kept, as in the original.
        assert_eq!(
            names_for_certificate(&leaf.cert_der, &entries).unwrap(),
            vec!["hd-1", "hd-1"]
        );
        let other = pki.signing("hd-1", "");
        assert!(
            names_for_certificate(&other.cert_der, &entries)
                .unwrap()
                .is_empty(),
            "another key is not pinned"
        );
        assert!(names_for_certificate(b"junk", &entries).is_err());
        assert_eq!(fingerprint(b"").len(), 64);
    }
}
