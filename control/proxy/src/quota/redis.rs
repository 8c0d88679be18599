//! [`RedisCounter`]: the quotas counted across a fleet on one Redis (the datastore's client:
//! Sentinel failover, call deadlines). The keys and scripts are in [`super::redis_scripts`].
//!
//! - Admission is one atomic script: the operator's use across every node whose lease is live,
//!   checked against the limits and incremented in the same step, so two nodes never both take
//!   the last unit of a quota.
//! - Releases (a pair paired, abandoned or ended) are fire-and-forget: they are coalesced per
//!   operator in memory and written by the counter's task right away (and again after a failure,
//!   every [`RedisCounter::refresh`] period): nothing is dropped while Redis is unreachable. The
//!   map holds only operators with pairs on this node, so it is bounded by the proxy's
//!   `MAX_OWNED_PAIRS`.
//! - Lease: each process is a node with a random id; its live and waiting pairs are fields of the
//!   operator's hashes under that id, counted only while `P:lease:<node>` lives. The task
//!   refreshes the lease every third of its length ([`DEFAULT_LEASE`]: 15 s). A node that dies
//!   stops refreshing: its pairs stop counting at most one lease after its last refresh.
//!   A node that cannot reach Redis for longer than a lease loses its count the same way (the
//!   fleet under-counts its pairs until they end: releases of fields already dropped stop at 0).
//! - Redis unreachable: admission of an operator with a limit **fails closed** ([`QuotaError::Unavailable`], refused and
//!   counted in `/metrics` as `proxy_quota_refusals_total{quota="unavailable"}`): a quota
//!   is a promise to the other operators, and with Sentinel an outage lasts a failover (seconds).
//!   An operator without any limit has nothing to enforce: its pairs go ahead (uncounted).
//! - [`QuotaCounter::usage`] and [`QuotaCounter::all`] (`proxy ctl quotas`, `/metrics`) are
//!   synchronous: they answer this node's last view of the fleet's counts (from its last
//!   admission or release of that operator), for at most [`MAX_COUNTED_OPERATORS`] operators.
//! - A binary upgrade: the new process is a new node; [`QuotaCounter::restore`] counts the
//!   handed-over live and waiting pairs under it, while the previous process's lease runs out
//!   (until then they count twice: stricter, never looser).
//! - An admission that timed out may still have been applied: it is released as abandoned, so a
//!   miss under-counts this node's pairs of the operator by one until they all end (a count
//!   stops at 0), rather than over-counting for the node's life.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tandem_datastore::{DatastoreError, RedisDatastore};
use tandem_settings::datastore::{DatastoreSettings, RedisDatastoreSettings};
use tokio::sync::Notify;
use tracing::{debug, warn};

use super::counter::{CounterFuture, QuotaCounter, QuotaError, QuotaKind, Usage};
use super::memory::{MAX_COUNTED_OPERATORS, MemoryCounter};
use super::redis_scripts;
use crate::settings::QuotaLimits;

/// A node's lease when not configured otherwise: 15 s (refreshed every 5 s), the bound on how long
/// a dead node's pairs keep counting.
pub const DEFAULT_LEASE: Duration = Duration::from_secs(15);

/// The suffix of the quota keys' prefix after the announcements' key, when the counter shares
/// the announcements' Redis (`<key>:quotas:...`).
pub const KEY_SUFFIX: &str = ":quotas";

/// The proxy's quota counter: across the fleet on the announcements' Redis (keys
/// `<key>:quotas:*`, lease [`DEFAULT_LEASE`]) when its datastore is Redis (the nodes of a fleet
/// share it), else [`MemoryCounter`] in this process.
pub async fn counter_for(
    datastore: &DatastoreSettings,
) -> Result<Arc<dyn QuotaCounter>, DatastoreError> {
    Ok(match datastore {
        DatastoreSettings::Redis(redis) => {
            let settings = RedisDatastoreSettings {
                key: format!("{}{KEY_SUFFIX}", redis.key),
                ..redis.clone()
            };
            Arc::new(RedisCounter::open(&settings, DEFAULT_LEASE).await?)
        }
        DatastoreSettings::File(_) => Arc::new(MemoryCounter::default()),
    })
}

/// Coalesced releases of one operator not yet written.
#[derive(Debug, Default, Clone, Copy)]
struct Pending {
    live: i64,
    waiting: i64,
    bytes: u64,
}

struct Inner {
    store: RedisDatastore,
    prefix: String,
    node: String,
    lease: Duration,
    admit_script: String,
    release_script: String,
    pending: Mutex<HashMap<String, Pending>>,
    /// The last view of each operator's use (see the module docs).
    seen: Mutex<HashMap<String, (Usage, u64, u64)>>,
    wake: Notify,
}

/// Counts quotas in Redis for a fleet (see the module docs). Dropping it stops its task.
pub struct RedisCounter {
    inner: Arc<Inner>,
    task: tokio::task::JoinHandle<()>,
}

impl std::fmt::Debug for RedisCounter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisCounter")
            .field("prefix", &self.inner.prefix)
            .field("node", &self.inner.node)
            .finish_non_exhaustive()
    }
}

impl Drop for RedisCounter {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn windows(now: SystemTime) -> (u64, u64, u64) {
    let secs = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    (secs, secs / 60, secs / 86_400)
}

fn millis(d: Duration) -> String {
    d.as_millis().max(1).to_string()
}

fn usage_of(answer: &[i64]) -> Usage {
    let at = |i: usize| answer.get(i).map_or(0, |v| u64::try_from(*v).unwrap_or(0));
    Usage {
        live_pairs: at(1),
        waiting_pairs: at(2),
        pairs_this_minute: at(3),
        bytes_today: at(4),
    }
}

impl RedisCounter {
    /// Opens the counter on the Redis of `settings` (its `key` is the prefix of the quota keys)
    /// with a node lease of `lease`, and starts its task (on the current Tokio runtime).
    pub async fn open(
        settings: &RedisDatastoreSettings,
        lease: Duration,
    ) -> Result<Self, DatastoreError> {
        let store = RedisDatastore::open(settings).await?;
        let inner = Arc::new(Inner {
            store,
            prefix: settings.key.clone(),
            node: format!(
                "{:016x}{:016x}",
                rand::random::<u64>(),
                rand::random::<u64>()
            ),
            lease,
            admit_script: redis_scripts::admit(),
            release_script: redis_scripts::release(),
            pending: Mutex::new(HashMap::new()),
            seen: Mutex::new(HashMap::new()),
            wake: Notify::new(),
        });
        inner.refresh_lease().await?;
        let task = tokio::spawn(run(Arc::downgrade(&inner)));
        tracing::info!(prefix = %inner.prefix, node = %inner.node, lease = ?lease, "fleet quota counter open");
        Ok(Self { inner, task })
    }

    /// How often the task refreshes the lease and retries unwritten releases: a third of it.
    pub fn refresh(&self) -> Duration {
        self.inner.lease / 3
    }

    /// This node's id in the quota keys.
    pub fn node(&self) -> &str {
        &self.inner.node
    }

    /// Releases not yet written to Redis (operators), for tests and logs.
    pub fn unwritten(&self) -> usize {
        lock(&self.inner.pending).len()
    }

    fn queue(&self, operator: &str, f: impl FnOnce(&mut Pending)) {
        f(lock(&self.inner.pending)
            .entry(operator.to_owned())
            .or_default());
        self.inner.wake.notify_one();
    }

    async fn admit_remote(
        &self,
        operator: &str,
        limits: &QuotaLimits,
        now: SystemTime,
    ) -> Result<(), QuotaError> {
        let inner = &self.inner;
        let (secs, minute, day) = windows(now);
        let limit = |q: QuotaKind| q.limit(limits).unwrap_or(0).to_string();
        let args = vec![
            inner.prefix.clone(),
            inner.node.clone(),
            operator.to_owned(),
            secs.to_string(),
            minute.to_string(),
            day.to_string(),
            millis(inner.lease),
            MAX_COUNTED_OPERATORS.to_string(),
            limit(QuotaKind::LivePairs),
            limit(QuotaKind::PairsPerMinute),
            limit(QuotaKind::WaitingPairs),
            limit(QuotaKind::BytesPerDay),
        ];
        let answer = match inner.store.eval_ints(&inner.admit_script, &[], &args).await {
            Ok(answer) => answer,
            Err(e) if QuotaKind::ALL.iter().all(|q| q.limit(limits).is_none()) => {
                // Nothing to enforce: the pair goes ahead (its release stops at 0 if uncounted).
                debug!(operator, error = %e, kind = e.kind(), "quota admission: redis unreachable, operator unlimited");
                return Ok(());
            }
            Err(e) => {
                warn!(operator, error = %e, kind = e.kind(), "quota admission: redis unreachable, refused");
                if matches!(e, DatastoreError::Timeout { .. }) {
                    QuotaCounter::abandoned(self, operator);
                }
                return Err(QuotaError::Unavailable(e.to_string()));
            }
        };
        let code = answer.first().copied().unwrap_or(-1);
        if code != -2 {
            inner.remember(operator, usage_of(&answer), minute, day);
        }
        match code {
            0 => Ok(()),
            -2 => Err(QuotaError::Full("operators")),
            1..=4 => {
                let quota = QuotaKind::ALL[usize::try_from(code - 1).unwrap_or(0)];
                Err(QuotaError::Exceeded {
                    operator: operator.to_owned(),
                    quota,
                    limit: quota.limit(limits).unwrap_or(0),
                })
            }
            other => Err(QuotaError::Unavailable(format!(
                "the admission script answered {other}"
            ))),
        }
    }
}

#[path = "redis_task.rs"]
mod task;
use task::run;

impl QuotaCounter for RedisCounter {
    fn admit<'a>(
        &'a self,
        operator: &'a str,
        limits: &'a QuotaLimits,
        now: SystemTime,
    ) -> CounterFuture<'a, Result<(), QuotaError>> {
        Box::pin(self.admit_remote(operator, limits, now))
    }

    fn abandoned(&self, operator: &str) {
        self.queue(operator, |p| {
            p.live -= 1;
            p.waiting -= 1;
        });
    }

    fn paired(&self, operator: &str) {
        self.queue(operator, |p| p.waiting -= 1);
    }

    fn ended(&self, operator: &str, waiting: bool, bytes: u64, _now: SystemTime) {
        self.queue(operator, |p| {
            p.live -= 1;
            if waiting {
                p.waiting -= 1;
            }
            p.bytes = p.bytes.saturating_add(bytes);
        });
    }

    fn usage(&self, operator: &str, now: SystemTime) -> Usage {
        let (_, minute, day) = windows(now);
        lock(&self.inner.seen)
            .get(operator)
            .map_or_else(Usage::default, |(u, m, d)| current(*u, *m, *d, minute, day))
    }

    fn all(&self, now: SystemTime) -> Vec<(String, Usage)> {
        let (_, minute, day) = windows(now);
        let mut all: Vec<_> = lock(&self.inner.seen)
            .iter()
            .map(|(op, (u, m, d))| (op.clone(), current(*u, *m, *d, minute, day)))
            .collect();
        all.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        all
    }

    fn restore(&self, operator: &str, usage: Usage, _taken_at: SystemTime) {
        let live = i64::try_from(usage.live_pairs).unwrap_or(i64::MAX);
        let waiting = i64::try_from(usage.waiting_pairs).unwrap_or(i64::MAX);
        self.queue(operator, |p| {
            p.live = p.live.saturating_add(live);
            p.waiting = p.waiting.saturating_add(waiting);
        });
    }
}

/// A remembered use seen in window (`m`, `d`), as of window (`minute`, `day`).
fn current(mut u: Usage, m: u64, d: u64, minute: u64, day: u64) -> Usage {
    if m != minute {
        u.pairs_this_minute = 0;
    }
    if d != day {
        u.bytes_today = 0;
    }
    u
}
