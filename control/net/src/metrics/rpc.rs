//! Metrics of a JSON-RPC endpoint: calls by method and outcome, and their latency.

use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// The largest number of distinct method labels kept; other names are counted as `other` so that a
/// client sending random method names cannot grow the families without bound.
pub const MAX_METHOD_LABELS: usize = 64;

/// The largest number of distinct outcome labels kept per endpoint; later new outcomes count as
/// `other`. Outcomes are `ok`, error kinds or JSON-RPC codes, and a proxy passes a peer's codes
/// through, so without this bound a peer could grow the families.
pub const MAX_OUTCOME_LABELS: usize = 32;

/// Labels of one call.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RpcLabels {
    /// The method (or `other`).
    pub method: String,
    /// `ok` or the error's kind.
    pub outcome: String,
}

/// Calls and latencies of one JSON-RPC endpoint.
#[derive(Clone, Debug)]
pub struct RpcMetrics {
    calls: Family<RpcLabels, Counter>,
    latency: Family<RpcLabels, Histogram>,
    known: std::sync::Arc<[&'static str]>,
    outcomes: std::sync::Arc<std::sync::Mutex<std::collections::HashSet<String>>>,
}

impl RpcMetrics {
    /// Registers the families under `prefix` (e.g. `sd_rpc`) in `registry`; `methods` are the method
    /// names kept as labels.
    pub fn register(registry: &mut Registry, prefix: &str, methods: &[&'static str]) -> Self {
        let calls = Family::<RpcLabels, Counter>::default();
        let latency = Family::<RpcLabels, Histogram>::new_with_constructor(|| {
            // 100 µs .. ~26 s
            Histogram::new(exponential_buckets(0.0001, 4.0, 10))
        });
        registry.register(
            format!("{prefix}_calls"),
            "JSON-RPC calls by method and outcome",
            calls.clone(),
        );
        registry.register(
            format!("{prefix}_call_seconds"),
            "JSON-RPC call latency by method and outcome",
            latency.clone(),
        );
        let known: Vec<&'static str> = methods.iter().copied().take(MAX_METHOD_LABELS).collect();
        Self {
            calls,
            latency,
            known: known.into(),
            outcomes: std::sync::Arc::default(),
        }
    }

    /// Records one call.
    pub fn observe(&self, method: &str, outcome: &str, took: Duration) {
        let method = self
            .known
            .iter()
            .find(|m| **m == method)
            .copied()
            .unwrap_or("other");
        let outcome = self.bounded_outcome(outcome);
        let labels = RpcLabels {
            method: method.to_owned(),
            outcome,
        };
        self.calls.get_or_create(&labels).inc();
        self.latency
            .get_or_create(&labels)
            .observe(took.as_secs_f64());
    }
}

impl RpcMetrics {
    fn bounded_outcome(&self, outcome: &str) -> String {
        let mut seen = self
            .outcomes
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if seen.contains(outcome) {
            return outcome.to_owned();
        }
        if seen.len() < MAX_OUTCOME_LABELS {
            seen.insert(outcome.to_owned());
            return outcome.to_owned();
        }
        "other".to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_methods_share_one_label() {
        let mut registry = Registry::default();
        let m = RpcMetrics::register(&mut registry, "t_rpc", &["getTip"]);
        m.observe("getTip", "ok", Duration::from_millis(1));
        m.observe("random1", "method_not_found", Duration::from_millis(1));
        m.observe("random2", "method_not_found", Duration::from_millis(1));
        let text = crate::metrics::render(&registry);
        assert!(
            text.contains(r#"t_rpc_calls_total{method="getTip",outcome="ok"} 1"#),
            "{text}"
        );
        assert!(
            text.contains(r#"t_rpc_calls_total{method="other",outcome="method_not_found"} 2"#),
            "{text}"
        );
        assert!(!text.contains("random1"));
        for code in 0..(MAX_OUTCOME_LABELS + 10) {
            m.observe("getTip", &code.to_string(), Duration::from_millis(1));
        }
        let text = crate::metrics::render(&registry);
        let outcomes = text
            .lines()
            .filter(|l| l.starts_with("t_rpc_calls_total{"))
            .count();
        assert_eq!(outcomes, MAX_OUTCOME_LABELS + 1, "bounded, plus `other`");
        assert!(
            text.contains(r#"t_rpc_calls_total{method="getTip",outcome="other"} 12"#),
            "{text}"
        );
        assert!(text.contains("t_rpc_call_seconds_bucket"));
    }
}
