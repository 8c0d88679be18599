//! The operator's directory client (SPEC §3.7): the `api` type (the signed `sd`, cached and
//! refreshed incrementally in the background, each record verified once) and the `json` type
//! (unsigned local records files). Implements the broker's [`DirectorySource`].

mod api;
mod json;

use std::future::Future;

use tokio::time::Instant;

pub use json::{MAX_JSON_FILE_BYTES, MAX_JSON_FILES};

use crate::broker::types::{BoxFuture, DeliveryError, DirectorySource, Entries, SourceError};
use crate::sdclient::{SdClient, SdClientError};
use tandem_directory::entry::DirectoryEntry;
use tandem_directory::verify::{Verifier, VerifierSetupError};
use tandem_settings::HyperSettings;
use tandem_settings::hyper::{
    ApiDirectorySettings, DirectorySettings, JsonDirectorySettings, Timeouts,
};

/// Why the directory client could not be built.
#[derive(Debug, thiserror::Error)]
pub enum DirClientError {
    /// The SD client (endpoint, TLS) could not be set up.
    #[error("directory client: {0}")]
    Sd(#[from] SdClientError),
    /// The record verifier (CA files) could not be set up.
    #[error("directory verifier: {0}")]
    Verifier(#[from] VerifierSetupError),
}

impl DirClientError {
    /// A stable label for metrics and logs.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Sd(_) => "sd_client",
            Self::Verifier(_) => "verifier",
        }
    }
}

/// The state of an `api` directory's cache (for status pages and tests).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheStatus {
    /// Tip hash of the local chain.
    pub tip: Option<String>,
    /// Records in the local chain.
    pub chain_len: usize,
    /// Records verified since start; each served record is verified exactly once.
    pub verified: u64,
    /// Age of the cache (time since the last successful refresh), if it was ever filled.
    pub age: Option<std::time::Duration>,
    /// Why the last refresh failed, if it did.
    pub error: Option<String>,
}

// One value per process, never moved in a hot path.
#[allow(clippy::large_enum_variant)]
enum Backend {
    Api(api::ApiDirectory),
    Json(json::JsonDirectory),
}

/// The directory as one operator sees it.
pub struct DirectoryClient {
    name: String,
    backend: Backend,
}

impl std::fmt::Debug for DirectoryClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = match self.backend {
            Backend::Api(_) => "api",
            Backend::Json(_) => "json",
        };
        f.debug_struct("DirectoryClient")
            .field("name", &self.name)
            .field("type", &kind)
            .finish()
    }
}

impl DirectoryClient {
    /// The client the settings describe (`directory.type`), for operator `settings.name`.
    pub fn from_settings(settings: &HyperSettings) -> Result<Self, DirClientError> {
        match &settings.directory {
            DirectorySettings::Api(api) => Self::api(&settings.name, api, &settings.timeouts),
            DirectorySettings::Json(json) => Ok(Self::json(&settings.name, json)),
        }
    }

    /// An `api` client: SD calls end within `timeouts.call`; callers facing a stale cache wait at
    /// most `timeouts.connect`. Nothing is fetched until [`DirectoryClient::run_refresh`] runs.
    pub fn api(
        name: &str,
        settings: &ApiDirectorySettings,
        timeouts: &Timeouts,
    ) -> Result<Self, DirClientError> {
        let client = SdClient::from_settings(settings, timeouts.call)?;
        let verifier = Verifier::from_files(
            &settings.ca_certificate_files,
            &settings.ca_intermediate_certificate_files,
        )?;
        let endpoint = settings.endpoints.first().cloned().unwrap_or_default();
        let api = api::ApiDirectory::new(
            endpoint,
            client,
            verifier,
            settings.cache_entries_for,
            timeouts.connect,
        );
        Ok(Self {
            name: name.to_owned(),
            backend: Backend::Api(api),
        })
    }

    /// A `json` client (files are read on first use and whenever they change).
    pub fn json(name: &str, settings: &JsonDirectorySettings) -> Self {
        Self {
            name: name.to_owned(),
            backend: Backend::Json(json::JsonDirectory::new(settings.path.clone())),
        }
    }

    /// The operator this client serves.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Every entry by name.
    pub async fn entries(&self) -> Result<Entries, SourceError> {
        match &self.backend {
            Backend::Api(api) => api.entries().await,
            Backend::Json(json) => json.entries(),
        }
    }

    /// The entry of `name` (`EntryFor`).
    pub async fn entry(&self, name: &str) -> Result<DirectoryEntry, DeliveryError> {
        self.entries()
            .await?
            .get(name)
            .cloned()
            .ok_or_else(|| DeliveryError::UnknownOperator(name.to_owned()))
    }

    /// This operator's own entry (`OwnEntry`).
    pub async fn own_entry(&self) -> Result<DirectoryEntry, DeliveryError> {
        self.entry(&self.name).await
    }

    /// The background refresh of an `api` directory: fetches at once, then every
    /// `cache_entries_for` and whenever a caller finds the cache too old, until `shutdown`
    /// resolves. For a `json` directory it just waits for `shutdown`.
    pub async fn run_refresh(&self, shutdown: impl Future<Output = ()>) {
        match &self.backend {
            Backend::Api(api) => api.run(shutdown).await,
            Backend::Json(_) => shutdown.await,
        }
    }

    /// The cache state of an `api` directory (`None` for `json`).
    pub fn cache_status(&self) -> Option<CacheStatus> {
        let Backend::Api(api) = &self.backend else {
            return None;
        };
        let s = api.snapshot();
        Some(CacheStatus {
            tip: s.tip,
            chain_len: s.chain_len,
            verified: s.verified,
            age: s.updated.map(|t| Instant::now().duration_since(t)),
            error: s.error,
        })
    }
}

impl DirectorySource for DirectoryClient {
    fn entries(&self) -> BoxFuture<'_, Result<Entries, SourceError>> {
        Box::pin(DirectoryClient::entries(self))
    }
}
