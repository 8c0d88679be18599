//! One call of the `grpc_client` over the nodes of its recipient: every usable `grpc_server` channel
//! of the entry is a node with its own cached channel; the call goes to the node [`plan`] puts
//! first (power of two choices on calls in flight), and a node that fails at the transport (a
//! refused dial, a broken channel: [`is_node_failure`]) is marked down and the call tries the next
//! one, all within the call's one deadline. A recipient with one node (every ordinary peer, and a
//! peer behind a proxy: its proxy picks the node) is called once, as before, without a copy of the
//! request.
//!
//! A call whose connection broke after the request was sent may have run on the failed node; the
//! retry runs it again on another node. The calls that cross nodes are idempotent or harmless to
//! repeat (`requestConnection` issues a fresh pair; the unused one expires with its TTL).

use std::sync::Arc;
use std::time::{Duration, Instant};

use tracing::debug;

use super::client::{GrpcClient, Peer};
use super::convert::{delivery_error, is_node_failure, request_to_pb, response_from_pb};
use super::nodes::plan;
use super::peer_server::GrpcServerEntry;
use crate::broker::ChannelError;
use crate::broker::types::{Address, DeliveryError, HyperRequest, HyperResponse};
use tandem_proto::hyper as pb;

/// Most nodes one call tries: a dead node costs a refused dial (or at worst a connect timeout),
/// so a few tries cover a node or two failing at once without a call walking a whole fleet.
pub const MAX_NODE_ATTEMPTS: usize = 3;

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
        if let [only] = nodes.as_slice() {
            return self
                .attempt(only, message, started)
                .await
                .map_err(|(e, _)| e);
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
            match self.attempt(node, message.clone(), started).await {
                Ok(response) => return Ok(response),
                Err((error, true)) => {
                    debug!(peer = %address.operator, node = ?node.route, error = %error, "node failed; trying the next");
                    last = Some(error);
                }
                Err((error, false)) => return Err(error),
            }
        }
        Err(last.unwrap_or(ChannelError::NoGrpcServer.into()))
    }

    /// One try on `node`; on failure the error and whether the node failed (it is marked down).
    async fn attempt(
        &self,
        node: &Peer,
        message: pb::Request,
        started: Instant,
    ) -> Result<HyperResponse, (DeliveryError, bool)> {
        node.update_health(|h| h.claim_probe(Instant::now()));
        let _slot = node
            .calls
            .acquire()
            .await
            .map_err(|_| (ChannelError::PeerClosed.into(), false))?;
        let mut call = tonic::Request::new(message);
        let remaining = self.timeouts.call.saturating_sub(started.elapsed());
        // The peer learns our deadline (grpc-timeout) and can give up when we do.
        call.set_timeout(remaining);
        match Self::grpc(node).call(call).await {
            Ok(response) => {
                node.update_health(|h| h.succeeded());
                Ok(response_from_pb(response.into_inner()))
            }
            Err(status) => {
                // A connect timeout inside the call's deadline is the node's failure too.
                let node_failed = is_node_failure(&status)
                    || (status.code() == tonic::Code::DeadlineExceeded
                        && started.elapsed() + Duration::from_millis(10) < self.timeouts.call);
                if node_failed {
                    node.update_health(|h| h.failed(Instant::now()));
                }
                Err((delivery_error(&node.name, &status), node_failed))
            }
        }
    }
}
