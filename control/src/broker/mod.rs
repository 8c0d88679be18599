//! The message broker (SPEC §2.4) and the types its channels share.

pub mod types;

pub use types::{
    Address, BoxFuture, Channel, ClientInfo, DeliveryError, DirectorySource, Entries, HyperError,
    HyperRequest, HyperResponse, RequestSink,
};
