//! `/metrics` of the quotas, read at scrape time from the counter.
//!
//! The `operator` label takes the names in `quotas.operators` and `other` for every other
//! operator (summed). Not top-N: a top-N set changes as traffic moves, so an operator's series
//! would appear and vanish between scrapes (broken rates, churn in the TSDB); the named set is
//! stable, chosen by whoever runs the proxy (the operators worth their own limits are the ones
//! worth their own graphs), and bounded by [`crate::settings::MAX_QUOTA_OPERATORS`] + 1.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::SystemTime;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::DescriptorEncoder;
use tandem_net::metrics::collect::{counter, gauge};

use super::counter::{QuotaKind, Usage};
use super::service::Quotas;

/// The `operator` label of operators not named in `quotas.operators`.
pub const OTHER_OPERATOR: &str = "other";

type Labels = [(&'static str, String); 1];
type Labels2 = [(&'static str, String); 2];

/// Exports the quotas' use, limits and refusals (see the module docs).
#[derive(Debug)]
pub struct QuotaCollector {
    quotas: Arc<Quotas>,
}

impl QuotaCollector {
    /// A collector of `quotas`.
    pub fn new(quotas: Arc<Quotas>) -> Self {
        Self { quotas }
    }

    /// Use summed by operator label: every named operator (0 when idle) and `other`.
    fn usage_by_label(&self) -> BTreeMap<String, Usage> {
        let q = &self.quotas;
        let mut by: BTreeMap<String, Usage> = q
            .settings()
            .operators
            .keys()
            .map(|k| (k.clone(), Usage::default()))
            .collect();
        by.insert(OTHER_OPERATOR.to_owned(), Usage::default());
        for (name, u) in q
            .report(SystemTime::now())
            .into_iter()
            .map(|o| (o.operator, o.usage))
        {
            let s = by.entry(q.label(&name).to_owned()).or_default();
            s.live_pairs += u.live_pairs;
            s.waiting_pairs += u.waiting_pairs;
            s.pairs_this_minute += u.pairs_this_minute;
            s.bytes_today = s.bytes_today.saturating_add(u.bytes_today);
        }
        by
    }
}

impl Collector for QuotaCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let by = self.usage_by_label();
        for quota in QuotaKind::ALL {
            let samples = by
                .iter()
                .map(|(op, u)| -> (Labels, u64) { ([("operator", op.clone())], quota.used(u)) });
            gauge(
                &mut encoder,
                &format!("proxy_quota_{}_used", quota.as_str()),
                "Use of the quota, by operator (named in quotas.operators, else other)",
                samples,
            )?;
        }
        let settings = self.quotas.settings();
        let named = settings.operators.iter().map(|(k, l)| (k.clone(), *l));
        let limits: Vec<(Labels2, u64)> = named
            .chain([(OTHER_OPERATOR.to_owned(), settings.default)])
            .flat_map(|(op, l)| {
                QuotaKind::ALL.into_iter().filter_map(move |q| {
                    let labels = [("operator", op.clone()), ("quota", q.as_str().to_owned())];
                    q.limit(&l).map(|v| (labels, v))
                })
            })
            .collect();
        gauge(
            &mut encoder,
            "proxy_quota_limit",
            "Configured quota per operator (other: the default, per operator); absent: unlimited",
            limits,
        )?;
        // Every label × quota starts at 0, so a refusal shows as a step, not a new series.
        let mut refusals: BTreeMap<(String, &'static str), u64> = by
            .keys()
            .flat_map(|op| QuotaKind::ALL.map(|q| ((op.clone(), q.as_str()), 0)))
            .collect();
        refusals.extend(self.quotas.refusals());
        let refusals = refusals
            .into_iter()
            .map(|((op, why), n)| -> (Labels2, u64) {
                ([("operator", op), ("quota", why.to_owned())], n)
            });
        counter(
            &mut encoder,
            "proxy_quota_refusals",
            "Pairs refused by a quota (or full / unavailable bookkeeping), by operator",
            refusals,
        )
    }
}
