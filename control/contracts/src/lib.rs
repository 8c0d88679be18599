//! The typed JSON-RPC contracts between Tandem's roles (SPEC §2–§4): one module per service, each
//! with its method enum (`as_str()`/`FromStr`, the wire names for dispatch, clients and metric
//! labels) and a serde struct per call's params, whose [`Call`] impl names its method and result
//! type. Servers decode with [`decode_params`], clients encode with [`encode_params`] and decode
//! with [`decode_result`]; a value that cannot be encoded is a [`ContractError`], never `null`.
//!
//! | module | served by | called by |
//! |---|---|---|
//! | [`public_proxy`] | the public proxy (`tandem-proxy`) | Hyper nodes (p2p dialer), private proxies |
//! | [`private_proxy`] | the private proxy | the public proxy's SNI bridge, tenants |
//! | [`hyper_node`] | every Hyper node's broker (`_ping`, `_directory`, `_connectionRequest`) | proxies |
//! | [`sd`] | the service directory (`tandem-sd`) | Hyper's directory client (`sdclient`) |
//!
//! The wire format is the original Hyper's, byte for byte: field names, `null` conventions and
//! result shapes are those of SPEC.md. Params decode ignores unknown keys (the original does, and
//! Hyper injects `_client` into every routed call's params; see [`ClientInfo`]).

mod call;
mod client_info;
pub mod hyper_node;
mod methods;
pub mod private_proxy;
pub mod public_proxy;
pub mod sd;
mod time;

pub use call::{
    Call, ContractError, Empty, OkText, decode_params, decode_result, encode_params, encode_result,
};
pub use client_info::{CLIENT_KEY, ClientInfo};
pub use methods::{MethodName, UnknownMethod};
pub use tandem_types::{OperatorName, Token};
