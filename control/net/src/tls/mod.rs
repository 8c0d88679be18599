//! rustls configuration from [`TlsSettings`](tandem_settings::tls::TlsSettings) (SPEC §6.3) and the
//! TLS peer identity helpers used by the mTLS name/fingerprint check (SPEC §6.4).
//!
//! Every config is built with the *ring* provider passed explicitly
//! ([`provider`]); nothing relies on a process-wide default provider.

mod accept;
mod config;
mod insecure;
mod pem;
mod swap;

use std::path::PathBuf;

pub use accept::accept;
pub use config::{client_config, provider, server_config, server_name};
pub use pem::{MAX_PEM_BYTES, load_certificates, load_private_key, load_roots};
pub use swap::ServerTls;
pub use tandem_directory::x509::{
    certificate_names, common_name, fingerprint, names_of, peer_leaf,
};

/// Why a TLS configuration could not be built. Every variant names the file or setting at fault.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A PEM file could not be read.
    #[error("{}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A PEM file is malformed or holds nothing usable.
    #[error("{}: {reason}", path.display())]
    Pem {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// A CA file holds a certificate rustls cannot use as a trust anchor.
    #[error("{}: unusable CA certificate: {source}", path.display())]
    TrustAnchor {
        /// The CA file.
        path: PathBuf,
        /// rustls' reason.
        source: rustls::Error,
    },
    /// The settings are inconsistent (e.g. a key without a certificate, a server without a certificate).
    #[error("TLS settings: {0}")]
    Settings(String),
    /// rustls rejected the certificate/key pair or the configuration.
    #[error("{context}: {source}")]
    Rustls {
        /// What was being configured.
        context: String,
        /// rustls' reason.
        source: rustls::Error,
    },
    /// The client certificate verifier could not be built (e.g. no usable CA certificates).
    #[error("client certificate verifier: {0}")]
    Verifier(#[from] rustls::server::VerifierBuilderError),
    /// `server_name` (or the dialled host) is not a valid DNS name or IP address.
    #[error("invalid TLS server name {0:?}")]
    ServerName(String),
}

impl TlsError {
    /// Stable label for logs and metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Read { .. } => "read",
            Self::Pem { .. } => "pem",
            Self::TrustAnchor { .. } => "trust_anchor",
            Self::Settings(_) => "settings",
            Self::Rustls { .. } => "rustls",
            Self::Verifier(_) => "verifier",
            Self::ServerName(_) => "server_name",
        }
    }
}
