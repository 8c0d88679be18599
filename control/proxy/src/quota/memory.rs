//! [`MemoryCounter`]: the quotas counted in this process (one proxy). Fixed UTC windows: the
//! per-minute count resets at each full minute, the daily bytes at 00:00 UTC.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};
use std::time::{SystemTime, UNIX_EPOCH};

use super::counter::{CounterFuture, QuotaCounter, QuotaError, QuotaKind, Usage};
use crate::settings::QuotaLimits;

/// Operators counted at once (~100 B each: ~6.5 MiB). Operators are authenticated directory
/// members, so a real directory stays far below; an entry with no pair and no bytes today is
/// dropped when room is needed. Past it, a new operator's pairs are refused ([`QuotaError::Full`]).
pub const MAX_COUNTED_OPERATORS: usize = 65_536;

#[derive(Debug, Default, Clone, Copy)]
struct Count {
    live: u64,
    waiting: u64,
    minute: u64,
    in_minute: u64,
    day: u64,
    bytes_day: u64,
}

impl Count {
    /// Rolls the windows forward to `now` (UTC minute and day numbers).
    fn roll(&mut self, minute: u64, day: u64) {
        if self.minute != minute {
            self.minute = minute;
            self.in_minute = 0;
        }
        if self.day != day {
            self.day = day;
            self.bytes_day = 0;
        }
    }

    fn usage(&self) -> Usage {
        Usage {
            live_pairs: self.live,
            waiting_pairs: self.waiting,
            pairs_this_minute: self.in_minute,
            bytes_today: self.bytes_day,
        }
    }

    fn idle(&self) -> bool {
        self.live == 0 && self.bytes_day == 0 && self.in_minute == 0
    }
}

fn windows(now: SystemTime) -> (u64, u64) {
    let secs = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    (secs / 60, secs / 86_400)
}

/// Counts quotas in memory (see the module docs).
#[derive(Debug)]
pub struct MemoryCounter {
    counts: Mutex<HashMap<String, Count>>,
    cap: usize,
}

impl Default for MemoryCounter {
    fn default() -> Self {
        Self::new(MAX_COUNTED_OPERATORS)
    }
}

impl MemoryCounter {
    /// A counter of at most `cap` operators.
    pub fn new(cap: usize) -> Self {
        Self {
            counts: Mutex::new(HashMap::new()),
            cap,
        }
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<String, Count>> {
        self.counts.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn admit_now(
        &self,
        operator: &str,
        limits: &QuotaLimits,
        now: SystemTime,
    ) -> Result<(), QuotaError> {
        let (minute, day) = windows(now);
        let mut counts = self.lock();
        if !counts.contains_key(operator) && counts.len() >= self.cap {
            counts.retain(|_, c| {
                c.roll(minute, day);
                !c.idle()
            });
            if counts.len() >= self.cap {
                return Err(QuotaError::Full("operators"));
            }
        }
        let c = counts.entry(operator.to_owned()).or_default();
        c.roll(minute, day);
        let usage = c.usage();
        for quota in QuotaKind::ALL {
            let Some(limit) = quota.limit(limits) else {
                continue;
            };
            // A pair is one more of each count; bytes are refused once the day's are spent.
            let after = match quota {
                QuotaKind::BytesPerDay => quota.used(&usage),
                _ => quota.used(&usage) + 1,
            };
            let over = match quota {
                QuotaKind::BytesPerDay => after >= limit,
                _ => after > limit,
            };
            if over {
                return Err(QuotaError::Exceeded {
                    operator: operator.to_owned(),
                    quota,
                    limit,
                });
            }
        }
        c.live += 1;
        c.waiting += 1;
        c.in_minute += 1;
        Ok(())
    }

    fn update(&self, operator: &str, f: impl FnOnce(&mut Count)) {
        if let Some(c) = self.lock().get_mut(operator) {
            f(c);
        }
    }
}

impl QuotaCounter for MemoryCounter {
    fn admit<'a>(
        &'a self,
        operator: &'a str,
        limits: &'a QuotaLimits,
        now: SystemTime,
    ) -> CounterFuture<'a, Result<(), QuotaError>> {
        let r = self.admit_now(operator, limits, now);
        Box::pin(std::future::ready(r))
    }

    fn abandoned(&self, operator: &str) {
        self.update(operator, |c| {
            c.live = c.live.saturating_sub(1);
            c.waiting = c.waiting.saturating_sub(1);
        });
    }

    fn paired(&self, operator: &str) {
        self.update(operator, |c| c.waiting = c.waiting.saturating_sub(1));
    }

    fn ended(&self, operator: &str, waiting: bool, bytes: u64, now: SystemTime) {
        let (minute, day) = windows(now);
        self.update(operator, |c| {
            c.roll(minute, day);
            c.live = c.live.saturating_sub(1);
            if waiting {
                c.waiting = c.waiting.saturating_sub(1);
            }
            c.bytes_day = c.bytes_day.saturating_add(bytes);
        });
    }

    fn usage(&self, operator: &str, now: SystemTime) -> Usage {
        let (minute, day) = windows(now);
        self.lock().get(operator).map_or_else(Usage::default, |c| {
            let mut c = *c;
            c.roll(minute, day);
            c.usage()
        })
    }

    fn all(&self, now: SystemTime) -> Vec<(String, Usage)> {
        let (minute, day) = windows(now);
        let mut all: Vec<_> = self
            .lock()
            .iter()
            .map(|(name, c)| {
                let mut c = *c;
                c.roll(minute, day);
                (name.clone(), c.usage())
            })
            .collect();
        all.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        all
    }

    fn restore(&self, operator: &str, usage: Usage, taken_at: SystemTime) {
        let (minute, day) = windows(taken_at);
        let mut counts = self.lock();
        if !counts.contains_key(operator) && counts.len() >= self.cap {
            // The previous process counted at most as many operators (same bound).
            return;
        }
        counts.insert(
            operator.to_owned(),
            Count {
                live: usage.live_pairs,
                waiting: usage.waiting_pairs,
                minute,
                in_minute: usage.pairs_this_minute,
                day,
                bytes_day: usage.bytes_today,
            },
        );
    }
}

#[cfg(test)]
#[path = "memory_tests.rs"]
mod tests;
