//! The public proxy's metrics: its control-plane counters (`proxy_*`), the engine's per-core ones
//! (`engine_*`, see [`EngineCollector`]), the pair-event hub (`proxy_pair_events_*`) and its
//! JSON-RPC calls (`proxy_rpc_*`). Counters are read at scrape time from the atomics the proxy and
//! the engine keep anyway.

use std::sync::Arc;
use tandem_serving::ServingMetrics;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::DescriptorEncoder;
use prometheus_client::registry::Registry;
use serde_json::Value;

use super::stats::{PrivateCounters, ProxyCounters};
use crate::control_service::EventHub;
use crate::engine_metrics::EngineCollector;
use tandem_net::metrics::RpcMetrics;
use tandem_net::metrics::collect::{scalar_counter, scalar_gauge};

/// The JSON-RPC methods of the public proxy kept as `method` labels (others count as `other`).
pub const PUBLIC_METHODS: &[&str] = tandem_contracts::public_proxy::Method::NAMES;

/// Exports [`ProxyCounters`] as `proxy_<field>_total` and the event hub's counters.
struct ProxyCollector {
    counters: Arc<ProxyCounters>,
    hub: EventHub,
}

impl std::fmt::Debug for ProxyCollector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProxyCollector").finish_non_exhaustive()
    }
}

impl Collector for ProxyCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        // The snapshot serialises to a flat object of counters: every field is exported, including
        // ones added later, under its own name.
        let snapshot = self.counters.snapshot();
        if let Ok(Value::Object(fields)) = serde_json::to_value(&snapshot) {
            for (field, value) in fields {
                let Some(value) = value.as_u64() else {
                    continue;
                };
                let name = format!("proxy_{field}");
                let help = format!("Public proxy counter {field}");
                scalar_counter(&mut encoder, &name, &help, value)?;
            }
        }
        let hub = self.hub.counters();
        scalar_counter(
            &mut encoder,
            "proxy_pair_events_received",
            "Pair events received from the engine",
            hub.received,
        )?;
        scalar_counter(
            &mut encoder,
            "proxy_pair_events_lagged",
            "Pair events watchers missed because they lagged",
            hub.lagged,
        )?;
        scalar_gauge(
            &mut encoder,
            "proxy_pair_event_watchers",
            "Pair-event watchers subscribed now",
            hub.watchers,
        )
    }
}

/// The public proxy's registry and the JSON-RPC metrics its router records into.
pub(crate) fn public_registry(
    engine: tandem_engine::EngineHandle,
    counters: Arc<ProxyCounters>,
    hub: EventHub,
) -> (Registry, RpcMetrics, ServingMetrics) {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(EngineCollector::new(engine)));
    registry.register_collector(Box::new(crate::quota::QuotaCollector::new(
        hub.quotas().clone(),
    )));
    registry.register_collector(Box::new(ProxyCollector { counters, hub }));
    let rpc = RpcMetrics::register(&mut registry, "proxy_rpc", PUBLIC_METHODS);
    let serving = ServingMetrics::register(&mut registry);
    (registry, rpc, serving)
}

/// The JSON-RPC methods of the private proxy kept as `method` labels.
pub const PRIVATE_METHODS: &[&str] = tandem_contracts::private_proxy::Method::NAMES;

/// Exports the private proxy's forwarded connections in use and its announcement counters
/// (`proxy_private_<field>_total`).
struct PrivateCollector {
    slots: Arc<tokio::sync::Semaphore>,
    max: usize,
    counters: Arc<PrivateCounters>,
}

impl std::fmt::Debug for PrivateCollector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PrivateCollector")
            .field("max", &self.max)
            .finish()
    }
}

impl Collector for PrivateCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let in_use = self.max.saturating_sub(self.slots.available_permits());
        scalar_gauge(
            &mut encoder,
            "proxy_private_connections",
            "Forwarded connections open now",
            in_use as u64,
        )?;
        scalar_gauge(
            &mut encoder,
            "proxy_private_connections_max",
            "Most forwarded connections open at once",
            self.max as u64,
        )?;
        if let Ok(Value::Object(fields)) = serde_json::to_value(self.counters.snapshot()) {
            for (field, value) in fields {
                let Some(value) = value.as_u64() else {
                    continue;
                };
                let name = format!("proxy_private_{field}");
                let help = format!("Private proxy counter {field}");
                scalar_counter(&mut encoder, &name, &help, value)?;
            }
        }
        Ok(())
    }
}

/// The private proxy's registry and the JSON-RPC metrics its router records into.
pub(crate) fn private_registry(
    slots: Arc<tokio::sync::Semaphore>,
    max: usize,
    refused: &tandem_net::metrics::Refusals,
    counters: Arc<PrivateCounters>,
) -> (Registry, RpcMetrics, ServingMetrics) {
    let mut registry = Registry::default();
    refused.register(
        &mut registry,
        "proxy_private_endpoints_refused",
        "incomingConnection endpoints not dialed (not the calling public proxy's), by reason",
    );
    registry.register_collector(Box::new(PrivateCollector {
        slots,
        max,
        counters,
    }));
    let rpc = RpcMetrics::register(&mut registry, "proxy_private_rpc", PRIVATE_METHODS);
    let serving = ServingMetrics::register(&mut registry);
    (registry, rpc, serving)
}
