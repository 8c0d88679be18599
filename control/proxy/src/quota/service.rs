//! [`Quotas`]: the quotas the proxy enforces: admission of an operator's new pair, the
//! bandwidth limits the pair is created with, and the release of its quota by the engine's
//! pair events.

use std::collections::BTreeMap;
use std::hash::{Hash, Hasher};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::SystemTime;

use tandem_engine::{BandwidthLimits, OperatorBandwidth, PairEvent, PairId};
use tracing::debug;

use super::counter::{QuotaCounter, QuotaError, Usage};
use super::memory::MemoryCounter;
use super::metrics::OTHER_OPERATOR;
use super::owners::{Change, MAX_OWNED_PAIRS, Owners};
use crate::settings::{QuotaLimits, QuotaSettings};

/// One operator's quotas and their use (for `proxy ctl quotas`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OperatorQuota {
    /// The operator.
    pub operator: String,
    /// Its limits (the defaults unless `quotas.operators` names it).
    pub limits: QuotaLimits,
    /// What it uses now.
    pub usage: Usage,
}

/// A pair admitted for an operator: hand it to [`Quotas::issued`] once the engine issued the
/// pair, or to [`Quotas::abandoned`] if it did not.
#[derive(Debug)]
#[must_use = "an admitted pair is counted until it is issued (and ends) or abandoned"]
pub struct Admitted {
    operator: Arc<str>,
    limits: QuotaLimits,
}

impl Admitted {
    /// The bandwidth limits the engine creates the pair with.
    pub fn bandwidth(&self) -> BandwidthLimits {
        BandwidthLimits {
            pair: self.limits.pair_bandwidth,
            operator: self
                .limits
                .operator_bandwidth
                .map(|rate| OperatorBandwidth {
                    key: operator_key(&self.operator),
                    rate,
                }),
        }
    }
}

/// The engine's per-core bucket key of an operator: a hash of its name (SipHash; a collision
/// between two operators' names, ~2⁻⁶⁴, would only make them share a bucket).
fn operator_key(operator: &str) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    operator.hash(&mut h);
    h.finish()
}

/// The proxy's quotas. Shared (`Arc`) by the JSON-RPC methods, the ControlService and the
/// pair-event hub; each lock is held for one map operation, never across an `.await`.
pub struct Quotas {
    settings: QuotaSettings,
    counter: Arc<dyn QuotaCounter>,
    owners: Mutex<Owners>,
    /// Refusals by (operator label, reason): at most ([`crate::settings::MAX_QUOTA_OPERATORS`]
    /// + 1) × 6 entries.
    refusals: Mutex<BTreeMap<(String, &'static str), u64>>,
}

impl std::fmt::Debug for Quotas {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Quotas")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl Default for Quotas {
    fn default() -> Self {
        Self::new(QuotaSettings::default(), Arc::new(MemoryCounter::default()))
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Quotas {
    /// Quotas of `settings` counted by `counter`.
    pub fn new(settings: QuotaSettings, counter: Arc<dyn QuotaCounter>) -> Self {
        Self {
            settings,
            counter,
            owners: Mutex::new(Owners::new(MAX_OWNED_PAIRS)),
            refusals: Mutex::new(BTreeMap::new()),
        }
    }

    /// The settings.
    pub fn settings(&self) -> &QuotaSettings {
        &self.settings
    }

    /// The metric label of `operator`: its name when `quotas.operators` names it, else `other`.
    pub fn label<'a>(&self, operator: &'a str) -> &'a str {
        if self.settings.operators.contains_key(operator) {
            operator
        } else {
            OTHER_OPERATOR
        }
    }

    /// Admits one new pair of `operator` (counted as created, live and waiting) or names the
    /// quota it reached (counted as a refusal).
    pub async fn admit(&self, operator: &str, now: SystemTime) -> Result<Admitted, QuotaError> {
        let (room, released) = lock(&self.owners).room(now);
        self.apply(released, now);
        let limits = self.settings.limits(operator);
        let result = if room {
            self.counter.admit(operator, &limits, now).await
        } else {
            Err(QuotaError::Full("pairs"))
        };
        match result {
            Ok(()) => Ok(Admitted {
                operator: Arc::from(operator),
                limits,
            }),
            Err(e) => {
                let key = (self.label(operator).to_owned(), e.kind());
                *lock(&self.refusals).entry(key).or_default() += 1;
                debug!(operator, quota = e.kind(), "pair refused by quota");
                Err(e)
            }
        }
    }

    /// The engine issued `id` for an admitted pair; it counts until the engine's close event.
    pub fn issued(&self, admitted: Admitted, id: PairId, expires_at: SystemTime) {
        let early = lock(&self.owners).issued(id, admitted.operator, expires_at);
        self.apply(early, SystemTime::now());
    }

    /// The engine did not issue the admitted pair.
    pub fn abandoned(&self, admitted: Admitted) {
        self.counter.abandoned(&admitted.operator);
    }

    /// Applies one engine event (called by the pair-event hub).
    pub fn on_event(&self, event: &PairEvent, now: SystemTime) {
        let change = match event {
            PairEvent::Paired { id, .. } => lock(&self.owners).paired(*id),
            PairEvent::Closed {
                id,
                bytes_a_to_b,
                bytes_b_to_a,
                ..
            } => lock(&self.owners).closed(*id, bytes_a_to_b.saturating_add(*bytes_b_to_a)),
        };
        self.apply(change, now);
    }

    fn apply(&self, changes: impl IntoIterator<Item = Change>, now: SystemTime) {
        for change in changes {
            match change {
                Change::Paired(op) => self.counter.paired(&op),
                Change::Ended {
                    operator,
                    waiting,
                    bytes,
                } => self.counter.ended(&operator, waiting, bytes, now),
            }
        }
    }

    /// What `operator` uses at `now`.
    pub fn usage(&self, operator: &str, now: SystemTime) -> Usage {
        self.counter.usage(operator, now)
    }

    /// Every operator named in the settings or counted, with its limits and use, by name.
    pub fn report(&self, now: SystemTime) -> Vec<OperatorQuota> {
        let mut by_name: BTreeMap<String, Usage> = self
            .settings
            .operators
            .keys()
            .map(|k| (k.clone(), Usage::default()))
            .collect();
        by_name.extend(self.counter.all(now));
        by_name
            .into_iter()
            .map(|(operator, usage)| OperatorQuota {
                limits: self.settings.limits(&operator),
                operator,
                usage,
            })
            .collect()
    }

    /// Refusals so far by (operator label, quota or reason).
    pub fn refusals(&self) -> Vec<((String, &'static str), u64)> {
        lock(&self.refusals)
            .iter()
            .map(|(k, v)| (k.clone(), *v))
            .collect()
    }
}

#[path = "service_carry.rs"]
mod carry;

#[cfg(test)]
#[path = "service_tests.rs"]
mod tests;
