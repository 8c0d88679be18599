//! [`MessageBroker`]: routes every request on every hop exactly as SPEC §2.4 describes.

use crate::broker::ChannelError;
use std::sync::{Arc, OnceLock, PoisonError, RwLock};
use std::time::{Duration, Instant};

use serde_json::Value;
use tracing::{Instrument, debug, debug_span, warn};

use super::entry_json::EntryJson;
use super::guard::InTransit;
use super::internal::{self, ConnectionRequestHandler};
use super::pending::PendingReplies;
use super::types::{
    Address, BoxFuture, Channel, ClientInfo, DeliveryError, DirectorySource, HyperRequest,
    HyperResponse, RequestSink,
};
use tandem_contracts::CLIENT_KEY;
use tandem_contracts::hyper_node::Method as NodeMethod;
use tandem_directory::permissions::can_call;
use tandem_net::metrics::RpcMetrics;
use tandem_types::OperatorName;

/// The `_ping` version when none is configured.
pub const DEFAULT_VERSION: &str = env!("CARGO_PKG_VERSION");

/// Most `_connectionRequest` handlers (one per proxy-capable channel; the original has one).
pub const MAX_CONNECTION_HANDLERS: usize = 8;

/// Why the broker could not be set up.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BrokerError {
    /// A second channel of a type (the original allows one per type).
    #[error("channel of same type already exists: {0}")]
    DuplicateChannel(&'static str),
    /// More than [`MAX_CONNECTION_HANDLERS`] handlers.
    #[error("too many connection request handlers (at most {MAX_CONNECTION_HANDLERS})")]
    TooManyHandlers,
}

impl BrokerError {
    /// A stable label for metrics and logs.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::DuplicateChannel(_) => "duplicate_channel",
            Self::TooManyHandlers => "too_many_handlers",
        }
    }
}

type ChannelList = Arc<Vec<Arc<dyn Channel>>>;
type HandlerList = Arc<Vec<Arc<dyn ConnectionRequestHandler>>>;

/// The message broker of one operator.
pub struct MessageBroker {
    name: OperatorName,
    version: String,
    directory: Arc<dyn DirectorySource>,
    /// Deadline of one channel delivery (settings `timeouts.call`).
    call_timeout: Duration,
    // Read on every request (cloning the Arc), written only while the server is assembled.
    channels: RwLock<ChannelList>,
    handlers: RwLock<HandlerList>,
    in_transit: Arc<InTransit>,
    pending: Arc<PendingReplies>,
    /// Calls by method and outcome, when the server exports metrics (set once).
    metrics: OnceLock<RpcMetrics>,
    /// The current snapshot's entries as JSON (`_client`, `_ping`'s `serverInfo`).
    entry_json: EntryJson,
}

impl std::fmt::Debug for MessageBroker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let channels: Vec<_> = self.channels().iter().map(|c| c.type_name()).collect();
        f.debug_struct("MessageBroker")
            .field("name", &self.name)
            .field("channels", &channels)
            .finish_non_exhaustive()
    }
}

impl MessageBroker {
    /// A broker for operator `name` with no channels yet.
    pub fn new(
        name: OperatorName,
        directory: Arc<dyn DirectorySource>,
        call_timeout: Duration,
    ) -> Self {
        Self {
            name,
            version: DEFAULT_VERSION.to_owned(),
            directory,
            call_timeout,
            channels: RwLock::new(Arc::new(Vec::new())),
            handlers: RwLock::new(Arc::new(Vec::new())),
            in_transit: Arc::new(InTransit::default()),
            pending: PendingReplies::new(),
            metrics: OnceLock::new(),
            entry_json: EntryJson::default(),
        }
    }

    /// Sets the version `_ping` reports.
    pub fn with_version(mut self, version: impl Into<String>) -> Self {
        self.version = version.into();
        self
    }

    /// Records every delivery in `metrics` (method from its fixed list or `other`, outcome from
    /// `ok`, `denied`, `failed`, `error` or the delivery error's kind); false if already set.
    pub fn set_metrics(&self, metrics: RpcMetrics) -> bool {
        self.metrics.set(metrics).is_ok()
    }

    /// The operator this broker serves.
    pub fn name(&self) -> &str {
        self.name.as_str()
    }

    /// The operator this broker serves, as the name other roles see.
    pub fn operator(&self) -> &OperatorName {
        &self.name
    }

    /// The directory it routes with.
    pub fn directory(&self) -> &Arc<dyn DirectorySource> {
        &self.directory
    }

    /// The table of asynchronous replies (`respond`), shared with `jsonrpc_client` and the gateway.
    pub fn pending(&self) -> &Arc<PendingReplies> {
        &self.pending
    }

    /// Adds an outbound channel after the existing ones (settings order is delivery order).
    pub fn add_channel(&self, channel: Arc<dyn Channel>) -> Result<(), BrokerError> {
        let mut channels = self
            .channels
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        if channels
            .iter()
            .any(|c| c.type_name() == channel.type_name())
        {
            return Err(BrokerError::DuplicateChannel(channel.type_name()));
        }
        let mut next = Vec::clone(&channels);
        next.push(channel);
        *channels = Arc::new(next);
        Ok(())
    }

    /// Adds a `_connectionRequest` handler (the proxy path); handlers are asked in order.
    pub fn add_connection_handler(
        &self,
        handler: Arc<dyn ConnectionRequestHandler>,
    ) -> Result<(), BrokerError> {
        let mut handlers = self
            .handlers
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        if handlers.len() >= MAX_CONNECTION_HANDLERS {
            return Err(BrokerError::TooManyHandlers);
        }
        let mut next = Vec::clone(&handlers);
        next.push(handler);
        *handlers = Arc::new(next);
        Ok(())
    }

    /// How many requests are being delivered right now.
    pub fn in_flight(&self) -> usize {
        self.in_transit.len()
    }

    /// The channels in delivery order.
    pub fn channels(&self) -> ChannelList {
        self.channels
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn handlers(&self) -> HandlerList {
        self.handlers
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// SPEC §2.4, steps 1–9 (counted in the broker's metrics when set).
    pub async fn deliver(
        &self,
        request: HyperRequest,
        client: ClientInfo,
    ) -> Result<HyperResponse, DeliveryError> {
        self.deliver_from(request, client.name).await
    }

    /// [`MessageBroker::deliver`] for the authenticated last hop `caller`: its entry comes from
    /// the directory snapshot (as in `deliver`), so no entry needs to be passed or copied.
    pub async fn deliver_from(
        &self,
        request: HyperRequest,
        caller: OperatorName,
    ) -> Result<HyperResponse, DeliveryError> {
        let Some(metrics) = self.metrics.get() else {
            return self.route(request, caller).await;
        };
        let started = Instant::now();
        let method = Address::parse(&request.id).map(|a| a.method);
        let result = self.route(request, caller).await;
        metrics.observe(
            method.as_deref().unwrap_or("other"),
            outcome(&result),
            started.elapsed(),
        );
        result
    }

    async fn route(
        &self,
        mut request: HyperRequest,
        name: OperatorName,
    ) -> Result<HyperResponse, DeliveryError> {
        let _transit = self.in_transit.enter(&request.id)?;
        let entries = self.directory.entries().await?;
        let caller = entries
            .get(name.as_str())
            .ok_or_else(|| DeliveryError::UnknownOperator(name.to_string()))?;
        let own = entries
            .get(self.name.as_str())
            .ok_or_else(|| DeliveryError::UnknownOperator(self.name.to_string()))?;
        let client_value = self
            .entry_json
            .client(&entries, &name, caller)
            .map_err(|e| ChannelError::ClientInfo(e.to_string()))?;
        request
            .params
            .insert(CLIENT_KEY.into(), Value::clone(&client_value));
        let address = Address::parse(&request.id).ok_or(DeliveryError::BadAddress)?;
        let recipient = entries
            .get(&address.operator)
            .ok_or_else(|| DeliveryError::UnknownOperator(address.operator.clone()))?;
        if own.name != caller.name && !can_call(caller, own, &address.method) {
            let message = format!(
                "Permission denied for method '{}' and client '{}'",
                address.method, name
            );
            warn!(method = %address.method, client = %name, "permission denied");
            return Ok(HyperResponse::error(request.id, 403, message));
        }
        if address.operator == own.name && address.method == NodeMethod::Ping.as_str() {
            return self.ping(&address, request.params, own, &entries);
        }
        // Channels and handlers take the caller with its entry: copied only past `_ping`.
        let client = ClientInfo {
            name,
            entry: caller.clone(),
        };
        if address.operator == own.name
            && let Some(response) = self
                .internal(&address, &request, own, &entries, &client)
                .await?
        {
            return Ok(response);
        }
        self.through_channels(&address, recipient, request, client)
            .await
    }

    /// `_ping` with the params moved into the answer and this node's entry as cached JSON.
    fn ping(
        &self,
        address: &Address,
        params: serde_json::Map<String, Value>,
        own: &tandem_directory::entry::DirectoryEntry,
        entries: &super::types::Entries,
    ) -> Result<HyperResponse, DeliveryError> {
        let server_info = self
            .entry_json
            .entry(entries, own)
            .map_err(|e| internal::internal(format!("serverInfo: {e}")))?;
        Ok(internal::ping(
            address,
            params,
            Value::clone(&server_info),
            &self.version,
        ))
    }

    async fn internal(
        &self,
        address: &Address,
        request: &HyperRequest,
        own: &tandem_directory::entry::DirectoryEntry,
        entries: &super::types::Entries,
        caller: &ClientInfo,
    ) -> Result<Option<HyperResponse>, DeliveryError> {
        let Ok(method) = address.method.parse::<NodeMethod>() else {
            return Ok(None);
        };
        match method {
            // `route` answers `_ping` before this, moving the params instead of copying them.
            NodeMethod::Ping => self
                .ping(address, request.params.clone(), own, entries)
                .map(Some),
            NodeMethod::Directory => internal::directory(address, request, entries).map(Some),
            NodeMethod::ConnectionRequest => {
                for handler in self.handlers().iter() {
                    if let Some(response) = handler
                        .handle_connection_request(address, request, caller)
                        .await?
                    {
                        return Ok(Some(response));
                    }
                }
                Err(internal::internal("no channel accepted the request".into()))
            }
        }
    }

    async fn through_channels(
        &self,
        address: &Address,
        recipient: &tandem_directory::entry::DirectoryEntry,
        request: HyperRequest,
        client: ClientInfo,
    ) -> Result<HyperResponse, DeliveryError> {
        let channels = self.channels();
        let Some((index, channel)) = channels
            .iter()
            .enumerate()
            .find(|(_, c)| c.can_deliver_to(address, recipient))
        else {
            return Err(DeliveryError::NoChannel);
        };
        let id = request.id.clone();
        let span = debug_span!("deliver", channel = channel.type_name(), to = %address.operator, method = %address.method);
        let delivery = tokio::time::timeout(self.call_timeout, channel.deliver(request, client))
            .instrument(span);
        let failure = match delivery.await {
            Ok(Ok(response)) => return Ok(response),
            Ok(Err(e)) => e,
            Err(_) => DeliveryError::Timeout {
                peer: address.operator.clone(),
                seconds: self.call_timeout.as_secs_f64(),
            },
        };
        debug!(channel = index, kind = failure.kind(), error = %failure, "channel failed");
        let message =
            format!("Channel {index} encountered an error delivering the message: {failure}");
        Ok(HyperResponse::error(id, 500, message))
    }
}

/// The outcome label of a delivery: `ok`, `denied` (403), `failed` (a channel's 500), `error`
/// (any other error response) or the [`DeliveryError`]'s kind: a fixed, small set.
fn outcome(result: &Result<HyperResponse, DeliveryError>) -> &'static str {
    match result {
        Ok(response) => match &response.error {
            None => "ok",
            Some(e) if e.code == 403 => "denied",
            Some(e) if e.code == 500 => "failed",
            Some(_) => "error",
        },
        Err(e) => e.kind(),
    }
}

impl RequestSink for MessageBroker {
    fn deliver_request(
        &self,
        request: HyperRequest,
        caller: OperatorName,
    ) -> BoxFuture<'_, Result<HyperResponse, DeliveryError>> {
        Box::pin(self.deliver_from(request, caller))
    }
}

#[cfg(test)]
#[path = "message_broker_tests.rs"]
mod tests;
