//! [`ClientInfo`]: who made a routed call (SPEC §2.4), as the broker passes it to channels and
//! handlers and as it injects it into every routed call's params under [`CLIENT_KEY`].

use serde::{Deserialize, Serialize};
use tandem_directory::entry::DirectoryEntry;
use tandem_types::OperatorName;

/// The params key under which Hyper injects the last hop's [`ClientInfo`] (`_client`).
pub const CLIENT_KEY: &str = "_client";

/// The operator that made a call (the authenticated last hop) and its directory entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClientInfo {
    /// The calling operator.
    pub name: OperatorName,
    /// Its directory entry.
    pub entry: DirectoryEntry,
}
