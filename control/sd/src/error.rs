//! Errors of the directory server.

use tandem_datastore::DatastoreError;
use tandem_directory::ledger::AppendError;
use tandem_directory::verify::VerifierSetupError;

/// Why the directory server could not start or could not take a submission.
#[derive(Debug, thiserror::Error)]
pub enum SdError {
    /// The datastore failed (a submission was not acknowledged).
    #[error("datastore: {0}")]
    Datastore(#[from] DatastoreError),
    /// The directory refused the records (hash, signature, chain, staleness, ...).
    #[error("{0}")]
    Append(#[from] AppendError),
    /// The CA files could not be loaded.
    #[error("certificate authority: {0}")]
    Verifier(#[from] VerifierSetupError),
    /// TLS settings could not be turned into a server configuration.
    #[error("tls: {0}")]
    Tls(#[from] tandem_net::tls::TlsError),
    /// The settings do not build what serving them needs (names the file or key).
    #[error(transparent)]
    Prepare(#[from] tandem_net::reload::ReloadError),
    /// A listener's address could not be resolved or bound.
    #[error(transparent)]
    Bind(#[from] tandem_serving::BindError),
    /// Serving failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The error.
        source: std::io::Error,
    },
    /// The submission is larger than the configured bound.
    #[error("too many records in one submission: {got} (at most {max})")]
    TooManyRecords {
        /// Records submitted.
        got: usize,
        /// The bound.
        max: usize,
    },
}

impl SdError {
    /// A stable label for metrics and logs.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Datastore(_) => "datastore",
            Self::Append(e) => e.kind(),
            Self::Verifier(_) => "verifier",
            Self::Tls(_) => "tls",
            Self::Bind(e) => e.kind(),
            Self::Prepare(e) => e.kind(),
            Self::Io { .. } => "io",
            Self::TooManyRecords { .. } => "too_many_records",
        }
    }
}
