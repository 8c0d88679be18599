//! Who may call the local JSON-RPC gateway (DESIGN "identity at every door"): every caller acts as
//! the operator, so with client certificates only the operator itself and the local clients in
//! `allowed_clients` are served, each by the one name rule of
//! [`allowed_name`](tandem_directory::identity::allowed_name) (a certificate name on the list,
//! pinned where the directory pins that name). See [`GatewaySettings`].

use std::collections::BTreeSet;
use std::sync::Arc;

use serde_json::json;
use tracing::info;

use super::types::{DirectorySource, SourceError};
use tandem_directory::identity::{NameRefusal, allowed_name};
use tandem_net::http::PeerInfo;
use tandem_net::jsonrpc::{ErrorObject, INTERNAL_ERROR};
use tandem_net::metrics::Refusals;
use tandem_net::tls::certificate_names;
use tandem_settings::hyper::GatewaySettings;

/// The JSON-RPC error code of a refused caller (as the broker's permission errors).
pub const NOT_ALLOWED: i64 = 403;

/// Who the gateway serves.
#[derive(Debug, Clone)]
enum Callers {
    /// No client certificates: callers cannot be told apart; everyone is the operator (warned
    /// at start).
    Unverified,
    /// Callers whose certificate carries one of these names (the operator's and the allowed
    /// clients').
    Named(Arc<BTreeSet<String>>),
}

/// Why a caller is refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum GatewayRefusal {
    /// Client certificates are checked and the caller presented none.
    #[error("no client certificate")]
    NoCertificate,
    /// The certificate names no allowed client, or not with the pinned certificate.
    #[error(transparent)]
    Name(#[from] NameRefusal),
    /// The directory (for the pins) could not be read.
    #[error("directory unavailable: {0}")]
    Directory(SourceError),
}

impl GatewayRefusal {
    /// Stable label for logs and metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::NoCertificate => "no_certificate",
            Self::Name(n) => n.kind(),
            Self::Directory(_) => "directory",
        }
    }

    /// The JSON-RPC error the caller gets.
    pub fn to_error_object(&self) -> ErrorObject {
        match self {
            Self::Directory(_) => ErrorObject::new(INTERNAL_ERROR, "internal error")
                .with_data(json!({"reason": self.to_string()})),
            _ => ErrorObject::new(NOT_ALLOWED, "caller not allowed at this gateway").with_data(
                json!({"reason": format!("{self}; this gateway serves its operator and its allowed_clients only")}),
            ),
        }
    }
}

/// The gateway's caller check, with its refusal counter.
#[derive(Debug, Clone)]
pub struct GatewayAdmission {
    callers: Callers,
    refusals: Refusals,
}

impl GatewayAdmission {
    /// The check for operator `operator`'s gateway configured by `settings`; refusals are
    /// counted in `refusals` by [`GatewayRefusal::kind`].
    pub fn new(operator: &str, settings: &GatewaySettings, refusals: Refusals) -> Self {
        let callers = if settings.verifies_clients() {
            let mut names: BTreeSet<String> = settings.allowed_clients.iter().cloned().collect();
            names.insert(operator.to_owned());
            Callers::Named(Arc::new(names))
        } else {
            Callers::Unverified
        };
        Self { callers, refusals }
    }

    /// Admits `peer` or says (and counts) why not.
    pub async fn admit(
        &self,
        peer: &PeerInfo,
        directory: &dyn DirectorySource,
    ) -> Result<(), GatewayRefusal> {
        let outcome = self.check(peer, directory).await;
        if let Err(refusal) = &outcome {
            self.refusals.count(refusal.kind());
            let names = peer.leaf.as_deref().map(certificate_names);
            info!(peer = %peer.addr, kind = refusal.kind(), ?names, error = %refusal, "gateway caller refused");
        }
        outcome
    }

    async fn check(
        &self,
        peer: &PeerInfo,
        directory: &dyn DirectorySource,
    ) -> Result<(), GatewayRefusal> {
        let Callers::Named(names) = &self.callers else {
            return Ok(());
        };
        let leaf = peer.leaf.as_deref().ok_or(GatewayRefusal::NoCertificate)?;
        let entries = directory
            .entries()
            .await
            .map_err(GatewayRefusal::Directory)?;
        allowed_name(leaf, |n| names.contains(n), &entries)?;
        Ok(())
    }
}
