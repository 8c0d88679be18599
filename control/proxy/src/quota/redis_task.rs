//! [`super::RedisCounter`]'s task and its writes: the lease refresh, the coalesced releases
//! (kept for the next attempt when Redis does not answer) and the last view of each operator.

use std::sync::Weak;
use std::time::SystemTime;

use tandem_datastore::DatastoreError;
use tracing::{debug, warn};

use super::{
    Inner, MAX_COUNTED_OPERATORS, Pending, Usage, lock, millis, redis_scripts, usage_of, windows,
};

impl Inner {
    pub(super) async fn refresh_lease(&self) -> Result<(), DatastoreError> {
        let args = [self.prefix.clone(), self.node.clone(), millis(self.lease)];
        self.store
            .eval_ints(redis_scripts::LEASE, &[], &args)
            .await
            .map(|_| ())
    }

    pub(super) fn remember(&self, operator: &str, usage: Usage, minute: u64, day: u64) {
        let mut seen = lock(&self.seen);
        if seen.len() >= MAX_COUNTED_OPERATORS && !seen.contains_key(operator) {
            seen.retain(|_, (u, _, _)| u.live_pairs > 0);
            if seen.len() >= MAX_COUNTED_OPERATORS {
                return;
            }
        }
        seen.insert(operator.to_owned(), (usage, minute, day));
    }

    /// Writes every pending release; those that fail go back to the map (merged with newer ones).
    async fn flush(&self) {
        let pending: Vec<(String, Pending)> = lock(&self.pending).drain().collect();
        let (_, minute, day) = windows(SystemTime::now());
        for (operator, p) in pending {
            let args = vec![
                self.prefix.clone(),
                self.node.clone(),
                operator.clone(),
                minute.to_string(),
                day.to_string(),
                millis(self.lease),
                p.live.to_string(),
                p.waiting.to_string(),
                p.bytes.to_string(),
            ];
            match self.store.eval_ints(&self.release_script, &[], &args).await {
                Ok(answer) => self.remember(&operator, usage_of(&answer), minute, day),
                Err(e) => {
                    debug!(operator, error = %e, kind = e.kind(), "quota release not written, kept for the next attempt");
                    let mut map = lock(&self.pending);
                    let q = map.entry(operator).or_default();
                    q.live += p.live;
                    q.waiting += p.waiting;
                    q.bytes = q.bytes.saturating_add(p.bytes);
                }
            }
        }
    }
}

/// The counter's task: writes releases as they come, refreshes the lease every third of it.
pub(super) async fn run(inner: Weak<Inner>) {
    let period = match inner.upgrade() {
        Some(i) => i.lease / 3,
        None => return,
    };
    let mut tick = tokio::time::interval(period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let Some(i) = inner.upgrade() else { return };
        let woken = tokio::select! {
            _ = tick.tick() => false,
            () = i.wake.notified() => true,
        };
        if !woken && let Err(e) = i.refresh_lease().await {
            warn!(error = %e, kind = e.kind(), node = %i.node, "quota lease not refreshed");
        }
        i.flush().await;
    }
}
