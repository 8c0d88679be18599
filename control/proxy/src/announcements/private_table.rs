//! The private proxy's table, keyed by (public proxy, domain); each entry carries the tenant that
//! owns it, so one tenant cannot change or withdraw another's domain.

use std::collections::HashMap;

use chrono::{DateTime, Utc};

use super::{
    Change, Expiry, Holdings, MAX_ANNOUNCEMENTS, Outcome, PrivateAnnouncement, Refusal, Rules,
    live, needs_write,
};

#[derive(Debug, Clone)]
struct Held {
    announcement: PrivateAnnouncement,
    /// The expiry of the last durable record.
    durable: Option<DateTime<Utc>>,
}

/// The private proxy's table.
#[derive(Debug, Default)]
pub struct PrivateTable {
    by_key: HashMap<(String, String), Held>,
    holdings: Holdings,
    rules: Rules,
}

fn key(proxy: &str, domain: &str) -> (String, String) {
    (proxy.to_owned(), domain.to_ascii_lowercase())
}

impl PrivateTable {
    /// An empty table under `rules`.
    pub fn new(rules: Rules) -> Self {
        Self {
            rules,
            ..Self::default()
        }
    }

    /// The table's rules.
    pub fn rules(&self) -> &Rules {
        &self.rules
    }

    /// Replays stored records in order (last write per key wins); beyond
    /// [`MAX_ANNOUNCEMENTS`], new keys are skipped. Returns how many were skipped.
    pub fn replay(&mut self, records: impl IntoIterator<Item = PrivateAnnouncement>) -> usize {
        let mut skipped = 0;
        for a in records {
            let k = key(&a.proxy, &a.domain);
            if self.by_key.len() >= MAX_ANNOUNCEMENTS && !self.by_key.contains_key(&k) {
                skipped += 1;
                continue;
            }
            self.insert(
                k,
                Held {
                    durable: a.expires_at,
                    announcement: a,
                },
            );
        }
        skipped
    }

    fn insert(&mut self, k: (String, String), held: Held) {
        if let Some(owner) = &held.announcement.operator {
            self.holdings.add(owner);
        }
        if let Some(old) = self.by_key.insert(k, held)
            && let Some(owner) = &old.announcement.operator
        {
            self.holdings.remove(owner);
        }
    }

    fn remove(&mut self, k: &(String, String)) {
        if let Some(old) = self.by_key.remove(k)
            && let Some(owner) = &old.announcement.operator
        {
            self.holdings.remove(owner);
        }
    }

    /// Decides what `tenant` announcing `domain` to `proxy` with `expiry` changes, without
    /// changing it: `Ok((outcome, None))` when nothing changes.
    pub fn plan(
        &self,
        tenant: &str,
        proxy: &str,
        domain: &str,
        expiry: Expiry,
        now: DateTime<Utc>,
    ) -> Result<(Outcome, Option<Change<PrivateAnnouncement>>), Refusal> {
        let current = self.by_key.get(&key(proxy, domain));
        let owned_by = |h: &Held, who: &str| h.announcement.operator.as_deref() == Some(who);
        if current.is_some_and(|h| {
            live(h.announcement.expires_at, now)
                && h.announcement.operator.is_some()
                && !owned_by(h, tenant)
        }) {
            return Err(Refusal::Taken);
        }
        // Ours, or a legacy entry without an owner (claimed by this change).
        let mine = current.filter(|h| h.announcement.operator.is_none() || owned_by(h, tenant));
        let record = |expires_at| PrivateAnnouncement {
            expires_at,
            proxy: proxy.to_owned(),
            domain: mine.map_or(domain, |m| &m.announcement.domain).to_owned(),
            operator: Some(tenant.to_owned()),
        };
        if let Expiry::Withdraw(t) = expiry {
            return Ok(
                match mine.filter(|m| live(m.announcement.expires_at, now)) {
                    Some(_) => (
                        Outcome::Withdrawn,
                        Some(Change {
                            announcement: record(Some(t)),
                            durable: Some(t),
                            write: true,
                            withdraw: true,
                        }),
                    ),
                    None => (Outcome::NothingToWithdraw, None),
                },
            );
        }
        let new = expiry.expires_at();
        let counted = mine.is_some_and(|m| owned_by(m, tenant));
        if !counted && self.holdings.of(tenant) >= self.rules.quota {
            return Err(Refusal::OverQuota {
                quota: self.rules.quota,
            });
        }
        if current.is_none() && self.by_key.len() >= MAX_ANNOUNCEMENTS {
            return Err(Refusal::Full);
        }
        let (outcome, write, durable) = match mine {
            Some(m) if counted && m.announcement.expires_at == new => {
                return Ok((Outcome::Unchanged, None));
            }
            Some(m) if counted && !needs_write(m.durable, new, now) => {
                (Outcome::Renewed, false, m.durable)
            }
            _ => (Outcome::Announced, true, new),
        };
        Ok((
            outcome,
            Some(Change {
                announcement: record(new),
                durable,
                write,
                withdraw: false,
            }),
        ))
    }

    /// Applies a planned change (after its record is durable).
    pub fn apply(&mut self, change: Change<PrivateAnnouncement>) {
        let k = key(&change.announcement.proxy, &change.announcement.domain);
        if change.withdraw {
            self.remove(&k);
        } else {
            self.insert(
                k,
                Held {
                    announcement: change.announcement,
                    durable: change.durable,
                },
            );
        }
    }

    /// Whether a live announcement of `domain` to `proxy` exists.
    pub fn matches(&self, proxy: &str, domain: &str, now: DateTime<Utc>) -> bool {
        self.by_key
            .get(&key(proxy, domain))
            .is_some_and(|h| live(h.announcement.expires_at, now))
    }

    /// Live announcements, sorted by (proxy, domain).
    pub fn live(&self, now: DateTime<Utc>) -> Vec<PrivateAnnouncement> {
        let mut out: Vec<_> = self
            .by_key
            .values()
            .map(|h| &h.announcement)
            .filter(|a| live(a.expires_at, now))
            .cloned()
            .collect();
        out.sort_by(|a, b| (&a.proxy, &a.domain).cmp(&(&b.proxy, &b.domain)));
        out
    }

    /// Every entry held as it is in memory (the contents of a compacted store).
    pub fn snapshot(&self) -> Vec<PrivateAnnouncement> {
        let mut out: Vec<_> = self
            .by_key
            .values()
            .map(|h| h.announcement.clone())
            .collect();
        out.sort_by(|a, b| (&a.proxy, &a.domain).cmp(&(&b.proxy, &b.domain)));
        out
    }

    /// Records that the store now holds every entry exactly as in memory.
    pub fn mark_durable(&mut self) {
        for h in self.by_key.values_mut() {
            h.durable = h.announcement.expires_at;
        }
    }

    /// Whether some entry's expiry in memory is not yet the stored one (a deferred renewal).
    pub fn has_deferred(&self) -> bool {
        self.by_key
            .values()
            .any(|h| h.durable != h.announcement.expires_at)
    }

    /// Drops expired announcements; returns how many.
    pub fn prune(&mut self, now: DateTime<Utc>) -> usize {
        let before = self.by_key.len();
        let holdings = &mut self.holdings;
        self.by_key.retain(|_, h| {
            let keep = live(h.announcement.expires_at, now);
            if !keep && let Some(owner) = &h.announcement.operator {
                holdings.remove(owner);
            }
            keep
        });
        before - self.by_key.len()
    }

    /// Entries `tenant` owns (live or not yet pruned).
    pub fn held_by(&self, tenant: &str) -> usize {
        self.holdings.of(tenant)
    }

    /// Entries held.
    pub fn len(&self) -> usize {
        self.by_key.len()
    }

    /// Whether no entry is held.
    pub fn is_empty(&self) -> bool {
        self.by_key.is_empty()
    }
}
