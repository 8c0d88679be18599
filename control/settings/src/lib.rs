//! Settings: directories of numbered YAML/JSON files (the original Hyper's loader format), merged,
//! interpolated and converted into typed, validated configuration.
//!
//! - [`loader`] turns a colon-separated path list into one merged `serde_json::Value` plus the
//!   [`Provenance`] of every key.
//! - `Raw*` serde structs (`deny_unknown_fields`) convert with `TryFrom` into the typed settings
//!   ([`TlsSettings`], [`DatastoreSettings`], [`SdSettings`], [`HyperSettings`]); every problem
//!   becomes a [`SettingsIssue`] naming file, key and reason, and all issues found are reported at once.

pub mod convert;
pub mod datastore;
pub mod error;
pub mod hyper;
pub mod legacy;
pub mod listeners;
pub mod loader;
pub mod paths;
pub mod proxy_protocol;
pub mod sd;
pub mod secret;
pub mod serving;
pub mod tls;

pub use datastore::DatastoreSettings;
pub use error::{SettingsError, SettingsIssue};
pub use hyper::HyperSettings;
pub use listeners::{HostPort, JsonRpcServerSettings, MetricsSettings, TcpRateLimit};
pub use loader::{Loader, Provenance, load_from_env, load_paths};
pub use sd::SdSettings;
pub use tls::TlsSettings;
