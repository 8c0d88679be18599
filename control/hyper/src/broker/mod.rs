//! The message broker (SPEC §2.4), the types its channels share, the local channels
//! (`jsonrpc_client`, `stdout`), the JSON-RPC gateway and asynchronous `respond`.

pub mod admission;
mod channel_error;
mod entry_json;
pub mod gateway;
mod guard;
pub mod internal;
pub mod jsonrpc_client;
mod message_broker;
pub mod pending;
pub mod stdout;
pub mod types;
pub mod wrap;

pub use admission::{GatewayAdmission, GatewayRefusal, NOT_ALLOWED};
pub use channel_error::ChannelError;
pub use gateway::JsonRpcGateway;
pub use guard::MAX_IN_TRANSIT;
pub use internal::ConnectionRequestHandler;
pub use jsonrpc_client::{JsonRpcClientChannel, JsonRpcClientError};
pub use message_broker::{BrokerError, DEFAULT_VERSION, MAX_CONNECTION_HANDLERS, MessageBroker};
pub use pending::{ASYNC_MARKER, PendingError, PendingReplies};
pub use stdout::StdoutChannel;
pub use types::{
    Address, BoxFuture, Channel, ClientInfo, DeliveryError, DirectorySource, Entries, HyperError,
    HyperRequest, HyperResponse, RequestSink,
};
