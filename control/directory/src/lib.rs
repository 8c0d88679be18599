//! The signed service directory (SPEC §3), sans-IO: change records and their byte-exact structured hash, ECDSA P-256
//! signing and verification against the configured CA, chain selection and the entries it yields, permissions and
//! the mTLS identity check (§6.4). Storage and the JSON-RPC server live in `datastore` and `sd`.

pub mod cert;
pub mod decimal;
pub mod endpoints;
pub mod entry;
pub mod hash;
pub mod identity;
pub mod ledger;
pub mod permissions;
pub mod record;
pub mod schema;
mod select;
pub mod signing;
pub mod source;
#[cfg(test)]
mod test_pki;
pub mod time;
pub mod verify;
pub mod x509;

pub use cert::{CertError, fingerprint};
pub use entry::{
    DirectoryEntry, IntegrateError, OperatorCertificate, OperatorChannel, OperatorPreferences,
    OperatorProperties, OperatorService, OperatorSettings, Permission, ServiceMethod,
    ServiceParameter, ServiceValidator, integrate,
};
pub use hash::{record_hash, signing_digest, structured_hash};
pub use identity::names_for_certificate;
pub use ledger::{AppendError, ChainError, CheckedAppend, Ledger, MAX_STORED_RECORDS, RemoteError};
pub use permissions::{DirectoryQuery, can_call, filter, peer_groups, peers, service_for};
pub use record::{
    ChangeRecord, RecordFormatError, Section, Signature, SignedChangeRecord, SignedData,
};
pub use schema::SchemaError;
pub use signing::{SignError, Signer};
pub use time::{RecordTime, TimeError};
pub use verify::{RecordError, SigningPins, Verifier, VerifierSetupError};

/// Largest accepted JSON encoding of one record, in bytes. Real records are a few KiB (a PEM certificate plus one
/// section's list); 64 KiB bounds memory per record and the cost of hashing one.
pub const MAX_RECORD_BYTES: usize = 64 * 1024;

/// Every directory failure, for callers that want one type at the module boundary.
#[derive(Debug, thiserror::Error)]
pub enum DirectoryError {
    /// A record's JSON is malformed.
    #[error(transparent)]
    Format(#[from] RecordFormatError),
    /// A record does not verify.
    #[error(transparent)]
    Record(#[from] RecordError),
    /// An append was refused.
    #[error(transparent)]
    Append(#[from] AppendError),
    /// A directory client refused the server's records.
    #[error(transparent)]
    Remote(#[from] RemoteError),
    /// Signing failed.
    #[error(transparent)]
    Sign(#[from] SignError),
    /// The verifier could not be configured.
    #[error(transparent)]
    Setup(#[from] VerifierSetupError),
    /// A peer certificate is malformed.
    #[error(transparent)]
    Identity(#[from] identity::IdentityError),
}

impl DirectoryError {
    /// Stable label for metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Format(_) => "format",
            Self::Record(e) => e.kind(),
            Self::Append(e) => e.kind(),
            Self::Remote(e) => e.kind(),
            Self::Sign(_) => "sign",
            Self::Setup(_) => "setup",
            Self::Identity(_) => "identity",
        }
    }
}
