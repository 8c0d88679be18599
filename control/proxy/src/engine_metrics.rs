//! [`EngineCollector`]: the engine's per-core counters, read with `EngineHandle::stats()` at
//! scrape time and exported with a `core` label (bounded by the engine's core count).

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, NoLabelSet};
use prometheus_client::metrics::MetricType;
use tandem_engine::{CoreStatsSnapshot, EngineHandle, PAIR_SETUP_BOUNDS_US};

use tandem_net::metrics::collect::{counter, gauge};

/// One label: the core index.
type CoreLabel = [(&'static str, String); 1];
/// Two labels: the core index and one more (direction, reason, driver).
type CoreAnd = [(&'static str, String); 2];

/// Exports an engine's per-core counters (`engine_*`).
#[derive(Clone)]
pub struct EngineCollector {
    engine: EngineHandle,
}

impl std::fmt::Debug for EngineCollector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EngineCollector")
            .field("cores", &self.engine.cores())
            .finish()
    }
}

impl EngineCollector {
    /// A collector reading `engine`.
    pub fn new(engine: EngineHandle) -> Self {
        Self { engine }
    }
}

type Field = fn(&CoreStatsSnapshot) -> u64;

/// Counters with only the `core` label: (name, help, field).
const COUNTERS: &[(&str, &str, Field)] = &[
    ("engine_accepted", "Connections accepted", |c| c.accepted),
    (
        "engine_refused_at_accept",
        "Connections refused at accept (engine_accept_refusals by reason)",
        |c| c.refused_at_accept,
    ),
    (
        "engine_limited_refusals",
        "Of the refusals at accept: sources over the bad-preamble limit",
        |c| c.limited_refusals,
    ),
    (
        "engine_paired",
        "Pairs completed (both sides arrived)",
        |c| c.paired,
    ),
    (
        "engine_preamble_timeouts",
        "Connections that sent no token or ClientHello in time",
        |c| c.preamble_timeouts,
    ),
    (
        "engine_expired",
        "Waiting sides and issued pairs whose TTL passed",
        |c| c.expired,
    ),
    (
        "engine_waiting_full",
        "Arrivals refused because the waiting set was full",
        |c| c.waiting_full,
    ),
    (
        "engine_bad_hellos",
        "ClientHellos refused (malformed, too large, no route)",
        |c| c.bad_hellos,
    ),
    (
        "engine_pipe_leases",
        "Transfers that leased a pipe from the pool (splice path)",
        |c| c.pipe_leases,
    ),
    (
        "engine_copy_fallbacks",
        "Transfers that fell back to the copy path",
        |c| c.copy_fallbacks,
    ),
    (
        "engine_pipes_undersized",
        "Pipes the kernel made below 64 KiB (fs.pipe-user-pages-soft spent); the pool stopped growing",
        |c| c.pipes_undersized,
    ),
    (
        "engine_events_dropped",
        "Pair events dropped because the event channel was full",
        |c| c.events_dropped,
    ),
    (
        "engine_accept_errors",
        "Accept errors survived (EMFILE and others)",
        |c| c.accept_errors,
    ),
    (
        "engine_parks",
        "Times a quiet pair was parked (its task ended, its sockets watched by the core's lot)",
        |c| c.parks,
    ),
    (
        "engine_unparks",
        "Times a parked pair resumed relaying (a byte, a close or a reset arrived)",
        |c| c.unparks,
    ),
    (
        "engine_memory_releases",
        "Times the core gave the memory of parked pairs' tasks back to the kernel (malloc_trim)",
        |c| c.memory_releases,
    ),
];

/// Gauges with only the `core` label.
const GAUGES: &[(&str, &str, Field)] = &[
    (
        "engine_live_pairs",
        "Pairs relaying now, parked ones included",
        |c| c.live_pairs,
    ),
    (
        "engine_parked_pairs",
        "Of the live pairs: parked now (quiet, no task)",
        |c| c.parked_pairs,
    ),
    (
        "engine_issued_pairs",
        "Issued pairs held in the pair table",
        |c| c.issued_pairs,
    ),
    (
        "engine_waiting",
        "Connections waiting for their partner",
        |c| c.waiting,
    ),
    ("engine_open_connections", "Open connections", |c| {
        c.open_conns
    }),
    (
        "engine_pipes_in_use",
        "Pipes leased from the pool now",
        |c| c.pipes_in_use,
    ),
    (
        "engine_limited_sources",
        "Source addresses the bad-preamble limiter tracks now",
        |c| c.limited_sources,
    ),
    (
        "engine_rate_sources",
        "Source addresses the accept-rate tables track now (both data ports)",
        |c| c.rate_sources,
    ),
    (
        "engine_sni_pairs_held",
        "Open SNI pairs counted against the SNI budgets now",
        |c| c.sni_pairs_held,
    ),
];

/// Counters with a second label: (name, help, label, [(value, field)]).
type Split = (
    &'static str,
    &'static str,
    &'static str,
    &'static [(&'static str, Field)],
);
/// The engine's refusals of a connection for its token, by reason (`engine_bad_tokens`).
const BAD_TOKENS: &[(&str, Field)] = &[
    ("unknown", |c| c.bad_unknown),
    ("expired", |c| c.bad_expired),
    ("reused", |c| c.bad_reused),
    ("wrong_side", |c| c.bad_wrong_side),
    ("cancelled", |c| c.bad_cancelled),
];

/// Connections one core refused for their token, whatever the reason.
pub fn bad_tokens(core: &CoreStatsSnapshot) -> u64 {
    BAD_TOKENS.iter().map(|(_, field)| field(core)).sum()
}

const SPLIT: &[Split] = &[
    (
        "engine_bytes",
        "Bytes relayed by direction",
        "direction",
        &[
            ("a_to_b", |c| c.bytes_a_to_b),
            ("b_to_a", |c| c.bytes_b_to_a),
        ],
    ),
    (
        "engine_pairs_closed",
        "Pairs closed by reason",
        "reason",
        &[
            ("normal", |c| c.closed_normal),
            ("reset", |c| c.closed_reset),
            ("idle", |c| c.closed_idle),
            ("drain", |c| c.closed_drain),
        ],
    ),
    (
        "engine_bad_tokens",
        "Connections refused for their token, by reason",
        "reason",
        BAD_TOKENS,
    ),
    (
        "engine_accept_refusals",
        "Connections closed right at accept, by reason",
        "reason",
        &[
            ("conn_limit", |c| c.refused_conn_limit),
            ("bad_preambles", |c| c.limited_refusals),
            ("accept_rate", |c| c.rate_refusals),
        ],
    ),
    (
        "engine_sni_budget_refusals",
        "Routed ClientHellos closed because an SNI budget was spent, by budget",
        "budget",
        &[
            ("source", |c| c.sni_source_refusals),
            ("domain", |c| c.sni_domain_refusals),
        ],
    ),
    (
        "engine_proxy_headers",
        "PROXY protocol headers on the data ports, by outcome",
        "outcome",
        &[
            ("accepted", |c| c.proxy_headers),
            ("bad", |c| c.proxy_bad_headers),
            ("timeout", |c| c.proxy_header_timeouts),
            ("untrusted", |c| c.proxy_untrusted),
        ],
    ),
    (
        "engine_handoffs",
        "Sockets handed between cores",
        "direction",
        &[
            ("in", |c| c.handoffs_in),
            ("out", |c| c.handoffs_out),
            ("dropped", |c| c.handoffs_dropped),
        ],
    ),
];

fn core(i: usize) -> CoreLabel {
    [("core", i.to_string())]
}

impl Collector for EngineCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let stats = self.engine.stats();
        for (name, help, field) in COUNTERS {
            let samples = stats.iter().enumerate().map(|(i, c)| (core(i), field(c)));
            counter(&mut encoder, name, help, samples)?;
        }
        for (name, help, field) in GAUGES {
            let samples = stats.iter().enumerate().map(|(i, c)| (core(i), field(c)));
            gauge(&mut encoder, name, help, samples)?;
        }
        for (name, help, label, parts) in SPLIT {
            let samples = stats.iter().enumerate().flat_map(|(i, c)| {
                parts.iter().map(move |(value, field)| {
                    let labels: CoreAnd = [("core", i.to_string()), (*label, (*value).to_owned())];
                    (labels, field(c))
                })
            });
            counter(&mut encoder, name, help, samples)?;
        }
        encode_setup(&mut encoder, &stats)?;
        let drivers = stats.iter().enumerate().map(|(i, c)| {
            let driver = c.driver.map_or("starting", |d| d.as_str()).to_owned();
            let labels: CoreAnd = [("core", i.to_string()), ("driver", driver)];
            (labels, 1)
        });
        gauge(
            &mut encoder,
            "engine_core_driver",
            "The I/O driver each core runs on (always 1)",
            drivers,
        )
    }
}

/// `engine_pair_setup_seconds{core}`: the engine's fixed-bucket histogram of the time from pair
/// registration until both sides arrived.
fn encode_setup(
    encoder: &mut DescriptorEncoder,
    stats: &[CoreStatsSnapshot],
) -> Result<(), std::fmt::Error> {
    let mut family = encoder.encode_descriptor(
        "engine_pair_setup_seconds",
        "Time from pair registration until both sides arrived",
        None,
        MetricType::Histogram,
    )?;
    for (i, c) in stats.iter().enumerate() {
        let h = &c.pair_setup;
        let bounds = PAIR_SETUP_BOUNDS_US
            .iter()
            .map(|us| *us as f64 / 1e6)
            .chain([f64::INFINITY]);
        let buckets: Vec<(f64, u64)> = bounds.zip(h.buckets).collect();
        family
            .encode_family(&core(i))?
            .encode_histogram::<NoLabelSet>(h.sum_us as f64 / 1e6, h.count(), &buckets, None)?;
    }
    Ok(())
}
