//! Record verification (SPEC §3.4, `helpers.VerifyRecord` / `helpers.Verify`): hash, signing certificate, sd-admin
//! group, key pinning, chain to the configured roots (EKU codeSigning required only if present; no DNS-name check),
//! then the ECDSA signature.

use std::collections::HashMap;
use std::path::PathBuf;

use p256::ecdsa::signature::hazmat::PrehashVerifier as _;
use rustls_pki_types::{CertificateDer, ServerName, TrustAnchor, UnixTime};
use serde_json::Value;

use super::cert::{self, CertError, SignerCert};
use super::decimal::decimal_to_be32;
use super::hash::{record_hash, signing_digest, structured_hash};
use super::record::{Section, Signature, SignedChangeRecord, SignedData};

/// DER value of id-kp-codeSigning (1.3.6.1.5.5.7.3.3).
const CODE_SIGNING_OID: &[u8] = &[0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x03, 0x03];
/// The group a record signer must have.
pub const ADMIN_GROUP: &str = "sd-admin";

/// Why a record (or signed data) does not verify.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecordError {
    /// The hash does not match the record.
    #[error("invalid hash value")]
    InvalidHash,
    /// No signature.
    #[error("record is not signed")]
    MissingSignature,
    /// The signing certificate is unusable.
    #[error("bad signing certificate: {0}")]
    BadCertificate(#[from] CertError),
    /// The signer is not in group `sd-admin`.
    #[error("signer {0:?} is not a service directory admin")]
    NotAdmin(String),
    /// The signer's certificate is not the one pinned for its name.
    #[error("signing certificate of {0:?} does not match its pinned fingerprint")]
    PinMismatch(String),
    /// The certificate does not chain to a configured root (or is expired, or has a conflicting EKU).
    #[error("signing certificate not trusted: {0}")]
    UntrustedChain(String),
    /// The certificate is not valid for the expected DNS name.
    #[error("signing certificate is not valid for {0:?}")]
    WrongName(String),
    /// The ECDSA signature does not verify.
    #[error("signature does not verify")]
    BadSignature,
}

impl RecordError {
    /// Stable label for metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::InvalidHash => "invalid_hash",
            Self::MissingSignature => "missing_signature",
            Self::BadCertificate(_) => "bad_certificate",
            Self::NotAdmin(_) => "not_admin",
            Self::PinMismatch(_) => "pin_mismatch",
            Self::UntrustedChain(_) => "untrusted_chain",
            Self::WrongName(_) => "wrong_name",
            Self::BadSignature => "bad_signature",
        }
    }
}

/// Why a verifier cannot be configured.
#[derive(Debug, thiserror::Error)]
pub enum VerifierSetupError {
    /// A certificate file cannot be read.
    #[error("cannot read certificate file {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// A root or intermediate is not a PEM certificate.
    #[error("certificate {index} is not a usable PEM certificate: {reason}")]
    BadCertificate {
        /// Position in the list given.
        index: usize,
        /// Why.
        reason: String,
    },
}

/// The latest `signing` fingerprint pinned per operator by `certificates` records of an accepted prefix.
#[derive(Debug, Clone, Default)]
pub struct SigningPins(HashMap<String, String>);

impl SigningPins {
    /// Pins from a prefix (as `GetRecordFingerprint` would compute for each name).
    pub fn from_records<'a>(records: impl IntoIterator<Item = &'a SignedChangeRecord>) -> Self {
        let mut pins = Self::default();
        for record in records {
            pins.observe(record);
        }
        pins
    }

    /// Updates the pins with one accepted record; returns the previous pin of the record's name if it changed.
    pub fn observe(&mut self, record: &SignedChangeRecord) -> Option<Option<String>> {
        if record.record.section != Section::Certificates {
            return None;
        }
        let Value::Array(items) = &record.record.data else {
            return None;
        };
        let latest = items
            .iter()
            .filter(|item| item.get("key_usage").and_then(Value::as_str) == Some("signing"))
            .filter_map(|item| item.get("fingerprint").and_then(Value::as_str))
            .next_back()?;
        Some(self.0.insert(record.record.name.clone(), latest.to_owned()))
    }

    /// Restores a previous pin (undo of [`SigningPins::observe`]).
    pub fn restore(&mut self, name: &str, previous: Option<String>) {
        match previous {
            Some(fp) => self.0.insert(name.to_owned(), fp),
            None => self.0.remove(name),
        };
    }

    /// The pinned fingerprint for `name`; an empty pinned value counts as no pin (as in the original).
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .get(name)
            .map(String::as_str)
            .filter(|fp| !fp.is_empty())
    }
}

/// Verifies records against the configured roots and intermediates.
#[derive(Debug, Clone)]
pub struct Verifier {
    anchors: Vec<TrustAnchor<'static>>,
    intermediates: Vec<CertificateDer<'static>>,
    /// Fixed verification time (tests); `None` = the current time, as the original.
    time: Option<UnixTime>,
}

fn first_der(index: usize, pem: &[u8]) -> Result<CertificateDer<'static>, VerifierSetupError> {
    cert::first_pem_certificate(pem)
        .map(CertificateDer::from)
        .map_err(|e| VerifierSetupError::BadCertificate {
            index,
            reason: e.to_string(),
        })
}

impl Verifier {
    /// From PEM texts; like the original, only the first PEM block of each is used.
    pub fn from_pem(
        roots: &[Vec<u8>],
        intermediates: &[Vec<u8>],
    ) -> Result<Self, VerifierSetupError> {
        let mut anchors = Vec::with_capacity(roots.len());
        for (index, pem) in roots.iter().enumerate() {
            let der = first_der(index, pem)?;
            let anchor = webpki::anchor_from_trusted_cert(&der).map_err(|e| {
                VerifierSetupError::BadCertificate {
                    index,
                    reason: e.to_string(),
                }
            })?;
            anchors.push(anchor.to_owned());
        }
        let intermediates = intermediates
            .iter()
            .enumerate()
            .map(|(i, pem)| first_der(i, pem))
            .collect::<Result<_, _>>()?;
        Ok(Self {
            anchors,
            intermediates,
            time: None,
        })
    }

    /// From files (`ca_certificate_files`, `ca_intermediate_certificate_files`).
    pub fn from_files(
        roots: &[PathBuf],
        intermediates: &[PathBuf],
    ) -> Result<Self, VerifierSetupError> {
        let read = |paths: &[PathBuf]| {
            paths
                .iter()
                .map(|path| {
                    std::fs::read(path).map_err(|source| VerifierSetupError::Io {
                        path: path.clone(),
                        source,
                    })
                })
                .collect::<Result<Vec<_>, _>>()
        };
        Self::from_pem(&read(roots)?, &read(intermediates)?)
    }

    /// Verifies at a fixed time instead of the current time.
    pub fn at_time(mut self, time: UnixTime) -> Self {
        self.time = Some(time);
        self
    }

    /// Steps 1–5 of §3.4 for a record extending a prefix whose signing pins are `pins`. Returns the signer's name.
    pub fn verify_record(
        &self,
        record: &SignedChangeRecord,
        pins: &SigningPins,
    ) -> Result<String, RecordError> {
        if record_hash(&record.record) != record.hash {
            return Err(RecordError::InvalidHash);
        }
        let signature = record
            .signature
            .as_ref()
            .ok_or(RecordError::MissingSignature)?;
        let signer =
            cert::parse_signing_cert(&cert::first_pem_certificate(signature.c.as_bytes())?)?;
        if !signer.groups.iter().any(|g| g == ADMIN_GROUP) {
            return Err(RecordError::NotAdmin(signer.name));
        }
        if let Some(pinned) = pins.get(&signer.name)
            && cert::fingerprint(&signer.der) != pinned
        {
            return Err(RecordError::PinMismatch(signer.name));
        }
        self.check_chain(&signer.der, None)?;
        check_signature(&signer, signature, &signing_digest(record))?;
        Ok(signer.name)
    }

    /// [`Verifier::verify_record`] against a prefix of accepted records (computes the pins; O(prefix)).
    pub fn verify_record_in(
        &self,
        record: &SignedChangeRecord,
        prefix: &[SignedChangeRecord],
    ) -> Result<String, RecordError> {
        self.verify_record(record, &SigningPins::from_records(prefix))
    }

    /// `helpers.Verify` of `hyper sd sign` output: certificate checks, chain (with a DNS-name check when `dns_name`
    /// is given, as `hyper sd verify <file> <name>`), signature over `StructuredHash(data)`. No admin check.
    pub fn verify_signed_data(
        &self,
        signed: &SignedData,
        dns_name: Option<&str>,
    ) -> Result<SignerCert, RecordError> {
        let signer =
            cert::parse_signing_cert(&cert::first_pem_certificate(signed.signature.c.as_bytes())?)?;
        self.check_chain(&signer.der, dns_name)?;
        check_signature(&signer, &signed.signature, &structured_hash(&signed.data))?;
        Ok(signer)
    }

    /// The self-check of `hyper sd submit-records`: a signing certificate (leaf DER) chains to the roots and is valid
    /// for `dns_name` (the operator's own name).
    pub fn check_signing_certificate(
        &self,
        leaf_der: &[u8],
        dns_name: &str,
    ) -> Result<(), RecordError> {
        cert::parse_signing_cert(leaf_der)?;
        self.check_chain(leaf_der, Some(dns_name))
    }

    fn check_chain(&self, leaf_der: &[u8], dns_name: Option<&str>) -> Result<(), RecordError> {
        let untrusted = |e: webpki::Error| RecordError::UntrustedChain(format!("{e:?}"));
        let der = CertificateDer::from(leaf_der);
        let leaf = webpki::EndEntityCert::try_from(&der).map_err(untrusted)?;
        let now = self.time.unwrap_or_else(UnixTime::now);
        leaf.verify_for_usage(
            webpki::ALL_VERIFICATION_ALGS,
            &self.anchors,
            &self.intermediates,
            now,
            webpki::KeyUsage::required_if_present(CODE_SIGNING_OID),
            None,
            None,
        )
        .map_err(untrusted)?;
        if let Some(name) = dns_name {
            let server_name =
                ServerName::try_from(name).map_err(|_| RecordError::WrongName(name.to_owned()))?;
            leaf.verify_is_valid_for_subject_name(&server_name)
                .map_err(|_| RecordError::WrongName(name.to_owned()))?;
        }
        Ok(())
    }
}

fn check_signature(
    signer: &SignerCert,
    signature: &Signature,
    digest: &[u8; 32],
) -> Result<(), RecordError> {
    let r = decimal_to_be32(&signature.r).ok_or(RecordError::BadSignature)?;
    let s = decimal_to_be32(&signature.s).ok_or(RecordError::BadSignature)?;
    let sig = p256::ecdsa::Signature::from_scalars(r, s).map_err(|_| RecordError::BadSignature)?;
    signer
        .key
        .verify_prehash(digest, &sig)
        .map_err(|_| RecordError::BadSignature)
}

#[cfg(test)]
#[path = "verify_tests.rs"]
mod tests;
