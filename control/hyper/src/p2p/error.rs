//! [`P2pError`]: why a brokered connection could not be set up, on either side.

use crate::broker::types::DeliveryError;
use crate::grpc::InjectError;
use tandem_contracts::ContractError;
use tandem_net::pairing::JoinError;

/// Why a brokered connection could not be set up. A token never appears in these messages.
#[derive(Debug, thiserror::Error)]
pub enum P2pError {
    /// The local broker is gone (the server is stopping).
    #[error("the message broker is not running")]
    BrokerGone,
    /// The local broker could not deliver `requestConnection` to the proxy.
    #[error("requesting a connection from {proxy}: {source}")]
    Delivery {
        /// The proxy operator.
        proxy: String,
        /// The routing failure.
        source: DeliveryError,
    },
    /// The proxy answered `requestConnection` with an error.
    #[error("{proxy} refused the connection request: {message} (code {code})")]
    Refused {
        /// The proxy operator.
        proxy: String,
        /// Its error code.
        code: i64,
        /// Its error message.
        message: String,
    },
    /// The request's params or the proxy's answer do not fit the contract (the message names the
    /// field).
    #[error("invalid {0}")]
    Contract(#[from] ContractError),
    /// A field of the request or of the proxy's answer is malformed.
    #[error("invalid {field}: {reason}")]
    Invalid {
        /// The field (`token`, `endpoint`, `channel`, ...).
        field: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// The endpoint is not a pairing endpoint of the proxy operator that asked (or answered):
    /// its directory entry does not list it (`directory::endpoints`). Nothing was dialed.
    #[error(
        "endpoint {endpoint} is not a pairing endpoint of {operator} (its directory entry's \"proxy\" channel lists {listed:?}); not dialed"
    )]
    ForeignEndpoint {
        /// The endpoint asked for.
        endpoint: String,
        /// The operator that asked.
        operator: String,
        /// What its entry lists.
        listed: Vec<String>,
    },
    /// Dialing the pairing endpoint and writing the token failed or took longer than the
    /// connect deadline.
    #[error(transparent)]
    Join(#[from] JoinError),
    /// The local gRPC server did not take the socket.
    #[error("handing the connection to the gRPC server: {0}")]
    Inject(#[from] InjectError),
}

impl P2pError {
    /// A stable label for logs and metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::BrokerGone => "broker_gone",
            Self::Delivery { .. } => "delivery",
            Self::Refused { .. } => "refused",
            Self::Contract(_) | Self::Invalid { .. } => "invalid",
            Self::ForeignEndpoint { .. } => "foreign_endpoint",
            Self::Join(e) => e.kind(),
            Self::Inject(_) => "inject",
        }
    }

    /// [`P2pError::ForeignEndpoint`] unless `entry` (the asking operator's) lists `endpoint`.
    pub(crate) fn check_owner(
        entry: &tandem_directory::entry::DirectoryEntry,
        endpoint: &str,
    ) -> Result<(), Self> {
        use tandem_directory::endpoints::{owns_endpoint, proxy_endpoints};
        if owns_endpoint(entry, endpoint) {
            return Ok(());
        }
        Err(Self::ForeignEndpoint {
            endpoint: endpoint.to_owned(),
            operator: entry.name.clone(),
            listed: proxy_endpoints(entry)
                .iter()
                .map(ToString::to_string)
                .collect(),
        })
    }

    pub(crate) fn invalid(field: &'static str, reason: impl Into<String>) -> Self {
        Self::Invalid {
            field,
            reason: reason.into(),
        }
    }
}
