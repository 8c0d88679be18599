//! [`Refusals`]: a counter of refused callers or requests by reason, for the identity checks at
//! the doors (the Hyper gateway, `_connectionRequest`, `incomingConnection`, the proxy dialer).

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;

/// The label of one refusal: a reason from a fixed set of `&'static str` (error kinds), so the
/// label set is bounded by the code, not by callers.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabel {
    /// Why (an error kind such as `not_listed`, `not_pinned`, `foreign_endpoint`).
    pub reason: &'static str,
}

/// Refusals by reason. Clones share the counters; counting works whether or not it is registered.
#[derive(Clone, Debug, Default)]
pub struct Refusals {
    family: Family<ReasonLabel, Counter>,
}

impl Refusals {
    /// Registers the counters as `<name>_total` in `registry` (may be called for several
    /// registries; all see the same counts).
    pub fn register(&self, registry: &mut Registry, name: &str, help: &str) {
        registry.register(name, help, self.family.clone());
    }

    /// Counts one refusal.
    pub fn count(&self, reason: &'static str) {
        self.family.get_or_create(&ReasonLabel { reason }).inc();
    }

    /// Refusals counted so far for `reason`.
    pub fn get(&self, reason: &'static str) -> u64 {
        self.family.get_or_create(&ReasonLabel { reason }).get()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_show_in_the_registry_by_reason() {
        let refusals = Refusals::default();
        let mut registry = Registry::default();
        refusals.register(&mut registry, "x_refused", "Refused");
        refusals.count("not_listed");
        refusals.clone().count("not_listed");
        assert_eq!(refusals.get("not_listed"), 2);
        assert_eq!(refusals.get("other"), 0);
        let text = crate::metrics::render(&registry);
        assert!(
            text.contains("x_refused_total{reason=\"not_listed\"} 2"),
            "{text}"
        );
    }
}
