//! A JSON-RPC client over HTTP(S) with a deadline on every call and a bounded response size.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Uri, header};
use http_body_util::{BodyExt, Full, Limited};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use rustls::ClientConfig;
use serde_json::{Map, Value};
use tandem_types::ForwardProxy;

use super::forward::Outbound;

use crate::jsonrpc::{ErrorObject, Id, Request as RpcRequest, Response, random_id};

/// The largest response body read, in bytes (a whole directory fits many times over).
pub const MAX_RESPONSE_BYTES: usize = 64 * 1024 * 1024;

/// Why a call failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The endpoint or server name in the settings is unusable.
    #[error("invalid endpoint {endpoint:?}: {reason}")]
    InvalidEndpoint {
        /// The endpoint as configured.
        endpoint: String,
        /// What is wrong with it.
        reason: String,
    },
    /// No answer within the deadline.
    #[error("no answer from {endpoint} within {timeout:?}")]
    Timeout {
        /// The endpoint called.
        endpoint: String,
        /// The deadline.
        timeout: Duration,
    },
    /// Connecting, TLS or HTTP failed.
    #[error("request to {endpoint} failed: {reason}")]
    Transport {
        /// The endpoint called.
        endpoint: String,
        /// The underlying error.
        reason: String,
    },
    /// The answer was not a JSON-RPC response.
    #[error("unreadable answer from {endpoint} (HTTP {status}): {reason}")]
    BadResponse {
        /// The endpoint called.
        endpoint: String,
        /// The HTTP status.
        status: u16,
        /// What was wrong.
        reason: String,
    },
    /// The server answered with a JSON-RPC error.
    #[error("{endpoint} answered with error {}: {}", .error.code, .error.message)]
    Rpc {
        /// The endpoint called.
        endpoint: String,
        /// The error object.
        error: ErrorObject,
    },
}

impl ClientError {
    /// A stable label for metrics and logs.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::InvalidEndpoint { .. } => "invalid_endpoint",
            Self::Timeout { .. } => "timeout",
            Self::Transport { .. } => "transport",
            Self::BadResponse { .. } => "bad_response",
            Self::Rpc { .. } => "rpc",
        }
    }
}

/// A JSON-RPC endpoint and a pooled connection to it.
#[derive(Clone, Debug)]
pub struct JsonRpcClient {
    client: Client<HttpsConnector<Outbound>, Full<Bytes>>,
    endpoint: Uri,
    timeout: Duration,
}

impl JsonRpcClient {
    /// A client for `endpoint` (`http://` or `https://`). `tls` is required for https; `server_name`
    /// overrides the name the server certificate is checked against (default: the endpoint's host).
    pub fn new(
        endpoint: &str,
        tls: Option<Arc<ClientConfig>>,
        server_name: Option<&str>,
        timeout: Duration,
    ) -> Result<Self, ClientError> {
        Self::through(endpoint, tls, server_name, timeout, None)
    }

    /// As [`JsonRpcClient::new`], through the HTTP forward proxy `forward` when given (`proxy_url`).
    pub fn through(
        endpoint: &str,
        tls: Option<Arc<ClientConfig>>,
        server_name: Option<&str>,
        timeout: Duration,
        forward: Option<&ForwardProxy>,
    ) -> Result<Self, ClientError> {
        let invalid = |reason: String| ClientError::InvalidEndpoint {
            endpoint: endpoint.to_owned(),
            reason,
        };
        let uri: Uri = endpoint.parse().map_err(|e| invalid(format!("{e}")))?;
        let https = match uri.scheme_str() {
            Some("https") => true,
            Some("http") => false,
            _ => return Err(invalid("the scheme must be http or https".into())),
        };
        if https && tls.is_none() {
            return Err(invalid("https needs tls settings".into()));
        }
        let connector = super::connector::connector_from_config(tls, server_name, forward)
            .map_err(|e| invalid(e.to_string()))?;
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(30))
            .build(connector);
        Ok(Self {
            client,
            endpoint: uri,
            timeout,
        })
    }

    /// Calls `method` with `params` and returns its result (a JSON-RPC error becomes [`ClientError::Rpc`]).
    pub async fn call(
        &self,
        method: &str,
        params: Map<String, Value>,
    ) -> Result<Value, ClientError> {
        let request = RpcRequest::new(method, params, random_id());
        tokio::time::timeout(self.timeout, self.exchange(&request))
            .await
            .map_err(|_| ClientError::Timeout {
                endpoint: self.endpoint.to_string(),
                timeout: self.timeout,
            })?
    }

    async fn exchange(&self, request: &RpcRequest) -> Result<Value, ClientError> {
        let endpoint = self.endpoint.to_string();
        let transport = |reason: String| ClientError::Transport {
            endpoint: endpoint.clone(),
            reason,
        };
        let body = serde_json::to_vec(request).map_err(|e| transport(e.to_string()))?;
        let http_request = Request::post(self.endpoint.clone())
            .header(header::CONTENT_TYPE, "application/json")
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| transport(e.to_string()))?;
        let response = self
            .client
            .request(http_request)
            .await
            .map_err(|e| transport(error_chain(&e)))?;
        let status = response.status().as_u16();
        let bad = |reason: String| ClientError::BadResponse {
            endpoint: endpoint.clone(),
            status,
            reason,
        };
        let bytes = Limited::new(response.into_body(), MAX_RESPONSE_BYTES)
            .collect()
            .await
            .map_err(|e| bad(e.to_string()))?
            .to_bytes();
        let response: Response = serde_json::from_slice(&bytes).map_err(|e| bad(e.to_string()))?;
        if let Some(error) = response.error {
            return Err(ClientError::Rpc { endpoint, error });
        }
        if response
            .id
            .as_ref()
            .is_some_and(|id| *id != request.id && *id != Id::Str(String::new()))
        {
            return Err(bad("the response id does not match the request".into()));
        }
        Ok(response.result.unwrap_or(Value::Null))
    }
}

/// An error and its sources, joined: hyper's own message ("client error (Connect)") says little, the
/// cause (a refused connection, a forward proxy's `403 Forbidden`) is what an operator needs.
fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let next = cause.to_string();
        if !text.contains(&next) {
            text.push_str(": ");
            text.push_str(&next);
        }
        source = cause.source();
    }
    text
}
