//! PEM loading of certificate chains, private keys and trust anchors, with errors naming the file.

use std::io::Read;
use std::path::Path;

use rustls::RootCertStore;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use super::TlsError;

/// Largest PEM file read, in bytes (1 MiB): a chain or key is a few KiB; the bound keeps a
/// mistaken path (a log file, a device) from being slurped into memory.
pub const MAX_PEM_BYTES: u64 = 1024 * 1024;

fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    let read_err = |source| TlsError::Read {
        path: path.to_path_buf(),
        source,
    };
    let file = std::fs::File::open(path).map_err(read_err)?;
    let mut bytes = Vec::new();
    file.take(MAX_PEM_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(read_err)?;
    if bytes.len() as u64 > MAX_PEM_BYTES {
        return Err(pem_err(path, format!("larger than {MAX_PEM_BYTES} bytes")));
    }
    Ok(bytes)
}

fn pem_err(path: &Path, reason: impl Into<String>) -> TlsError {
    TlsError::Pem {
        path: path.to_path_buf(),
        reason: reason.into(),
    }
}

/// Every `CERTIFICATE` block of `path`, in file order (leaf first for a chain). Other blocks are
/// skipped; a file without any certificate is an error.
pub fn load_certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let bytes = read(path)?;
    let certs = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| pem_err(path, format!("malformed PEM: {e}")))?;
    if certs.is_empty() {
        return Err(pem_err(path, "no CERTIFICATE block"));
    }
    Ok(certs)
}

/// The first private key of `path`: PKCS#8 (`PRIVATE KEY`), SEC1 (`EC PRIVATE KEY`) or
/// PKCS#1 (`RSA PRIVATE KEY`).
pub fn load_private_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    let bytes = read(path)?;
    PrivateKeyDer::from_pem_slice(&bytes).map_err(|e| match e {
        rustls_pki_types::pem::Error::NoItemsFound => pem_err(
            path,
            "no PRIVATE KEY, EC PRIVATE KEY or RSA PRIVATE KEY block",
        ),
        other => pem_err(path, format!("malformed PEM: {other}")),
    })
}

/// A root store holding every certificate of every file (at least one file and one certificate).
pub fn load_roots(paths: &[impl AsRef<Path>]) -> Result<RootCertStore, TlsError> {
    let mut roots = RootCertStore::empty();
    for path in paths {
        let path = path.as_ref();
        for cert in load_certificates(path)? {
            roots.add(cert).map_err(|source| TlsError::TrustAnchor {
                path: path.to_path_buf(),
                source,
            })?;
        }
    }
    if roots.is_empty() {
        return Err(TlsError::Settings(
            "ca_certificate_files: at least one CA certificate is required".into(),
        ));
    }
    Ok(roots)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_name_the_file_and_the_reason() {
        let dir = tempfile::tempdir().unwrap();
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "hello\n").unwrap();
        let err = load_certificates(&empty).unwrap_err().to_string();
        assert!(
            err.contains("empty.pem") && err.contains("no CERTIFICATE"),
            "{err}"
        );
        let err = load_private_key(&empty).unwrap_err().to_string();
        assert!(
            err.contains("empty.pem") && err.contains("PRIVATE KEY"),
            "{err}"
        );
        let missing = dir.path().join("missing.pem");
        let err = load_certificates(&missing).unwrap_err();
        assert_eq!(err.kind(), "read");
        assert!(err.to_string().contains("missing.pem"));
        let none: [&Path; 0] = [];
        assert_eq!(load_roots(&none).unwrap_err().kind(), "settings");
    }

    #[test]
    fn sec1_pkcs8_and_pkcs1_keys_are_accepted() {
        let dir = tempfile::tempdir().unwrap();
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let pkcs8 = dir.path().join("pkcs8.key");
        std::fs::write(&pkcs8, key.serialize_pem()).unwrap();
        assert!(matches!(
            load_private_key(&pkcs8).unwrap(),
            PrivateKeyDer::Pkcs8(_)
        ));
        let sec1 = dir.path().join("sec1.key");
        let sec1_pem = p256::SecretKey::from_pkcs8_der(key.serialized_der())
            .unwrap()
            .to_sec1_pem(p256::pkcs8::LineEnding::LF)
            .unwrap();
        std::fs::write(&sec1, sec1_pem.as_bytes()).unwrap();
        assert!(matches!(
            load_private_key(&sec1).unwrap(),
            PrivateKeyDer::Sec1(_)
        ));
        // The label decides the variant; an RSA key body is only checked when rustls uses it.
        let pkcs1 = dir.path().join("rsa.key");
        let body = "-----BEGIN RSA PRIVATE KEY-----\nMAMCAQA=\n-----END RSA PRIVATE KEY-----\n";
        std::fs::write(&pkcs1, body).unwrap();
        assert!(matches!(
            load_private_key(&pkcs1).unwrap(),
            PrivateKeyDer::Pkcs1(_)
        ));
    }

    use p256::pkcs8::DecodePrivateKey as _;
}
