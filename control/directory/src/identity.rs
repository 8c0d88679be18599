//! mTLS identity → operator names (SPEC §6.4), and the one pinning rule every door uses:
//!
//! - [`names_for_certificate`]: the peer leaf's names (CN by [`crate::x509::common_name`], then DNS
//!   SANs) whose directory entry pins the leaf's fingerprint with key_usage `encryption` (gRPC).
//! - [`allowed_name`]: a certificate name on an allow-list (an admin, our own Hyper node, a local
//!   client of a gateway), held by a leaf the directory pins for that name *where the directory
//!   pins any `encryption` certificate for it*; a name without an entry, or whose entry pins no
//!   `encryption` certificate, is vouched for by the CA alone.

use std::collections::BTreeMap;

use x509_parser::prelude::{FromDer, X509Certificate};

use super::entry::DirectoryEntry;
use crate::x509::names_of;

pub use super::cert::fingerprint;

/// The key usage of the pinned TLS certificates.
pub const ENCRYPTION: &str = "encryption";

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
    cert.subject_alternative_name()
        .map_err(|e| IdentityError(e.to_string()))?;
    let fp = fingerprint(leaf_der);
    Ok(names_of(&cert)
        .into_iter()
        .filter(|name| entries.get(name).is_some_and(|e| pins(e, &fp)))
        .collect())
}

/// Whether `entry` pins the leaf with fingerprint `fp` for `encryption`.
fn pins(entry: &DirectoryEntry, fp: &str) -> bool {
    entry
        .certificates
        .iter()
        .any(|c| c.key_usage == ENCRYPTION && c.fingerprint == fp)
}

/// Whether `entry` pins any `encryption` certificate.
fn pins_any(entry: &DirectoryEntry) -> bool {
    entry.certificates.iter().any(|c| c.key_usage == ENCRYPTION)
}

/// Why a certificate does not stand for an allowed name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameRefusal {
    /// None of the certificate's names is allowed.
    #[error("certificate names {names:?} are not allowed")]
    NotListed {
        /// The certificate's names (CN, then DNS SANs), for the operator reading the log.
        names: Vec<String>,
    },
    /// An allowed name, but the directory pins other certificates for it.
    #[error("the certificate for {name:?} is not the one the directory pins")]
    NotPinned {
        /// The allowed name.
        name: String,
    },
}

impl NameRefusal {
    /// Stable label for logs and metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::NotListed { .. } => "not_listed",
            Self::NotPinned { .. } => "not_pinned",
        }
    }
}

/// The first name of `leaf_der` (CN, then DNS SANs) for which `allowed` holds and which passes the
/// pinning rule (module docs) against `entries`.
pub fn allowed_name(
    leaf_der: &[u8],
    allowed: impl Fn(&str) -> bool,
    entries: &BTreeMap<String, DirectoryEntry>,
) -> Result<String, NameRefusal> {
    let names = match X509Certificate::from_der(leaf_der) {
        Ok((_, cert)) => names_of(&cert),
        Err(_) => Vec::new(),
    };
    let fp = fingerprint(leaf_der);
    let mut unpinned = None;
    for name in names.iter().filter(|n| allowed(n)) {
        match entries.get(name) {
            Some(entry) if pins_any(entry) && !pins(entry, &fp) => {
                unpinned.get_or_insert_with(|| name.clone());
            }
            _ => return Ok(name.clone()),
        }
    }
    Err(match unpinned {
        Some(name) => NameRefusal::NotPinned { name },
        None => NameRefusal::NotListed { names },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::entry::OperatorCertificate;
    use crate::test_pki::TestPki;

    #[test]
    fn names_need_a_pinned_encryption_fingerprint() {
        let pki = TestPki::temporary();
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

    fn pinned(name: &str, fingerprint: String) -> BTreeMap<String, DirectoryEntry> {
        let mut entry = DirectoryEntry::new(name);
        entry.certificates.push(OperatorCertificate {
            fingerprint,
            key_usage: ENCRYPTION.into(),
        });
        BTreeMap::from([(name.to_owned(), entry)])
    }

    #[test]
    fn an_allowed_name_needs_the_pinned_leaf_where_the_directory_pins_one() {
        let pki = TestPki::temporary();
        let leaf = pki.signing("ops-1", "");
        let other = pki.signing("ops-1", "");
        let only = |n: &str| n == "ops-1";
        // No entry, or an entry pinning nothing for encryption: the CA-verified name decides.
        assert_eq!(
            allowed_name(&leaf.cert_der, only, &BTreeMap::new()),
            Ok("ops-1".into())
        );
        let mut unpinned = pinned("ops-1", fingerprint(&leaf.cert_der));
        unpinned.get_mut("ops-1").unwrap().certificates[0].key_usage = "signing".into();
        assert_eq!(
            allowed_name(&leaf.cert_der, only, &unpinned),
            Ok("ops-1".into())
        );
        // Pinned: only that leaf.
        let entries = pinned("ops-1", fingerprint(&leaf.cert_der));
        assert_eq!(
            allowed_name(&leaf.cert_der, only, &entries),
            Ok("ops-1".into())
        );
        let refused = allowed_name(&other.cert_der, only, &entries).unwrap_err();
        assert_eq!(
            refused,
            NameRefusal::NotPinned {
                name: "ops-1".into()
            }
        );
        assert_eq!(refused.kind(), "not_pinned");
        // Not on the list at all.
        let refused = allowed_name(&leaf.cert_der, |n| n == "hd-9", &entries).unwrap_err();
        assert_eq!(refused.kind(), "not_listed");
        assert!(
            matches!(refused, NameRefusal::NotListed { names } if names.contains(&"ops-1".to_owned()))
        );
        assert_eq!(
            allowed_name(b"junk", only, &entries).unwrap_err().kind(),
            "not_listed"
        );
    }
}
