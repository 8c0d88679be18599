//! The operator server's metrics: broker deliveries by method and outcome with latency
//! (`hyper_broker_*`), deliveries in flight, and the directory client's refreshes
//! (`directory_*`).

use std::sync::Arc;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::DescriptorEncoder;
use prometheus_client::registry::Registry;

use crate::broker::MessageBroker;
use crate::dirclient::DirectoryClient;
use tandem_contracts::hyper_node::Method as NodeMethod;
use tandem_contracts::private_proxy::Method as PrivateMethod;
use tandem_contracts::public_proxy::Method as PublicMethod;
use tandem_net::metrics::collect::scalar_gauge;
use tandem_net::metrics::{Refusals, RpcMetrics};

/// Methods kept as `method` labels of broker deliveries (Hyper's internal methods and the
/// proxies', from their contracts); every other method is counted as `other`, so the label set
/// stays bounded. `getAnnouncements` is both proxies' and appears once.
pub const BROKER_METHODS: &[&str] = &[
    NodeMethod::Ping.as_str(),
    NodeMethod::Directory.as_str(),
    NodeMethod::ConnectionRequest.as_str(),
    PublicMethod::RequestConnection.as_str(),
    PublicMethod::AnnounceConnections.as_str(),
    PrivateMethod::AnnounceConnection.as_str(),
    PublicMethod::GetAnnouncements.as_str(),
    PrivateMethod::IncomingConnection.as_str(),
];

/// Deliveries in flight, read at scrape time.
struct BrokerCollector {
    broker: Arc<MessageBroker>,
}

impl std::fmt::Debug for BrokerCollector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BrokerCollector").finish_non_exhaustive()
    }
}

impl Collector for BrokerCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        scalar_gauge(
            &mut encoder,
            "hyper_broker_in_flight",
            "Requests being delivered now",
            self.broker.in_flight() as u64,
        )?;
        scalar_gauge(
            &mut encoder,
            "hyper_broker_pending_replies",
            "Asynchronous replies awaited now",
            self.broker.pending().len() as u64,
        )
    }
}

/// Refusals at the node's doors (DESIGN "identity at every door").
#[derive(Debug, Clone, Default)]
pub(super) struct DoorRefusals {
    /// Gateway callers refused (`hyper_gateway_refused_total{reason}`).
    pub(super) gateway: Refusals,
    /// Pairing endpoints not dialed because the asking proxy does not own them
    /// (`hyper_p2p_endpoints_refused_total{reason}`).
    pub(super) endpoints: Refusals,
}

/// Builds the server's registry and installs the broker's delivery metrics.
pub(super) fn hyper_registry(
    broker: &Arc<MessageBroker>,
    directory: &DirectoryClient,
    refusals: &DoorRefusals,
) -> Registry {
    let mut registry = Registry::default();
    refusals.gateway.register(
        &mut registry,
        "hyper_gateway_refused",
        "JSON-RPC gateway callers refused, by reason",
    );
    refusals.endpoints.register(
        &mut registry,
        "hyper_p2p_endpoints_refused",
        "Pairing endpoints not dialed (not the asking proxy's), by reason",
    );
    let calls = RpcMetrics::register(&mut registry, "hyper_broker", BROKER_METHODS);
    broker.set_metrics(calls);
    registry.register_collector(Box::new(BrokerCollector {
        broker: broker.clone(),
    }));
    if let Some(m) = directory.metrics() {
        m.register(&mut registry);
    }
    registry
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_routed_contract_method_has_its_own_label() {
        let routed = NodeMethod::NAMES
            .iter()
            .chain(PublicMethod::NAMES)
            .chain(PrivateMethod::NAMES);
        for name in routed {
            assert!(BROKER_METHODS.contains(name), "{name}");
        }
        let mut unique = BROKER_METHODS.to_vec();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(unique.len(), BROKER_METHODS.len());
    }
}
