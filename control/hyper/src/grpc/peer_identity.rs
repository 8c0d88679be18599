//! The operator identity of a TLS peer (SPEC §6.4): the names its verified leaf certificate is bound to
//! in the directory, each with its entry.

use std::net::SocketAddr;
use std::sync::Arc;

use crate::broker::types::{ClientInfo, DirectorySource, SourceError};
use tandem_directory::identity::names_for_certificate;
use tandem_types::OperatorName;

/// Who is on the other end of a gRPC connection; attached to every request on it.
#[derive(Debug, Clone)]
pub struct PeerIdentity {
    /// The peer's TCP address (for injected proxy sockets: the proxy's).
    pub addr: Option<SocketAddr>,
    /// The names the certificate is bound to, in certificate order (CN, then DNS SANs), at least one.
    pub clients: Arc<Vec<ClientInfo>>,
}

impl PeerIdentity {
    /// The client a request claiming `claimed` comes from: one of the certificate's names, or the
    /// first name when `claimed` is empty (as the original).
    pub fn client(&self, claimed: &str) -> Option<&ClientInfo> {
        if claimed.is_empty() {
            return self.clients.first();
        }
        self.clients.iter().find(|c| c.name == claimed)
    }

    /// Whether `name` is one of the certificate's names (an empty name is not).
    pub fn has_name(&self, name: &str) -> bool {
        !name.is_empty() && self.clients.iter().any(|c| c.name == name)
    }

    /// The first name (for logs).
    pub fn primary(&self) -> &str {
        self.clients.first().map_or("", |c| c.name.as_str())
    }
}

/// Why a peer has no operator identity.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub(crate) enum IdentifyError {
    /// The peer sent no certificate.
    #[error("certificate missing")]
    NoCertificate,
    /// The certificate does not parse.
    #[error("{0}")]
    Malformed(String),
    /// The directory could not be read.
    #[error("{0}")]
    Directory(SourceError),
    /// No name of the certificate pins its fingerprint.
    #[error("no name matched")]
    NoName,
}

/// The clients the leaf `leaf_der` is bound to (deduplicated, order kept).
pub(crate) async fn identify(
    leaf_der: Option<&[u8]>,
    directory: &dyn DirectorySource,
) -> Result<Vec<ClientInfo>, IdentifyError> {
    let leaf = leaf_der.ok_or(IdentifyError::NoCertificate)?;
    let entries = directory
        .entries()
        .await
        .map_err(IdentifyError::Directory)?;
    let names = names_for_certificate(leaf, &entries)
        .map_err(|e| IdentifyError::Malformed(e.to_string()))?;
    let mut clients: Vec<ClientInfo> = Vec::with_capacity(names.len());
    for name in names {
        if clients.iter().any(|c| c.name == name) {
            continue;
        }
        // A name that is not an operator name cannot be a client (it cannot be addressed either).
        let Ok(name) = OperatorName::new(name) else {
            continue;
        };
        if let Some(entry) = entries.get(name.as_str()) {
            clients.push(ClientInfo {
                name,
                entry: entry.clone(),
            });
        }
    }
    if clients.is_empty() {
        return Err(IdentifyError::NoName);
    }
    Ok(clients)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tandem_directory::entry::DirectoryEntry;

    fn identity(names: &[&str]) -> PeerIdentity {
        PeerIdentity {
            addr: None,
            clients: Arc::new(
                names
                    .iter()
                    .map(|n| ClientInfo {
                        name: n.parse().unwrap(),
                        entry: DirectoryEntry::new(*n),
                    })
                    .collect(),
            ),
        }
    }

    #[test]
    fn claimed_names_must_be_bound_and_empty_means_first() {
        let id = identity(&["hd-1", "alias"]);
        assert_eq!(id.client("").unwrap().name, "hd-1");
        assert_eq!(id.client("alias").unwrap().name, "alias");
        assert!(id.client("hd-2").is_none());
        assert!(id.has_name("alias") && !id.has_name("") && !id.has_name("hd-2"));
        assert_eq!(id.primary(), "hd-1");
    }
}
