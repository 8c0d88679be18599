//! Signing (SPEC §3.3, `helpers.Sign`): ECDSA P-256 over a 32-byte structured-hash digest used as the prehash
//! (Go `ecdsa.Sign(rand, key, digest)`), `r`/`s` as decimal strings, `c` the leaf certificate PEM.

use p256::ecdsa::signature::hazmat::PrehashSigner as _;
use p256::pkcs8::DecodePrivateKey as _;
use serde_json::Value;

use super::cert::{self, CertError};
use super::decimal::be_to_decimal;
use super::hash::{record_hash, signing_digest, structured_hash};
use super::record::{ChangeRecord, Signature, SignedChangeRecord, SignedData};

/// Why a signer cannot be built or cannot sign.
#[derive(Debug, thiserror::Error)]
pub enum SignError {
    /// The key PEM is neither `EC PRIVATE KEY` (SEC1) nor `PRIVATE KEY` (PKCS#8) for P-256.
    #[error("not a P-256 private key in SEC1 (EC PRIVATE KEY) or PKCS#8 PEM")]
    BadKey,
    /// The certificate is not a usable signing certificate.
    #[error(transparent)]
    Cert(#[from] CertError),
    /// The certificate's public key is not the private key's.
    #[error("the signing certificate does not belong to the signing key")]
    KeyMismatch,
    /// The ECDSA primitive failed.
    #[error("ECDSA signing failed")]
    Ecdsa,
}

/// A signing key with its leaf certificate.
pub struct Signer {
    key: p256::ecdsa::SigningKey,
    cert_pem: String,
    cert: cert::SignerCert,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Signer")
            .field("name", &self.cert.name)
            .finish_non_exhaustive()
    }
}

impl Signer {
    /// From the key PEM (SEC1 `EC PRIVATE KEY` as `make certs` writes, or PKCS#8) and the certificate PEM (the first
    /// block is the leaf; a chain after it is ignored). The certificate must pass the signing-certificate checks.
    pub fn from_pem(key_pem: &str, cert_pem: &str) -> Result<Self, SignError> {
        let secret = p256::SecretKey::from_sec1_pem(key_pem)
            .or_else(|_| p256::SecretKey::from_pkcs8_pem(key_pem))
            .map_err(|_| SignError::BadKey)?;
        let der = cert::first_pem_certificate(cert_pem.as_bytes())?;
        let cert = cert::parse_signing_cert(&der)?;
        let key = p256::ecdsa::SigningKey::from(secret);
        if key.verifying_key() != &cert.key {
            return Err(SignError::KeyMismatch);
        }
        Ok(Self {
            key,
            cert_pem: cert::pem_encode_certificate(&der),
            cert,
        })
    }

    /// The operator name in the certificate (`iris-name://`).
    pub fn name(&self) -> &str {
        &self.cert.name
    }

    /// The leaf DER.
    pub fn certificate_der(&self) -> &[u8] {
        &self.cert.der
    }

    /// Signs a digest: `{r, s, c}`.
    pub fn sign_digest(&self, digest: &[u8; 32]) -> Result<Signature, SignError> {
        let sig: p256::ecdsa::Signature = self
            .key
            .sign_prehash(digest)
            .map_err(|_| SignError::Ecdsa)?;
        let (r, s) = sig.split_bytes();
        Ok(Signature {
            r: be_to_decimal(&r),
            s: be_to_decimal(&s),
            c: self.cert_pem.clone(),
        })
    }

    /// Makes a signed record with the given parent: sets `hash` from the (normalised) record, then signs.
    pub fn sign_record(
        &self,
        parent_hash: &str,
        record: ChangeRecord,
    ) -> Result<SignedChangeRecord, SignError> {
        let mut signed = SignedChangeRecord {
            parent_hash: parent_hash.to_owned(),
            hash: record_hash(&record),
            signature: None,
            record,
        };
        signed.signature = Some(self.sign_digest(&signing_digest(&signed))?);
        Ok(signed)
    }

    /// Signs a batch as `hyper sd submit-records` does: the first record's parent is `parent_hash` (the tip, or ""
    /// for `--reset`), each following record's parent is the previous record.
    pub fn sign_chain(
        &self,
        parent_hash: &str,
        records: Vec<ChangeRecord>,
    ) -> Result<Vec<SignedChangeRecord>, SignError> {
        let mut parent = parent_hash.to_owned();
        let mut out = Vec::with_capacity(records.len());
        for record in records {
            let signed = self.sign_record(&parent, record)?;
            parent.clone_from(&signed.hash);
            out.push(signed);
        }
        Ok(out)
    }

    /// `hyper sd sign`: signs `StructuredHash(data)` of any JSON value (not normalised).
    pub fn sign_data(&self, data: Value) -> Result<SignedData, SignError> {
        let signature = self.sign_digest(&structured_hash(&data))?;
        Ok(SignedData { signature, data })
    }
}
