//! The proxy's `ControlService` (`proto/control.proto`, issue 6 item 5) and `proxy ctl`, its
//! command line.
//!
//! - [`ControlServer`] serves `CreatePair`, `ListPairs`, `Stats`, `Drain` and `WatchEvents` over
//!   the [`EngineHandle`](tandem_engine::EngineHandle) with tonic over rustls mTLS. Callers must map
//!   to an admin through the [`AdminPolicy`] (settings allow-list and/or a directory group,
//!   default [`DEFAULT_ADMIN_GROUP`]); others get `PermissionDenied`, counted.
//! - [`EventHub`] owns the engine's pair-event receiver on its own thread, keeps the
//!   [`PairBook`] that `ListPairs` reads, and fans events out to watchers (bounded; laggards get
//!   a gap marker).
//! - [`ControlClient`] is the typed client; [`CtlCommand`] and [`run`] are `proxy ctl`.
//!
//! Errors become `tonic::Status` in [`convert`] only.

mod book;
mod client;
pub mod convert;
mod ctl;
mod hub;
mod incoming;
mod metrics;
mod policy;
mod server;

use std::time::Duration;

pub use book::{MAX_TRACKED_PAIRS, PairBook, Tracked};
pub use client::{ClientError, ControlClient, CreatedPair};
pub use ctl::{CtlAction, CtlCommand, CtlError, CtlTarget, PairCommand, run};
pub use hub::{EventHub, HubCounters, HubEvent, WATCH_BACKLOG};
pub use incoming::Caller;
pub use metrics::ServiceCounters;
pub use policy::{AdminPolicy, DEFAULT_ADMIN_GROUP, Denied};
pub use server::{ControlServer, DEFAULT_LIST_LIMIT, EventStream, MAX_LIST_LIMIT, UpgradeAsk};

use tandem_net::tls::TlsError;

/// Longest token lifetime a `CreatePair` may ask for: unused tokens are a standing invitation,
/// so they live minutes, not hours.
pub const MAX_PAIR_TTL: Duration = Duration::from_secs(600);
/// Longest grace a `Drain` may give live pairs (a deploy waits at most this long).
pub const MAX_DRAIN_GRACE: Duration = Duration::from_secs(300);

/// Why the control service could not start.
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    /// The TLS settings are unusable.
    #[error("control TLS: {0}")]
    Tls(#[from] TlsError),
    /// The listener's address could not be read.
    #[error("control listener: {0}")]
    Listener(std::io::Error),
}

impl ControlError {
    /// A stable label for logs and metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Tls(_) => "tls",
            Self::Listener(_) => "listener",
        }
    }
}
