//! The client side of reverse streams (SPEC §2.6): keep a `ServerCall` stream open to every peer
//! that may call us but could not dial us, announce ourselves, and answer the requests pushed down
//! it concurrently, matched by id.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tandem_proto::hyper as pb;
use tokio::sync::{Semaphore, mpsc};
use tokio::task::{AbortHandle, JoinHandle, JoinSet};
use tokio_stream::wrappers::ReceiverStream;
use tracing::{Instrument, debug, info_span, warn};

use super::client::GrpcClient;
use super::connector::Route;
use super::convert::{announcement, delivery_error, request_from_pb, response_to_pb};
use super::peer_identity::PeerIdentity;
use super::peer_server::reverse_targets;
use crate::broker::types::{HyperResponse, RequestSink};

/// How often the peer list is recomputed from the directory (the original's 60 s).
pub const REVERSE_REFRESH: Duration = Duration::from_secs(60);
/// Pushed requests handled at once on one stream; the stream is not read further until one ends.
const MAX_PUSHED_IN_FLIGHT: usize = 256;
/// Responses queued for sending on one stream.
const OUTBOUND_QUEUE: usize = 256;
/// Reconnect backoff after a stream ends: doubling from 1 s up to the refresh interval.
const MIN_BACKOFF: Duration = Duration::from_secs(1);

impl GrpcClient {
    /// Starts keeping reverse streams (at once, then every [`REVERSE_REFRESH`]) until `shutdown`
    /// resolves; pushed requests go to `sink`. The returned task ends after every stream is closed.
    pub fn start_reverse_streams(
        self: &Arc<Self>,
        sink: Arc<dyn RequestSink>,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> JoinHandle<()> {
        let client = self.clone();
        let span = info_span!("reverse_streams", operator = %self.own_name);
        tokio::spawn(supervise(client, sink, shutdown).instrument(span))
    }

    /// Serves one stream to `name` until it ends.
    async fn serve_stream(
        self: &Arc<Self>,
        sink: &Arc<dyn RequestSink>,
        name: &str,
        address: &str,
    ) -> Result<(), String> {
        let peer = self.peer(name, Route::Direct(address.to_owned()));
        let (tx, rx) = mpsc::channel(OUTBOUND_QUEUE);
        tx.send(announcement(&self.own_name))
            .await
            .map_err(|_| "stream closed before the announcement".to_string())?;
        let mut grpc = Self::grpc(&peer);
        let open = grpc.server_call(ReceiverStream::new(rx));
        let opened = tokio::time::timeout(self.timeouts.connect + self.timeouts.call, open)
            .await
            .map_err(|_| "opening the reverse stream timed out".to_string())?;
        let mut inbound = opened
            .map_err(|status| delivery_error(name, &status).to_string())?
            .into_inner();
        debug!(peer = %name, "reverse stream open");
        let slots = Arc::new(Semaphore::new(MAX_PUSHED_IN_FLIGHT));
        let mut handlers = JoinSet::new();
        loop {
            let message = tokio::select! {
                Some(_) = handlers.join_next(), if !handlers.is_empty() => continue,
                message = inbound.message() => message,
            };
            let request = match message {
                Ok(Some(request)) => request,
                Ok(None) => return Ok(()),
                Err(status) => return Err(format!("reverse stream: {status}")),
            };
            let slot = slots
                .clone()
                .acquire_owned()
                .await
                .map_err(|_| "handler slots closed".to_string())?;
            let (sink, tx) = (sink.clone(), tx.clone());
            let (deadline, server) = (self.timeouts.call, peer.server_identity());
            handlers.spawn(async move {
                let response = answer(deadline, &sink, server, request).await;
                // A closed stream drops the answer; the server fails the call when the stream ends.
                let _ = tx.send(response).await;
                drop(slot);
            });
        }
    }
}

/// The answer to one pushed request: 404 when `clientName` is not a name of the server's
/// certificate, -100 when delivery fails or takes longer than `deadline`, else the broker's response.
async fn answer(
    deadline: Duration,
    sink: &Arc<dyn RequestSink>,
    server: Option<PeerIdentity>,
    request: pb::Request,
) -> pb::Response {
    let id = request.id.clone();
    let Some(client) = server
        .as_ref()
        .and_then(|s| s.client(&request.client_name).map(|c| c.name.clone()))
    else {
        return response_to_pb(HyperResponse::error(id, 404, "no matching client found"));
    };
    let request = request_from_pb(request);
    let delivered = tokio::time::timeout(deadline, sink.deliver_request(request, client)).await;
    let response = match delivered {
        Ok(Ok(mut response)) => {
            response.id = id;
            response
        }
        Ok(Err(e)) => HyperResponse::error(id, -100, e.to_string()),
        Err(_) => HyperResponse::error(id, -100, "timeout handling the request"),
    };
    response_to_pb(response)
}

/// Recomputes the peers every [`REVERSE_REFRESH`]; one tracked task per peer.
async fn supervise(
    client: Arc<GrpcClient>,
    sink: Arc<dyn RequestSink>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    tokio::pin!(shutdown);
    let mut tasks = JoinSet::new();
    // One stream per (peer, node address): every node of a proxy operator can push to us.
    let mut running: HashMap<(String, String), AbortHandle> = HashMap::new();
    let mut tick = tokio::time::interval(REVERSE_REFRESH);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
            _ = tick.tick() => {
                let entries = tokio::select! {
                    () = &mut shutdown => break,
                    entries = client.directory.entries() => entries,
                };
                let targets = match entries {
                    Ok(entries) => reverse_targets(&client.own_name, &entries),
                    Err(e) => {
                        warn!(error = %e, "reverse streams: directory unavailable");
                        continue;
                    }
                };
                running.retain(|key, handle| {
                    let keep = !handle.is_finished() && targets.contains(key);
                    if !keep {
                        handle.abort();
                    }
                    keep
                });
                for (name, address) in targets {
                    let key = (name, address);
                    if running.contains_key(&key) {
                        continue;
                    }
                    let span = info_span!("reverse_stream", peer = %key.0, node = %key.1);
                    let task = keep_stream(client.clone(), sink.clone(), key.0.clone(), key.1.clone());
                    let handle = tasks.spawn(task.instrument(span));
                    running.insert(key, handle);
                }
            }
        }
    }
    tasks.abort_all();
    while tasks.join_next().await.is_some() {}
}

/// Keeps one stream open, reconnecting with backoff.
async fn keep_stream(
    client: Arc<GrpcClient>,
    sink: Arc<dyn RequestSink>,
    name: String,
    address: String,
) {
    let mut backoff = MIN_BACKOFF;
    loop {
        let started = Instant::now();
        match client.serve_stream(&sink, &name, &address).await {
            Ok(()) => debug!("reverse stream ended"),
            Err(reason) => debug!(%reason, "reverse stream failed"),
        }
        if started.elapsed() >= REVERSE_REFRESH {
            backoff = MIN_BACKOFF;
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(REVERSE_REFRESH);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::broker::types::{BoxFuture, ClientInfo, DeliveryError, HyperRequest};
    use tandem_directory::entry::DirectoryEntry;

    /// Echoes the caller's name; fails for method `x.fail`; never answers `x.hang`.
    struct Sink;
    impl RequestSink for Sink {
        fn deliver_request(
            &self,
            request: HyperRequest,
            caller: tandem_types::OperatorName,
        ) -> BoxFuture<'_, Result<HyperResponse, DeliveryError>> {
            Box::pin(async move {
                match request.method.as_str() {
                    "x.fail" => Err(DeliveryError::NoChannel),
                    "x.hang" => std::future::pending().await,
                    _ => {
                        let mut result = serde_json::Map::new();
                        result.insert("client".into(), caller.as_str().into());
                        Ok(HyperResponse::result("ignored", result))
                    }
                }
            })
        }
    }

    fn server(names: &[&str]) -> Option<PeerIdentity> {
        let clients = names
            .iter()
            .map(|n| ClientInfo {
                name: n.parse().unwrap(),
                entry: DirectoryEntry::new(*n),
            })
            .collect();
        Some(PeerIdentity {
            addr: None,
            clients: Arc::new(clients),
        })
    }

    fn pushed(method: &str, client_name: &str) -> pb::Request {
        pb::Request {
            method: method.into(),
            params: None,
            id: format!("{method}(7)"),
            client_name: client_name.into(),
        }
    }

    #[tokio::test]
    async fn pushed_requests_are_answered_by_id_with_the_original_codes() {
        let sink: Arc<dyn RequestSink> = Arc::new(Sink);
        let d = Duration::from_millis(50);
        let ok = answer(d, &sink, server(&["hd-1"]), pushed("x.echo", "hd-1")).await;
        assert_eq!(ok.id, "x.echo(7)", "answered with the pushed id");
        assert!(ok.error.is_none());
        let unknown = answer(d, &sink, server(&["hd-1"]), pushed("x.echo", "hd-9")).await;
        assert_eq!(
            unknown.error.map(|e| (e.code, e.message)),
            Some((404, "no matching client found".into()))
        );
        let none = answer(d, &sink, None, pushed("x.echo", "hd-1")).await;
        assert_eq!(
            none.error.map(|e| e.code),
            Some(404),
            "no verified server identity"
        );
        let failed = answer(d, &sink, server(&["hd-1"]), pushed("x.fail", "")).await;
        assert_eq!(failed.error.map(|e| e.code), Some(-100));
        let slow = answer(d, &sink, server(&["hd-1"]), pushed("x.hang", "hd-1")).await;
        assert_eq!(slow.error.map(|e| e.code), Some(-100));
    }
}
