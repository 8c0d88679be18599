//! Helpers for scrape-time collectors: counters and gauges whose values are read from existing
//! atomics when `/metrics` is scraped, so the hot path that writes them gains nothing.

use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;

/// Writes one counter family: `name` (exported as `name_total`) with a sample per label set.
pub fn counter<L: EncodeLabelSet>(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    samples: impl IntoIterator<Item = (L, u64)>,
) -> Result<(), std::fmt::Error> {
    let mut family = encoder.encode_descriptor(name, help, None, MetricType::Counter)?;
    for (labels, value) in samples {
        ConstCounter::new(value).encode(family.encode_family(&labels)?)?;
    }
    Ok(())
}

/// Writes one gauge family with a sample per label set (values saturate at `i64::MAX`).
pub fn gauge<L: EncodeLabelSet>(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    samples: impl IntoIterator<Item = (L, u64)>,
) -> Result<(), std::fmt::Error> {
    let mut family = encoder.encode_descriptor(name, help, None, MetricType::Gauge)?;
    for (labels, value) in samples {
        let value = i64::try_from(value).unwrap_or(i64::MAX);
        ConstGauge::new(value).encode(family.encode_family(&labels)?)?;
    }
    Ok(())
}

/// Writes one counter without labels (exported as `name_total`).
pub fn scalar_counter(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    value: u64,
) -> Result<(), std::fmt::Error> {
    let metric = encoder.encode_descriptor(name, help, None, MetricType::Counter)?;
    ConstCounter::new(value).encode(metric)
}

/// Writes one gauge without labels (values saturate at `i64::MAX`).
pub fn scalar_gauge(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    value: u64,
) -> Result<(), std::fmt::Error> {
    let metric = encoder.encode_descriptor(name, help, None, MetricType::Gauge)?;
    ConstGauge::new(i64::try_from(value).unwrap_or(i64::MAX)).encode(metric)
}

#[cfg(test)]
mod tests {
    use prometheus_client::collector::Collector;
    use prometheus_client::registry::Registry;

    use super::*;

    #[derive(Debug)]
    struct Fixed;

    impl Collector for Fixed {
        fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
            scalar_counter(&mut encoder, "t_events", "events", 7)?;
            scalar_gauge(&mut encoder, "t_depth", "depth", u64::MAX)?;
            let samples = [
                ([("core", "0".to_owned())], 3),
                ([("core", "1".to_owned())], 4),
            ];
            counter(&mut encoder, "t_pairs", "pairs", samples)?;
            gauge(
                &mut encoder,
                "t_live",
                "live",
                [([("core", "0".to_owned())], 2)],
            )
        }
    }

    #[test]
    fn collected_values_render_with_types_and_labels() {
        let mut registry = Registry::default();
        registry.register_collector(Box::new(Fixed));
        let text = crate::metrics::render(&registry);
        for line in [
            "# TYPE t_events counter",
            "t_events_total 7",
            "t_depth 9223372036854775807",
            r#"t_pairs_total{core="0"} 3"#,
            r#"t_pairs_total{core="1"} 4"#,
            "# TYPE t_live gauge",
            r#"t_live{core="0"} 2"#,
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "{line:?} missing in\n{text}"
            );
        }
    }
}
