//! The proxy → proxy-Hyper JSON-RPC link: calls `<operator>.<method>` through our Hyper node,
//! which routes them (SPEC §4), each with the configured deadline.

use std::time::Duration;

use serde_json::{Map, Value, json};

use super::error::ProxyError;
use crate::settings::ProxyClientSettings;
use tandem_directory::entry::DirectoryEntry;
use tandem_net::http::{ClientError, JsonRpcClient};

/// ALPN for the link (the Hyper JSON-RPC servers speak HTTP/1.1; h2 is fine too).
const ALPN: &[&[u8]] = &[b"h2", b"http/1.1"];

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

    /// Calls `<operator>.<method>` (Hyper routes it by the addressable id it derives from the
    /// method and our request id).
    pub async fn call(
        &self,
        operator: &str,
        method: &str,
        params: Map<String, Value>,
    ) -> Result<Value, ClientError> {
        self.client
            .call(&format!("{operator}.{method}"), params)
            .await
    }

    /// The directory entry of `operator`, through our Hyper node's internal `_directory`
    /// method (`<own name>._directory {operator}`); `None` when it has none.
    pub async fn directory_entry(
        &self,
        operator: &str,
    ) -> Result<Option<DirectoryEntry>, ClientError> {
        let entries = self.directory(Some(operator)).await?;
        Ok(entries.into_iter().find(|e| e.name == operator))
    }

    /// Every directory entry our Hyper node knows (`<own name>._directory {}`); the response is
    /// bounded by the JSON-RPC client's response limit.
    pub async fn all_entries(&self) -> Result<Vec<DirectoryEntry>, ClientError> {
        self.directory(None).await
    }

    async fn directory(&self, operator: Option<&str>) -> Result<Vec<DirectoryEntry>, ClientError> {
        let mut params = Map::new();
        if let Some(operator) = operator {
            params.insert("operator".into(), json!(operator));
        }
        let result = self.call(&self.own_name, "_directory", params).await?;
        let entries = result
            .get("entries")
            .cloned()
            .unwrap_or(Value::Array(Vec::new()));
        serde_json::from_value(entries).map_err(|e| ClientError::BadResponse {
            endpoint: format!("{}._directory", self.own_name),
            status: 200,
            reason: e.to_string(),
        })
    }
}
