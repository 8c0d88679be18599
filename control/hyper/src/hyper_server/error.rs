//! Why a Hyper server could not start (or reload).

use crate::broker::{BrokerError, JsonRpcClientError};
use crate::dirclient::DirClientError;
use crate::grpc::GrpcError;
use tandem_types::OperatorNameError;

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum HyperServerError {
    /// Binding or reading a listener failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A listener's address could not be resolved or bound.
    #[error(transparent)]
    Bind(#[from] tandem_serving::BindError),
    /// A channel that listens has no listener (see [`Listeners`]).
    #[error("the {0} channel needs a listener")]
    MissingListener(&'static str),
    /// The directory client could not be built.
    #[error(transparent)]
    Directory(#[from] DirClientError),
    /// The broker refused a channel.
    #[error(transparent)]
    Broker(#[from] BrokerError),
    /// TLS settings are unusable.
    #[error(transparent)]
    Tls(#[from] tandem_net::tls::TlsError),
    /// The settings do not build what serving them needs (names the file or key).
    #[error(transparent)]
    Prepare(#[from] tandem_net::reload::ReloadError),
    /// The gRPC transport could not start.
    #[error(transparent)]
    Grpc(#[from] GrpcError),
    /// The `jsonrpc_client` channel could not be built.
    #[error(transparent)]
    JsonRpcClient(#[from] JsonRpcClientError),
    /// The settings' `name` is not an operator name.
    #[error("name: {0}")]
    Name(#[from] OperatorNameError),
}

impl HyperServerError {
    /// A stable label for logs and metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Io { .. } => "io",
            Self::Bind(e) => e.kind(),
            Self::MissingListener(_) => "missing_listener",
            Self::Directory(e) => e.kind(),
            Self::Broker(e) => e.kind(),
            Self::Tls(e) => e.kind(),
            Self::Prepare(e) => e.kind(),
            Self::Grpc(e) => e.kind(),
            Self::JsonRpcClient(e) => e.kind(),
            Self::Name(_) => "operator_name",
        }
    }
}
