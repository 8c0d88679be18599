//! [`Quotas`] across a binary upgrade (a child of `service`): what the old process hands over
//! (the owners of the pairs it hands over and each operator's windowed counts) and how the new
//! one takes it over, so that `proxy ctl quotas` shows the same use and a handed-over pair
//! that ends in the new process releases its operator's quota.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::SystemTime;

use tandem_engine::PairId;
use tracing::{info, warn};

use super::{Quotas, lock};
use crate::quota::carry::{CarriedCount, CarriedOwner, QuotaCarry};
use crate::quota::counter::Usage;

impl Quotas {
    /// The bookkeeping to hand over with the engine's `issued` and `live` pairs at `now`:
    /// the owners of those pairs only (a pair that stays to drain in this process is not
    /// carried), a live pair never as waiting (its `Paired` event may still be queued), and
    /// every counted operator's minute and day counts.
    pub fn hand_over(&self, issued: &[PairId], live: &[PairId], now: SystemTime) -> QuotaCarry {
        let handed: HashMap<PairId, bool> = issued
            .iter()
            .map(|id| (*id, false))
            .chain(live.iter().map(|id| (*id, true)))
            .collect();
        let owners: Vec<CarriedOwner> = lock(&self.owners)
            .all()
            .filter_map(|(id, o)| {
                let relaying = *handed.get(&id)?;
                Some(CarriedOwner {
                    id,
                    operator: o.operator.to_string(),
                    waiting: o.waiting && !relaying,
                    expires_at: o.expires_at,
                })
            })
            .collect();
        let counts = self
            .counter
            .all(now)
            .into_iter()
            .map(|(operator, u)| CarriedCount {
                operator,
                pairs_this_minute: u.pairs_this_minute,
                bytes_today: u.bytes_today,
            })
            .collect();
        QuotaCarry {
            taken_at: now,
            counts,
            owners,
        }
    }

    /// Takes over what the previous process handed over (before the pair-event hub starts:
    /// the adopted pairs' events wait in the engine's channel until then). Live and waiting
    /// counts are those of the owners taken over.
    pub fn take_over(&self, carry: QuotaCarry) {
        let mut pairs: HashMap<String, (u64, u64)> = HashMap::new();
        let mut dropped = 0usize;
        {
            let mut owners = lock(&self.owners);
            let mut names: HashMap<String, Arc<str>> = HashMap::new();
            for o in carry.owners {
                let name = names
                    .entry(o.operator.clone())
                    .or_insert_with(|| Arc::from(o.operator.as_str()))
                    .clone();
                if owners.adopt(o.id, name, o.waiting, o.expires_at) {
                    let n = pairs.entry(o.operator).or_default();
                    n.0 += 1;
                    n.1 += u64::from(o.waiting);
                } else {
                    dropped += 1;
                }
            }
        }
        if dropped > 0 {
            warn!(
                dropped,
                "quota owners full: some handed-over pairs will not release their quota"
            );
        }
        let mut usage: BTreeMap<String, Usage> = carry
            .counts
            .into_iter()
            .map(|c| {
                let u = Usage {
                    pairs_this_minute: c.pairs_this_minute,
                    bytes_today: c.bytes_today,
                    ..Usage::default()
                };
                (c.operator, u)
            })
            .collect();
        let owned = pairs.values().map(|p| p.0).sum::<u64>();
        for (operator, (live, waiting)) in pairs {
            let u = usage.entry(operator).or_default();
            u.live_pairs = live;
            u.waiting_pairs = waiting;
        }
        info!(
            operators = usage.len(),
            pairs = owned,
            "quota bookkeeping taken over from the previous process"
        );
        for (operator, u) in usage {
            self.counter.restore(&operator, u, carry.taken_at);
        }
    }
}
