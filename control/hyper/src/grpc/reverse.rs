//! The server side of reverse `ServerCall` streams (SPEC §2.6): operators that cannot be dialed keep a
//! stream open to us; we push `Request`s down it and match the `Response`s that come back **by id**,
//! so many calls are in flight on one stream at once (the original allowed one at a time).
//!
//! Offered to the broker as the `grpc_server` [`Channel`].

use crate::broker::ChannelError;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tandem_proto::hyper as pb;
use tokio::sync::{Notify, mpsc, oneshot, watch};
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Status, Streaming};
use tracing::{Instrument, debug, debug_span};

use super::convert::{request_to_pb, response_from_pb};
use super::tasks::Tasks;
use crate::broker::types::{
    Address, BoxFuture, Channel, ClientInfo, DeliveryError, HyperRequest, HyperResponse,
};
use tandem_directory::entry::DirectoryEntry;

/// Calls in flight on one reverse stream; past it deliveries fail at once (back-pressure on a
/// peer that stops answering, and a bound on the pending map).
pub const MAX_PENDING_PER_STREAM: usize = 1024;
/// Requests queued for sending on one stream (HTTP/2 flow control does the rest).
const OUTBOUND_QUEUE: usize = 256;

/// The stream of requests pushed to one reverse client (tonic's response stream).
pub(crate) type PushStream = ReceiverStream<Result<pb::Request, Status>>;

type Pending = HashMap<String, oneshot::Sender<pb::Response>>;

/// One connected reverse client.
struct ReverseClient {
    name: String,
    generation: u64,
    outbound: Mutex<Option<mpsc::Sender<Result<pb::Request, Status>>>>,
    pending: Mutex<Pending>,
    stop: Notify,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl ReverseClient {
    /// Ends the stream: no more sends, every pending call fails ("stream lost").
    fn close(&self) {
        lock(&self.outbound).take();
        lock(&self.pending).clear();
        self.stop.notify_one();
    }
}

/// Removes a pending id when the call ends, however it ends (answer, deadline, cancellation).
struct PendingGuard<'a> {
    client: &'a ReverseClient,
    id: String,
}

impl Drop for PendingGuard<'_> {
    fn drop(&mut self) {
        lock(&self.client.pending).remove(&self.id);
    }
}

/// The registry of reverse clients by operator name; the `grpc_server` channel.
pub struct ReverseChannel {
    own_name: String,
    call_timeout: Duration,
    clients: Mutex<HashMap<String, Arc<ReverseClient>>>,
    generation: AtomicU64,
    changed: watch::Sender<u64>,
    tasks: Tasks,
}

impl std::fmt::Debug for ReverseChannel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReverseChannel")
            .field("own_name", &self.own_name)
            .field("connected", &self.connected())
            .finish()
    }
}

impl ReverseChannel {
    /// An empty registry; deliveries wait at most `call_timeout` for the answer.
    pub fn new(own_name: impl Into<String>, call_timeout: Duration) -> Self {
        Self {
            own_name: own_name.into(),
            call_timeout,
            clients: Mutex::new(HashMap::new()),
            generation: AtomicU64::new(0),
            changed: watch::channel(0).0,
            tasks: Tasks::new(),
        }
    }

    /// Operators connected right now (sorted).
    pub fn connected(&self) -> Vec<String> {
        let mut names: Vec<String> = lock(&self.clients).keys().cloned().collect();
        names.sort();
        names
    }

    /// Whether `name` holds a reverse stream.
    pub fn is_connected(&self, name: &str) -> bool {
        lock(&self.clients).contains_key(name)
    }

    /// Waits until `name` holds a reverse stream, at most `within`; `false` on timeout.
    pub async fn wait_for(&self, name: &str, within: Duration) -> bool {
        self.wait_until(name, true, within).await
    }

    /// Waits until `name` holds no reverse stream, at most `within`; `false` on timeout.
    pub async fn wait_gone(&self, name: &str, within: Duration) -> bool {
        self.wait_until(name, false, within).await
    }

    async fn wait_until(&self, name: &str, connected: bool, within: Duration) -> bool {
        let mut changes = self.changed.subscribe();
        tokio::time::timeout(within, async {
            while self.is_connected(name) != connected {
                if changes.changed().await.is_err() {
                    std::future::pending::<()>().await;
                }
            }
        })
        .await
        .is_ok()
    }

    /// Registers the stream `inbound` of `name` (replacing an older stream of that name) and returns
    /// the stream of requests to push to it. The responses are read by a tracked task.
    pub(crate) fn register(
        self: &Arc<Self>,
        name: String,
        inbound: Streaming<pb::Response>,
    ) -> PushStream {
        let (tx, rx) = mpsc::channel(OUTBOUND_QUEUE);
        let client = Arc::new(ReverseClient {
            name: name.clone(),
            generation: self.generation.fetch_add(1, Ordering::Relaxed),
            outbound: Mutex::new(Some(tx)),
            pending: Mutex::new(HashMap::new()),
            stop: Notify::new(),
        });
        if let Some(old) = lock(&self.clients).insert(name.clone(), client.clone()) {
            debug!(operator = %name, "reverse stream replaced by a newer one");
            old.close();
        }
        self.changed.send_modify(|n| *n += 1);
        let this = self.clone();
        let span = debug_span!("reverse_stream", operator = %name);
        self.tasks
            .spawn(async move { this.read_responses(client, inbound).await }.instrument(span));
        ReceiverStream::new(rx)
    }

    async fn read_responses(
        &self,
        client: Arc<ReverseClient>,
        mut inbound: Streaming<pb::Response>,
    ) {
        loop {
            let message = tokio::select! {
                () = client.stop.notified() => break,
                message = inbound.message() => message,
            };
            match message {
                Ok(Some(response)) => {
                    let waiter = lock(&client.pending).remove(&response.id);
                    match waiter {
                        Some(waiter) => {
                            let _ = waiter.send(response);
                        }
                        None => debug!(id = %response.id, "reverse response for no pending call"),
                    }
                }
                Ok(None) => break,
                Err(status) => {
                    debug!(%status, "reverse stream failed");
                    break;
                }
            }
        }
        self.unregister(&client);
    }

    fn unregister(&self, client: &Arc<ReverseClient>) {
        client.close();
        let mut clients = lock(&self.clients);
        if clients
            .get(&client.name)
            .is_some_and(|c| c.generation == client.generation)
        {
            clients.remove(&client.name);
            drop(clients);
            self.changed.send_modify(|n| *n += 1);
            debug!(operator = %client.name, "reverse stream closed");
        }
    }

    /// Ends every stream and stops the reader tasks (server shutdown).
    pub async fn close_all(&self) {
        let clients: Vec<_> = lock(&self.clients).drain().map(|(_, c)| c).collect();
        for client in clients {
            client.close();
        }
        self.changed.send_modify(|n| *n += 1);
        self.tasks.shutdown().await;
    }

    async fn push(&self, request: HyperRequest) -> Result<HyperResponse, DeliveryError> {
        let address = Address::parse(&request.id).ok_or(DeliveryError::BadAddress)?;
        let client = lock(&self.clients)
            .get(&address.operator)
            .cloned()
            .ok_or(ChannelError::ClientDisconnected)?;
        let (tx, rx) = oneshot::channel();
        let guard = {
            let mut pending = lock(&client.pending);
            if pending.len() >= MAX_PENDING_PER_STREAM {
                return Err(ChannelError::ReverseStreamFull {
                    client: client.name.clone(),
                }
                .into());
            }
            if pending.contains_key(&request.id) {
                return Err(DeliveryError::Loop(request.id));
            }
            pending.insert(request.id.clone(), tx);
            PendingGuard {
                client: &client,
                id: request.id.clone(),
            }
        };
        let sender = lock(&client.outbound)
            .clone()
            .ok_or(ChannelError::ReverseStreamLost)?;
        let mut message = request_to_pb(request);
        message.client_name = self.own_name.clone();
        sender
            .send(Ok(message))
            .await
            .map_err(|_| ChannelError::ReverseStreamLost)?;
        let response = rx
            .await
            .map_err(|_| ChannelError::ReverseStreamLostBeforeAnswer)?;
        drop(guard);
        Ok(response_from_pb(response))
    }
}

impl Channel for ReverseChannel {
    fn type_name(&self) -> &'static str {
        "grpc_server"
    }

    fn can_deliver_to(&self, address: &Address, _recipient: &DirectoryEntry) -> bool {
        address.operator != self.own_name && self.is_connected(&address.operator)
    }

    fn deliver(
        &self,
        request: HyperRequest,
        _client: ClientInfo,
    ) -> BoxFuture<'_, Result<HyperResponse, DeliveryError>> {
        Box::pin(async move {
            let peer = Address::parse(&request.id)
                .map(|a| a.operator)
                .unwrap_or_default();
            match tokio::time::timeout(self.call_timeout, self.push(request)).await {
                Ok(result) => result,
                Err(_) => Err(DeliveryError::Timeout {
                    peer,
                    seconds: self.call_timeout.as_secs_f64(),
                }),
            }
        })
    }
}
