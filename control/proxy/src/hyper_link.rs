//! The proxy → proxy-Hyper JSON-RPC link: calls `<operator>.<method>` through our Hyper node,
//! which routes them (SPEC §4), each with the configured deadline.

use std::time::Duration;

use super::error::ProxyError;
use crate::settings::ProxyClientSettings;
use tandem_contracts::hyper_node::Directory;
use tandem_contracts::{Call, ContractError, decode_result, encode_params};
use tandem_directory::entry::DirectoryEntry;
use tandem_net::http::{ClientError, JsonRpcClient};

/// ALPN for the link (the Hyper JSON-RPC servers speak HTTP/1.1; h2 is fine too).
const ALPN: &[&[u8]] = &[b"h2", b"http/1.1"];

/// Why a call through our Hyper node failed.
#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    /// The call failed (transport, deadline, or the peer's JSON-RPC error).
    #[error(transparent)]
    Call(#[from] ClientError),
    /// Our params could not be encoded (nothing was sent) or the answer does not fit the contract.
    #[error(transparent)]
    Contract(#[from] ContractError),
}

impl LinkError {
    /// A stable label for logs and metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Call(e) => e.kind(),
            Self::Contract(e) => e.kind(),
        }
    }
}

/// A JSON-RPC client to our Hyper node.
#[derive(Clone, Debug)]
pub struct HyperLink {
    client: JsonRpcClient,
    own_name: String,
}

impl HyperLink {
    /// A link from the `jsonrpc_client` settings; every call has `timeout`.
    pub fn new(
        settings: &ProxyClientSettings,
        own_name: &str,
        timeout: Duration,
    ) -> Result<Self, ProxyError> {
        let tls = settings
            .tls
            .as_ref()
            .map(|t| tandem_net::tls::client_config(t, ALPN))
            .transpose()?;
        let server_name = settings.tls.as_ref().and_then(|t| t.server_name.as_deref());
        let client = JsonRpcClient::through(
            &settings.endpoint,
            tls,
            server_name,
            timeout,
            settings.proxy_url.as_ref(),
        )?;
        Ok(Self {
            client,
            own_name: own_name.to_owned(),
        })
    }

    /// Calls `<operator>.<method of C>` with `call`'s params (Hyper routes it by the addressable
    /// id it derives from the method and our request id) and decodes the typed result.
    pub async fn call<C: Call>(&self, operator: &str, call: &C) -> Result<C::Result, LinkError> {
        let params = encode_params(call)?;
        let method = format!("{operator}.{}", C::method());
        let result = self.client.call(&method, params).await?;
        Ok(decode_result::<C>(result)?)
    }

    /// The directory entry of `operator`, through our Hyper node's internal `_directory`
    /// method (`<own name>._directory {operator}`); `None` when it has none.
    pub async fn directory_entry(
        &self,
        operator: &str,
    ) -> Result<Option<DirectoryEntry>, LinkError> {
        let answer = self
            .call(&self.own_name, &Directory::operator(operator))
            .await?;
        Ok(answer.entries.into_iter().find(|e| e.name == operator))
    }

    /// Every directory entry our Hyper node knows (`<own name>._directory {}`); the response is
    /// bounded by the JSON-RPC client's response limit.
    pub async fn all_entries(&self) -> Result<Vec<DirectoryEntry>, LinkError> {
        Ok(self.call(&self.own_name, &Directory::all()).await?.entries)
    }
}
