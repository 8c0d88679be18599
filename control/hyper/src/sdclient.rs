//! A client of the service directory's JSON-RPC API (`api` directory settings): `getTip`,
//! `submitRecords`, `getRecords`, `getEntries`, `getEntry`. Every call has a deadline.

use std::time::Duration;

use tandem_contracts::sd::{GetEntries, GetEntry, GetRecords, GetTip, SubmitRecords};
use tandem_contracts::{Call, ContractError, OperatorName, decode_result, encode_params};
use tandem_directory::SignedChangeRecord;
use tandem_directory::entry::DirectoryEntry;
use tandem_net::http::{ClientError, JsonRpcClient};
use tandem_settings::hyper::ApiDirectorySettings;

/// Default deadline of one directory call.
pub const DEFAULT_CALL_TIMEOUT: Duration = Duration::from_secs(10);

/// Why a directory call failed.
#[derive(Debug, thiserror::Error)]
pub enum SdClientError {
    /// The settings name no endpoint.
    #[error("the api directory settings name no endpoint")]
    NoEndpoint,
    /// TLS settings could not be loaded.
    #[error("tls: {0}")]
    Tls(#[from] tandem_net::tls::TlsError),
    /// The call failed.
    #[error(transparent)]
    Call(#[from] ClientError),
    /// The params could not be encoded or the answer did not have the expected shape.
    #[error(transparent)]
    Contract(#[from] ContractError),
    /// The name asked for is not an operator name.
    #[error("getEntry: {0}")]
    Name(#[from] tandem_types::OperatorNameError),
}

/// A connection to one directory server.
#[derive(Debug, Clone)]
pub struct SdClient {
    rpc: JsonRpcClient,
}

impl SdClient {
    /// A client for the first endpoint of `settings` (as the original, which uses only `[0]`),
    /// checking the server certificate against `server_names[0]` when given, through the forward
    /// proxy of `jsonrpc_client.proxy_url` when set.
    pub fn from_settings(
        settings: &ApiDirectorySettings,
        timeout: Duration,
    ) -> Result<Self, SdClientError> {
        let endpoint = settings
            .endpoints
            .first()
            .ok_or(SdClientError::NoEndpoint)?;
        let tls = settings
            .jsonrpc_client
            .tls
            .as_ref()
            .map(|t| tandem_net::tls::client_config(t, &[b"http/1.1"]))
            .transpose()?;
        let server_name = settings.server_names.first().map(String::as_str);
        Ok(Self {
            rpc: JsonRpcClient::through(
                endpoint,
                tls,
                server_name,
                timeout,
                settings.jsonrpc_client.proxy_url.as_ref(),
            )?,
        })
    }

    /// A client over an existing JSON-RPC client.
    pub fn new(rpc: JsonRpcClient) -> Self {
        Self { rpc }
    }

    /// One typed call.
    async fn call<C: Call>(&self, call: &C) -> Result<C::Result, SdClientError> {
        let value = self.rpc.call(C::method(), encode_params(call)?).await?;
        Ok(decode_result::<C>(value)?)
    }

    /// The last record of the best chain, if any.
    pub async fn tip(&self) -> Result<Option<SignedChangeRecord>, SdClientError> {
        self.call(&GetTip {}).await
    }

    /// Submits a signed batch.
    pub async fn submit(&self, records: &[SignedChangeRecord]) -> Result<(), SdClientError> {
        let call = SubmitRecords {
            records: records.to_vec(),
        };
        self.call(&call).await.map(|_ok| ())
    }

    /// The records after `after` (all of them for `""`).
    pub async fn records_after(
        &self,
        after: &str,
    ) -> Result<Vec<SignedChangeRecord>, SdClientError> {
        let call = GetRecords {
            after: Some(after.to_owned()),
        };
        self.call(&call).await
    }

    /// Every entry.
    pub async fn entries(&self) -> Result<Vec<DirectoryEntry>, SdClientError> {
        self.call(&GetEntries {}).await
    }

    /// One entry by name.
    pub async fn entry(&self, name: &str) -> Result<DirectoryEntry, SdClientError> {
        let call = GetEntry {
            name: OperatorName::new(name)?,
        };
        self.call(&call).await
    }
}
