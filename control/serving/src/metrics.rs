//! What the serving kit counts, per listener: connections admitted, refused and cut, by reason,
//! and the connections each listener holds.

use std::sync::Arc;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

/// Labels of the event counter.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct EventLabels {
    /// The listener (`gateway`, `grpc`, `sd`, `control`, ...).
    pub listener: &'static str,
    /// What happened: `admitted`, a refusal (`source_rate`, `source_full`, `full`), or a cut
    /// (`evicted_source_full`, `evicted_full`, `handshake_timeout`, `first_request_timeout`,
    /// `idle_timeout`, `handshake_failed`), or a PROXY protocol outcome (`proxy_header`,
    /// `proxy_bad_header`, `proxy_header_timeout`, `proxy_header_aborted`, `proxy_pending_full`,
    /// `proxy_untrusted`).
    pub event: &'static str,
}

/// Labels of the open-connection gauge.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ListenerLabels {
    /// The listener.
    pub listener: &'static str,
}

/// The kit's metrics, shared by every listener of a process. Cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct ServingMetrics {
    events: Arc<Family<EventLabels, Counter>>,
    open: Arc<Family<ListenerLabels, Gauge>>,
}

impl ServingMetrics {
    /// Metrics registered in `registry` as `tandem_serving_connection_events_total` and
    /// `tandem_serving_open_connections`.
    pub fn register(registry: &mut Registry) -> Self {
        let metrics = Self::default();
        registry.register(
            "tandem_serving_connection_events",
            "Connections admitted, refused and cut by the serving kit, by listener and reason",
            Family::clone(&metrics.events),
        );
        registry.register(
            "tandem_serving_open_connections",
            "Connections holding a slot, by listener",
            Family::clone(&metrics.open),
        );
        metrics
    }

    /// Counts one `event` on `listener`.
    pub fn count(&self, listener: &'static str, event: &'static str) {
        self.events
            .get_or_create(&EventLabels { listener, event })
            .inc();
    }

    /// The count of `event` on `listener` so far (tests, `ctl stats`).
    pub fn get(&self, listener: &'static str, event: &'static str) -> u64 {
        self.events
            .get_or_create(&EventLabels { listener, event })
            .get()
    }

    /// Sets the number of connections `listener` holds.
    pub fn set_open(&self, listener: &'static str, open: usize) {
        self.open
            .get_or_create(&ListenerLabels { listener })
            .set(i64::try_from(open).unwrap_or(i64::MAX));
    }
}
