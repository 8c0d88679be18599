//! The `jsonrpc_client` channel (SPEC §2.7): delivers requests addressed to this operator to the
//! local application's JSON-RPC endpoint, and supports asynchronous answers (see [`super::pending`]).

use crate::broker::ChannelError;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Uri, header};
use http_body_util::{BodyExt, Full, Limited};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::{Value, json};
use tandem_net::http::Outbound;
use tokio::time::Instant;
use tracing::debug;

use super::pending::{ASYNC_MARKER, PendingReplies};
use super::types::{
    Address, BoxFuture, Channel, ClientInfo, DeliveryError, HyperError, HyperRequest, HyperResponse,
};
use super::wrap::to_hyper_struct;
use tandem_directory::entry::DirectoryEntry;
use tandem_settings::hyper::JsonRpcClientSettings;

/// The largest answer read from the application, in bytes: the reply must fit a 4 MiB gRPC message.
pub const MAX_REPLY_BYTES: usize = 4 * 1024 * 1024;

/// Why the channel could not be built from its settings.
#[derive(Debug, thiserror::Error)]
pub enum JsonRpcClientError {
    /// `endpoint` is unusable.
    #[error("jsonrpc_client endpoint {endpoint:?}: {reason}")]
    Endpoint {
        /// The endpoint as configured.
        endpoint: String,
        /// What is wrong.
        reason: String,
    },
    /// The TLS settings could not be loaded, or the forward proxy is unusable.
    #[error("jsonrpc_client: {0}")]
    Connector(#[from] tandem_net::http::ConnectorError),
}

impl JsonRpcClientError {
    /// A stable label for metrics and logs.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Endpoint { .. } => "endpoint",
            Self::Connector(_) => "connector",
        }
    }
}

/// Delivery to the local application.
pub struct JsonRpcClientChannel {
    own_name: String,
    endpoint: Option<Uri>,
    client: Client<HttpsConnector<Outbound>, Full<Bytes>>,
    timeout: Duration,
    pending: Arc<PendingReplies>,
}

impl JsonRpcClientChannel {
    /// A channel for operator `own_name`; every delivery (including an asynchronous wait) ends within
    /// `timeout`. `pending` is the broker's table ([`super::MessageBroker::pending`]).
    pub fn new(
        own_name: &str,
        settings: &JsonRpcClientSettings,
        timeout: Duration,
        pending: Arc<PendingReplies>,
    ) -> Result<Self, JsonRpcClientError> {
        let endpoint = settings
            .endpoint
            .as_deref()
            .map(parse_endpoint)
            .transpose()?;
        let connector =
            tandem_net::http::https_connector(settings.tls.as_ref(), settings.proxy_url.as_ref())?;
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(30))
            .build(connector);
        Ok(Self {
            own_name: own_name.to_owned(),
            endpoint,
            client,
            timeout,
            pending,
        })
    }

    async fn deliver_now(&self, request: HyperRequest) -> Result<HyperResponse, DeliveryError> {
        let deadline = Instant::now() + self.timeout;
        let endpoint = self.endpoint.as_ref().ok_or(ChannelError::NoEndpoint)?;
        let method = request
            .method
            .rsplit_once('.')
            .map(|(_, m)| m)
            .ok_or(ChannelError::InvalidMethod)?;
        // Registered before the POST so that a `respond` overtaking the HTTP answer is kept.
        let pending = self
            .pending
            .register(&request.id)
            .map_err(ChannelError::Pending)?;
        let body =
            json!({"jsonrpc": "2.0", "method": method, "params": request.params, "id": request.id});
        let timeout = || DeliveryError::Timeout {
            peer: self.own_name.clone(),
            seconds: self.timeout.as_secs_f64(),
        };
        let answer = tokio::time::timeout_at(deadline, self.post(endpoint, &body))
            .await
            .map_err(|_| timeout())??;
        match reply(&request.id, answer)? {
            Reply::Now(response) => Ok(response),
            Reply::Later => {
                debug!(id = %request.id, "the application will respond asynchronously");
                let response = tokio::time::timeout_at(deadline, pending.wait())
                    .await
                    .map_err(|_| timeout())?;
                let response = response.ok_or(ChannelError::ReplyTableDropped)?;
                Ok(HyperResponse {
                    id: request.id,
                    ..response
                })
            }
        }
    }

    async fn post(&self, endpoint: &Uri, body: &Value) -> Result<Value, DeliveryError> {
        let failed = |stage: &'static str, e: &dyn std::fmt::Display| {
            DeliveryError::Channel(ChannelError::JsonRpc {
                endpoint: endpoint.to_string(),
                stage,
                detail: e.to_string(),
            })
        };
        let bytes = serde_json::to_vec(body).map_err(|e| failed("encoding", &e))?;
        let http_request = Request::post(endpoint.clone())
            .header(header::CONTENT_TYPE, "application/json")
            .header(header::ACCEPT, "application/json")
            .body(Full::new(Bytes::from(bytes)))
            .map_err(|e| failed("request", &e))?;
        let response = self
            .client
            .request(http_request)
            .await
            .map_err(|e| failed("transport", &format!("{e:#}")))?;
        let bytes = Limited::new(response.into_body(), MAX_REPLY_BYTES)
            .collect()
            .await
            .map_err(|e| failed("reading the answer", &e))?
            .to_bytes();
        serde_json::from_slice(&bytes).map_err(|e| failed("the answer is not JSON", &e))
    }
}

enum Reply {
    Now(HyperResponse),
    Later,
}

/// Maps the application's JSON-RPC answer (HTTP status ignored, as the original): an error object
/// becomes a [`HyperError`]; a result is wrapped as `{"_": value}` unless it is an object; a result
/// `{"_async": true}` means the answer comes later through `respond`.
fn reply(id: &str, answer: Value) -> Result<Reply, DeliveryError> {
    let Value::Object(mut answer) = answer else {
        return Err(ChannelError::NotJsonRpcResponse.into());
    };
    if let Some(error) = answer.remove("error").filter(|e| !e.is_null()) {
        return Ok(Reply::Now(HyperResponse {
            id: id.to_owned(),
            result: None,
            error: Some(error_object(error)?),
        }));
    }
    let result = answer.remove("result").unwrap_or(Value::Null);
    if result.get(ASYNC_MARKER) == Some(&Value::Bool(true)) {
        return Ok(Reply::Later);
    }
    Ok(Reply::Now(HyperResponse::result(
        id,
        to_hyper_struct(result),
    )))
}

/// A JSON-RPC error object from the application, as a [`HyperError`].
pub(crate) fn error_object(error: Value) -> Result<HyperError, DeliveryError> {
    let bad = || DeliveryError::Channel(ChannelError::BadErrorObject);
    let Value::Object(mut error) = error else {
        return Err(bad());
    };
    let code = error.get("code").and_then(Value::as_i64).ok_or_else(bad)?;
    let message = match error.remove("message") {
        Some(Value::String(m)) => m,
        None | Some(Value::Null) => String::new(),
        Some(_) => return Err(bad()),
    };
    let data = error
        .remove("data")
        .filter(|d| !d.is_null())
        .map(to_hyper_struct);
    Ok(HyperError {
        code,
        message,
        data,
    })
}

impl Channel for JsonRpcClientChannel {
    fn type_name(&self) -> &'static str {
        "jsonrpc_client"
    }

    fn can_deliver_to(&self, address: &Address, _recipient: &DirectoryEntry) -> bool {
        address.operator == self.own_name
    }

    fn deliver(
        &self,
        request: HyperRequest,
        _client: ClientInfo,
    ) -> BoxFuture<'_, Result<HyperResponse, DeliveryError>> {
        Box::pin(self.deliver_now(request))
    }
}

fn parse_endpoint(endpoint: &str) -> Result<Uri, JsonRpcClientError> {
    let bad = |reason: String| JsonRpcClientError::Endpoint {
        endpoint: endpoint.to_owned(),
        reason,
    };
    let uri: Uri = endpoint.parse().map_err(|e| bad(format!("{e}")))?;
    match uri.scheme_str() {
        Some("http" | "https") if uri.authority().is_some() => Ok(uri),
        _ => Err(bad("must be an http:// or https:// URL with a host".into())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now(v: Value) -> HyperResponse {
        match reply("hd-1.echo(1)", v).unwrap() {
            Reply::Now(r) => r,
            Reply::Later => panic!("expected an answer"),
        }
    }

    #[test]
    fn answers_map_like_the_original() {
        let r = now(json!({"jsonrpc": "2.0", "result": {"a": 1}, "id": "hd-1.echo(1)"}));
        assert_eq!(r.result.unwrap()["a"], 1);
        let r = now(json!({"result": [1, 2]}));
        assert_eq!(Value::Object(r.result.unwrap()), json!({"_": [1, 2]}));
        let r = now(json!({"error": {"code": -5, "message": "no", "data": "why"}}));
        let e = r.error.unwrap();
        assert_eq!((e.code, e.message.as_str()), (-5, "no"));
        assert_eq!(Value::Object(e.data.unwrap()), json!({"_": "why"}));
        assert!(matches!(
            reply("x", json!({"result": {"_async": true}})).unwrap(),
            Reply::Later
        ));
        assert!(matches!(
            reply("x", json!({"result": {"_async": false}})).unwrap(),
            Reply::Now(_)
        ));
        assert!(reply("x", json!([1])).is_err());
        assert!(reply("x", json!({"error": {"message": "no code"}})).is_err());
    }
}
