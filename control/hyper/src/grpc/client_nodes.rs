//! One call of the `grpc_client` over the nodes of its recipient: every usable `grpc_server` channel
//! of the entry is a node with its own cached channel; the call goes to the node [`plan`] puts
//! first (power of two choices on calls in flight), and a node that fails at the transport (a
//! refused dial, a broken channel: [`is_node_failure`]) is marked down and the call tries the next
//! one, all within the call's one deadline. A recipient with one node (every ordinary peer, and a
//! peer behind a proxy: its proxy picks the node) is called on that node only. The request is
//! encoded once ([`Encoded`]); every try, on any node, sends the same bytes (no copy of the
//! request tree).
//!
//! A call whose connection broke after the request was sent may have run on the failed node; the
//! retry runs it again on another node. The calls that cross nodes are idempotent or harmless to
//! repeat (`requestConnection` issues a fresh pair; the unused one expires with its TTL).
//!
//! Within one node, a try that provably never reached the server ([`never_sent`]: the cached
//! connection closed or went away just as the call was dispatched, or the server refused the
//! stream) is sent again on the same node, as gRPC's transparent retry does: at most
//! [`MAX_TRANSPARENT_RETRIES`] times, only while the deadline leaves time, holding the call's slot
//! (tonic's channel reconnects underneath). It does not mark the node down; once its retries are
//! spent, a call of a recipient with several nodes may still try the next node (it never ran).
//! Retries are counted (`hyper_grpc_transparent_retries_total`, the `retries` field of the
//! `grpc_attempt` debug span).

use std::sync::Arc;
use std::time::{Duration, Instant};

use tracing::{Instrument, debug};

use super::client::{GrpcClient, Peer};
use super::convert::{
    delivery_error, is_node_failure, never_sent, request_to_pb, response_from_pb,
};
use super::nodes::plan;
use super::peer_server::GrpcServerEntry;
use crate::broker::ChannelError;
use crate::broker::types::{Address, DeliveryError, HyperRequest, HyperResponse};
use tandem_proto::MAX_MESSAGE_BYTES;
use tandem_proto::codec::Encoded;

/// Most nodes one call tries: a dead node costs a refused dial (or at worst a connect timeout),
/// so a few tries cover a node or two failing at once without a call walking a whole fleet.
pub const MAX_NODE_ATTEMPTS: usize = 3;
/// Most times one call is sent again on the same node after a try that never reached the server
/// (gRPC's transparent retry): a GOAWAY or a closed connection costs one reconnect, so two cover
/// a restart racing the call, and a server refusing every stream cannot make a call loop.
pub const MAX_TRANSPARENT_RETRIES: u32 = 2;
/// Slack for timer rounding when judging whether the deadline still leaves time (as in `call`).
const DEADLINE_SLACK: Duration = Duration::from_millis(10);

/// How one try on a node failed.
struct Failure {
    error: DeliveryError,
    /// Another node may be tried: the node failed at the transport (it is marked down), or the
    /// call never reached it.
    next_node: bool,
}

impl GrpcClient {
    /// The recipient's nodes as cached channels (entry order), or why it has none we may use.
    fn nodes(
        &self,
        operator: &str,
        servers: &[GrpcServerEntry],
    ) -> Result<Vec<Arc<Peer>>, DeliveryError> {
        let mut nodes = Vec::with_capacity(servers.len());
        let mut refusal = None;
        for server in servers.iter().filter(|s| !s.internal) {
            match self.route(server) {
                Ok(route) if !nodes.iter().any(|p: &Arc<Peer>| p.route == route) => {
                    nodes.push(self.peer(operator, route));
                }
                Ok(_) => {}
                Err(e) => refusal = Some(e),
            }
        }
        if nodes.is_empty() {
            return Err(refusal.unwrap_or(ChannelError::NoGrpcServer.into()));
        }
        Ok(nodes)
    }

    /// The call on the recipient's nodes (see the module docs).
    pub(crate) async fn exchange(
        &self,
        address: &Address,
        request: HyperRequest,
        started: Instant,
    ) -> Result<HyperResponse, DeliveryError> {
        let entries = self.directory.entries().await?;
        let recipient = entries
            .get(&address.operator)
            .ok_or_else(|| DeliveryError::UnknownOperator(address.operator.clone()))?;
        let servers = GrpcServerEntry::all(recipient);
        let nodes = self.nodes(&address.operator, &servers)?;
        let mut message = request_to_pb(request);
        message.client_name = self.own_name.clone();
        let message = Encoded::of(&message);
        if message.len() > MAX_MESSAGE_BYTES {
            // tonic would refuse it only after sending the headers, as a reset stream: refuse it
            // here, unsent, with a clear error.
            let status = tonic::Status::out_of_range(format!(
                "encoded request of {} bytes is over the {MAX_MESSAGE_BYTES}-byte limit",
                message.len()
            ));
            return Err(delivery_error(&address.operator, &status));
        }
        if let [only] = nodes.as_slice() {
            return self
                .attempt(only, &message, started)
                .await
                .map_err(|f| f.error);
        }
        let order = {
            let views: Vec<_> = nodes.iter().map(|p| p.view()).collect();
            plan(&views, Instant::now(), |n| rand::random_range(0..n))
        };
        let mut last = None;
        for &index in order.iter().take(MAX_NODE_ATTEMPTS) {
            if last.is_some() && started.elapsed() >= self.timeouts.call {
                break;
            }
            let node = &nodes[index];
            match self.attempt(node, &message, started).await {
                Ok(response) => return Ok(response),
                Err(Failure {
                    error,
                    next_node: true,
                }) => {
                    debug!(peer = %address.operator, node = ?node.route, error = %error, "node failed; trying the next");
                    last = Some(error);
                }
                Err(failure) => return Err(failure.error),
            }
        }
        Err(last.unwrap_or(ChannelError::NoGrpcServer.into()))
    }

    /// One try on `node`, with its transparent retries (see the module docs).
    async fn attempt(
        &self,
        node: &Peer,
        message: &Encoded,
        started: Instant,
    ) -> Result<HyperResponse, Failure> {
        node.update_health(|h| h.claim_probe(Instant::now()));
        let _slot = node.calls.acquire().await.map_err(|_| Failure {
            error: ChannelError::PeerClosed.into(),
            next_node: false,
        })?;
        let span = tracing::debug_span!("grpc_attempt", peer = %node.name, node = ?node.route, retries = 0u32);
        let mut retries = 0;
        loop {
            let mut call = tonic::Request::new(message.clone());
            // The peer learns our deadline (grpc-timeout) and can give up when we do.
            call.set_timeout(self.timeouts.call.saturating_sub(started.elapsed()));
            let status = match Self::send(node, call).instrument(span.clone()).await {
                Ok(response) => {
                    node.update_health(|h| h.succeeded());
                    return Ok(response_from_pb(response));
                }
                Err(status) => status,
            };
            let not_sent = never_sent(&status);
            let time_left = started.elapsed() + DEADLINE_SLACK < self.timeouts.call;
            if not_sent && time_left && retries < MAX_TRANSPARENT_RETRIES {
                retries += 1;
                self.retries.inc();
                span.record("retries", retries);
                debug!(parent: &span, retry = retries, error = %status, "never sent; sending again");
                continue;
            }
            return Err(self.failure(node, &status, not_sent, started));
        }
    }

    /// A failed try as the caller sees it; a transport failure of a call that reached the node
    /// marks the node down.
    fn failure(
        &self,
        node: &Peer,
        status: &tonic::Status,
        not_sent: bool,
        started: Instant,
    ) -> Failure {
        let error = delivery_error(&node.name, status);
        if not_sent {
            return Failure {
                error,
                next_node: true,
            };
        }
        // A connect timeout inside the call's deadline is the node's failure too.
        let node_failed = is_node_failure(status)
            || (status.code() == tonic::Code::DeadlineExceeded
                && started.elapsed() + DEADLINE_SLACK < self.timeouts.call);
        if node_failed {
            node.update_health(|h| h.failed(Instant::now()));
        }
        Failure {
            error,
            next_node: node_failed,
        }
    }
}
