//! The dev/test PKI (`hyper certs`): an ECDSA P-256 root, an intermediate, and per operator a TLS
//! certificate, a record-signing certificate and their `-alt` twins, plus the directory record file
//! `002_certificates.json` that pins them. Replaces the original's OpenSSL `make_certs.sh` (SPEC §6.1);
//! every key is P-256 (the original used RSA 2048 for TLS).
//!
//! Entry point: [`generate`] with a [`CertsPlan`] (idempotent; `force` regenerates). Tests use
//! `tandem_testkit::pki::TestPki`, built on this generator.

mod check;
mod files;
mod generate;
mod issue;
mod plan;
mod record;

use std::path::PathBuf;

pub use generate::{CertsReport, OperatorFingerprints, generate};
pub use plan::{
    CA_VALIDITY_DAYS, CertKind, CertsPlan, DEV_GROUPS, DEV_OPERATORS, DIRECTORY_FILE_NAME,
    LEAF_VALIDITY_DAYS, MAX_OPERATOR_NAME_LEN, MAX_OPERATORS, OperatorSpec, PkiLayout,
    RENEW_BEFORE_DAYS,
};

/// Why the PKI could not be generated.
#[derive(Debug, thiserror::Error)]
pub enum CertsError {
    /// The plan itself is unusable (bad operator name, duplicates, too many operators).
    #[error("invalid certificate plan: {0}")]
    Plan(String),
    /// Reading or writing a file failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// rcgen refused to build a certificate.
    #[error("cannot generate {what}: {source}")]
    Generate {
        /// Which certificate or key.
        what: String,
        /// rcgen's reason.
        source: rcgen::Error,
    },
    /// A key could not be converted or encoded.
    #[error("key {what}: {reason}")]
    Key {
        /// Which key.
        what: String,
        /// What went wrong.
        reason: String,
    },
    /// The directory records file could not be encoded.
    #[error("{}: {source}", path.display())]
    Json {
        /// The records file.
        path: PathBuf,
        /// serde_json's reason.
        source: serde_json::Error,
    },
}

impl CertsError {
    /// Stable label for logs and metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Plan(_) => "plan",
            Self::Io { .. } => "io",
            Self::Generate { .. } => "generate",
            Self::Key { .. } => "key",
            Self::Json { .. } => "json",
        }
    }

    pub(crate) fn io(path: &std::path::Path, source: std::io::Error) -> Self {
        Self::Io {
            path: path.to_path_buf(),
            source,
        }
    }

    pub(crate) fn generate(what: impl Into<String>, source: rcgen::Error) -> Self {
        Self::Generate {
            what: what.into(),
            source,
        }
    }
}
