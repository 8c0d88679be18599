//! The proxy's two error boundaries: [`ProxyError`] for starting and running a proxy, and
//! [`CallError`] for one JSON-RPC call, mapped to its JSON-RPC error object in one place.

use serde_json::Value;

use super::announcements::Refusal;
use super::hyper_link::LinkError;
use tandem_contracts::ContractError;
use tandem_datastore::DatastoreError;
use tandem_net::http::ClientError;
use tandem_net::jsonrpc::{ErrorObject, INTERNAL_ERROR, INVALID_PARAMS, METHOD_NOT_FOUND};
use tandem_net::tls::TlsError;

/// Why a proxy could not start or stopped with a failure.
#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    /// Binding, resolving or another socket operation failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// A listener's or data port's address could not be resolved or bound.
    #[error(transparent)]
    Bind(#[from] tandem_serving::BindError),
    /// A TLS configuration could not be built.
    #[error(transparent)]
    Tls(#[from] TlsError),
    /// The datastore could not be opened or read.
    #[error(transparent)]
    Datastore(#[from] DatastoreError),
    /// The engine could not start or drain.
    #[error("engine: {0}")]
    Engine(#[from] tandem_engine::EngineError),
    /// The JSON-RPC client settings are unusable.
    #[error(transparent)]
    Client(#[from] ClientError),
    /// The engine's drain could not run to its end (its task panicked or was cancelled).
    #[error("drain task failed: {0}")]
    DrainTask(#[source] tokio::task::JoinError),
    /// The settings lack a block this command needs.
    #[error("settings: {0}")]
    Settings(String),
    /// The forward proxy of a `proxy_url` is unusable.
    #[error(transparent)]
    Forward(#[from] tandem_net::http::TunnelError),
}

impl ProxyError {
    /// A stable label for logs and metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Io { .. } => "io",
            Self::Bind(e) => e.kind(),
            Self::Tls(_) => "tls",
            Self::Datastore(_) => "datastore",
            Self::Engine(_) => "engine",
            Self::Client(_) => "client",
            Self::DrainTask(_) => "drain_task",
            Self::Settings(_) => "settings",
            Self::Forward(_) => "forward_proxy",
        }
    }

    pub(crate) fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        Self::Io {
            context: context.into(),
            source,
        }
    }
}

/// Why one JSON-RPC call to a proxy failed.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    /// Unknown method.
    #[error("method not found")]
    MethodNotFound,
    /// Params missing or malformed.
    #[error("invalid params: {0}")]
    InvalidParams(String),
    /// The params do not fit the method's contract ([`ContractError::Params`]), or a value of
    /// ours could not be encoded (our fault).
    #[error("{0}")]
    Contract(#[from] ContractError),
    /// The caller is not our Hyper node (its certificate does not carry our operator name).
    #[error("caller is not this proxy's Hyper node")]
    NotOurHyper,
    /// The caller's certificate names our operator but is not one the directory pins for it.
    #[error("caller's certificate is not the one the directory pins for this proxy's operator")]
    NotPinned,
    /// The caller could not be checked (the directory is unavailable); retry.
    #[error("caller check: {0}")]
    CallerCheck(tandem_directory::source::SourceError),
    /// The endpoint to dial is not a pairing endpoint of the calling proxy operator.
    #[error("endpoint {endpoint} is not a pairing endpoint of {operator}; not dialed")]
    ForeignEndpoint {
        /// The endpoint asked for.
        endpoint: String,
        /// The calling operator.
        operator: String,
    },
    /// The target operator has no directory entry.
    #[error("operator {0:?} not found")]
    UnknownOperator(String),
    /// The requester may not reach the target.
    #[error("{requester:?} may not connect to {target:?}")]
    NotAllowed {
        /// Who asked.
        requester: String,
        /// Whom they asked for.
        target: String,
    },
    /// The caller's entry has no `proxy` settings for us.
    #[error("not authorized")]
    NotAuthorized,
    /// The caller's `proxy` settings are malformed.
    #[error("invalid directory settings")]
    InvalidDirectorySettings,
    /// Private proxy: a domain outside the caller's `allowed_domains`.
    #[error("not allowed to forward this domain")]
    DomainNotAllowed(Value),
    /// Private proxy: announcing to ourselves.
    #[error("{0}")]
    BadRequest(String),
    /// Private proxy: no live announcement for this proxy and domain.
    #[error("no matching connection found")]
    NoMatchingConnection,
    /// Private proxy: the announcement table refused the domain (another tenant holds it, the
    /// tenant's quota, the table's bound).
    #[error("announcement refused: {}", .0.code_message().1)]
    Announcement(Refusal),
    /// A bound was reached (in-flight connections, announcements).
    #[error("busy: {0}")]
    Busy(&'static str),
    /// The requesting operator reached a quota (or the quota bookkeeping is full).
    #[error("{0}")]
    Quota(crate::quota::QuotaError),
    /// The engine refused (mailbox full, shutting down).
    #[error("engine: {0}")]
    Engine(#[from] tandem_engine::EngineError),
    /// The datastore failed.
    #[error("datastore: {0}")]
    Datastore(#[from] DatastoreError),
    /// Looking up the directory through our Hyper node failed.
    #[error("directory lookup: {0}")]
    Directory(LinkError),
    /// The call to the peer (through our Hyper node) failed.
    #[error("peer call: {0}")]
    Peer(LinkError),
}

impl CallError {
    /// A stable label for logs and metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::MethodNotFound => "method_not_found",
            Self::InvalidParams(_) => "invalid_params",
            Self::Contract(ContractError::Params { .. }) => "invalid_params",
            Self::Contract(_) => "contract",
            Self::NotOurHyper => "not_our_hyper",
            Self::NotPinned => "not_pinned",
            Self::CallerCheck(_) => "caller_check",
            Self::ForeignEndpoint { .. } => "foreign_endpoint",
            Self::UnknownOperator(_) => "unknown_operator",
            Self::NotAllowed { .. } => "not_allowed",
            Self::NotAuthorized => "not_authorized",
            Self::InvalidDirectorySettings => "invalid_directory_settings",
            Self::DomainNotAllowed(_) => "domain_not_allowed",
            Self::BadRequest(_) => "bad_request",
            Self::NoMatchingConnection => "no_matching_connection",
            Self::Announcement(r) => match r {
                Refusal::NotAllowed => "announcement_not_allowed",
                Refusal::Taken => "announcement_taken",
                Refusal::OverQuota { .. } => "announcement_over_quota",
                Refusal::Full => "announcement_full",
            },
            Self::Busy(_) => "busy",
            Self::Quota(_) => "quota",
            Self::Engine(_) => "engine",
            Self::Datastore(_) => "datastore",
            Self::Directory(_) => "directory",
            Self::Peer(_) => "peer",
        }
    }

    /// The JSON-RPC error object sent to the caller (the only place this mapping lives).
    /// A peer's JSON-RPC error is passed through with its code, message and data (SPEC §4.3).
    pub fn to_error_object(&self) -> ErrorObject {
        match self {
            Self::MethodNotFound => ErrorObject::new(METHOD_NOT_FOUND, "method not found"),
            Self::InvalidParams(reason) => ErrorObject::new(INVALID_PARAMS, "invalid params")
                .with_data(Value::String(reason.clone())),
            Self::Contract(e @ ContractError::Params { .. }) => {
                ErrorObject::new(INVALID_PARAMS, "invalid params")
                    .with_data(Value::String(e.to_string()))
            }
            Self::NotOurHyper | Self::NotPinned => ErrorObject::new(403, "permission denied"),
            Self::CallerCheck(reason) => ErrorObject::new(INTERNAL_ERROR, "internal error")
                .with_data(Value::String(reason.to_string())),
            Self::ForeignEndpoint { .. } => ErrorObject::new(403, "endpoint not allowed")
                .with_data(Value::String(self.to_string())),
            Self::UnknownOperator(_) => ErrorObject::new(404, "operator not found"),
            Self::NotAllowed { .. } => ErrorObject::new(403, "permission denied"),
            Self::NotAuthorized => ErrorObject::new(403, "not authorized"),
            Self::InvalidDirectorySettings => ErrorObject::new(500, "invalid directory settings"),
            Self::DomainNotAllowed(settings) => {
                ErrorObject::new(403, "not allowed to forward this domain")
                    .with_data(settings.clone())
            }
            Self::BadRequest(message) => ErrorObject::new(400, message.clone()),
            Self::NoMatchingConnection => ErrorObject::new(404, "no matching connection found"),
            Self::Announcement(r) => {
                let (code, message) = r.code_message();
                ErrorObject::new(code, message)
            }
            Self::Busy(what) => ErrorObject::new(503, format!("busy: {what}")),
            Self::Quota(e) => quota_error_object(e),
            Self::Peer(LinkError::Call(ClientError::Rpc { error, .. })) => error.clone(),
            Self::Contract(_)
            | Self::Engine(_)
            | Self::Datastore(_)
            | Self::Directory(_)
            | Self::Peer(_) => ErrorObject::new(INTERNAL_ERROR, "internal error"),
        }
    }
}

/// A quota refusal as JSON-RPC: code 429 (as HTTP's Too Many Requests), the message naming the
/// quota and its limit, and `data` `{quota, limit, operator}` for programs.
fn quota_error_object(e: &crate::quota::QuotaError) -> ErrorObject {
    use crate::quota::QuotaError;
    let object = ErrorObject::new(QUOTA_EXCEEDED, e.to_string());
    match e {
        QuotaError::Exceeded {
            operator,
            quota,
            limit,
        } => object.with_data(serde_json::json!({
            "quota": quota.as_str(),
            "limit": limit,
            "operator": operator,
        })),
        QuotaError::Full(_) | QuotaError::Unavailable(_) => object,
    }
}

/// The JSON-RPC error code of a quota refusal.
pub const QUOTA_EXCEEDED: i64 = 429;
