//! Errors of the command-line commands.

use std::path::PathBuf;

use crate::certs::CertsError;
use crate::sdclient::SdClientError;
use tandem_directory::signing::SignError;
use tandem_directory::verify::{RecordError, VerifierSetupError};
use tandem_settings::SettingsError;

/// Why a command failed.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// The settings did not load.
    #[error("{0}")]
    Settings(#[from] SettingsError),
    /// The command needs a `signing:` block.
    #[error("the settings have no `signing` block; `hyper sd` signing needs one")]
    NoSigning,
    /// The command needs an `api` directory.
    #[error("the settings' directory is not of type `api`; this command talks to an sd server")]
    NoApiDirectory,
    /// A file could not be read.
    #[error("reading {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// A file is not what the command expects.
    #[error("{path}: {reason}")]
    Input {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// Signing failed.
    #[error("signing: {0}")]
    Sign(#[from] SignError),
    /// Verification failed.
    #[error("verification failed: {0}")]
    Verify(#[from] RecordError),
    /// The CA files could not be loaded.
    #[error("certificate authority: {0}")]
    Verifier(#[from] VerifierSetupError),
    /// A directory call failed.
    #[error("directory: {0}")]
    Client(#[from] SdClientError),
    /// Certificate generation failed.
    #[error("certificates: {0}")]
    Certs(#[from] CertsError),
}
