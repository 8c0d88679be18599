//! The public proxy's table: one owner (operator) per domain.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};

use super::{
    Change, Expiry, Holdings, MAX_ANNOUNCEMENTS, Outcome, PublicAnnouncement, Refusal, Rules,
    domain_allowed, live, needs_write,
};

#[derive(Debug, Clone)]
struct Held {
    announcement: PublicAnnouncement,
    /// The expiry of the last durable record (differs while a renewal's write is deferred).
    durable: Option<DateTime<Utc>>,
}

/// The outcome of [`PublicTable::plan`]: one result per requested domain, and the changes to
/// apply (after persisting their records) with [`PublicTable::apply`].
#[derive(Debug, Default)]
pub struct Plan {
    /// Per requested domain, in order.
    pub results: Vec<Result<Outcome, Refusal>>,
    /// What changes, in order.
    pub changes: Vec<Change<PublicAnnouncement>>,
}

impl Plan {
    /// The records to write before applying.
    pub fn writes(&self) -> impl Iterator<Item = &PublicAnnouncement> {
        self.changes
            .iter()
            .filter(|c| c.write)
            .map(|c| &c.announcement)
    }
}

/// The public proxy's table.
#[derive(Debug, Default)]
pub struct PublicTable {
    by_domain: HashMap<String, Held>,
    holdings: Holdings,
    rules: Rules,
}

/// What the items of one call planned so far, as later items see it.
#[derive(Default)]
struct Pending {
    /// Domains changed by earlier items (`None`: withdrawn).
    overlay: HashMap<String, Option<Held>>,
    /// Domains not in the table that earlier items add (for the table's bound).
    added: HashSet<String>,
    /// Entries earlier items add to (+) or withdraw from (-) the operator (for its quota).
    gained: isize,
}

impl Pending {
    fn current<'a>(&'a self, table: &'a PublicTable, key: &str) -> Option<&'a Held> {
        match self.overlay.get(key) {
            Some(planned) => planned.as_ref(),
            None => table.by_domain.get(key),
        }
    }

    /// Whether `operator` may gain one more domain.
    fn admit(&self, table: &PublicTable, operator: &str, is_new_key: bool) -> Result<(), Refusal> {
        let quota = table.rules.quota;
        if table.holdings.of(operator) as isize + self.gained >= quota as isize {
            return Err(Refusal::OverQuota { quota });
        }
        if is_new_key && table.by_domain.len() + self.added.len() >= MAX_ANNOUNCEMENTS {
            return Err(Refusal::Full);
        }
        Ok(())
    }

    fn record(
        &mut self,
        key: String,
        change: &Change<PublicAnnouncement>,
        gains: bool,
        is_new_key: bool,
    ) {
        if change.withdraw {
            self.gained -= 1;
        } else if gains {
            self.gained += 1;
            if is_new_key {
                self.added.insert(key.clone());
            }
        }
        let planned = (!change.withdraw).then(|| Held {
            announcement: change.announcement.clone(),
            durable: change.durable,
        });
        self.overlay.insert(key, planned);
    }
}

impl PublicTable {
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

    /// Replays stored records in order (last write per domain wins; quotas are for admission,
    /// not replay); beyond [`MAX_ANNOUNCEMENTS`], new domains are skipped. Returns how many were
    /// skipped.
    pub fn replay(&mut self, records: impl IntoIterator<Item = PublicAnnouncement>) -> usize {
        let mut skipped = 0;
        for a in records {
            let key = a.domain.to_ascii_lowercase();
            if self.by_domain.len() >= MAX_ANNOUNCEMENTS && !self.by_domain.contains_key(&key) {
                skipped += 1;
                continue;
            }
            self.insert(
                key,
                Held {
                    durable: a.expires_at,
                    announcement: a,
                },
            );
        }
        skipped
    }

    fn insert(&mut self, key: String, held: Held) {
        self.holdings.add(&held.announcement.operator);
        if let Some(old) = self.by_domain.insert(key, held) {
            self.holdings.remove(&old.announcement.operator);
        }
    }

    /// Decides what `operator` announcing `requested` (domain, checked expiry) changes, without
    /// changing it.
    pub fn plan(
        &self,
        operator: &str,
        allowed: &[String],
        requested: &[(String, Expiry)],
        now: DateTime<Utc>,
    ) -> Plan {
        let mut pending = Pending::default();
        let mut plan = Plan::default();
        for (domain, expiry) in requested {
            let key = domain.to_ascii_lowercase();
            // Cloned (an entry is small): `pending` changes below.
            let current = pending.current(self, &key).cloned();
            let foreign = current.as_ref().is_some_and(|c| {
                c.announcement.operator != operator && live(c.announcement.expires_at, now)
            });
            let mine = current.filter(|c| c.announcement.operator == operator);
            let is_new_key = !self.by_domain.contains_key(&key) && !pending.added.contains(&key);
            let result = if !domain_allowed(domain, allowed) {
                Err(Refusal::NotAllowed)
            } else if foreign {
                Err(Refusal::Taken)
            } else {
                self.decide(operator, domain, *expiry, mine.as_ref(), now, || {
                    pending.admit(self, operator, is_new_key)
                })
            };
            if let Ok((_, Some(change))) = &result {
                pending.record(key, change, mine.is_none(), is_new_key);
                plan.changes.push(change.clone());
            }
            plan.results.push(result.map(|(outcome, _)| outcome));
        }
        plan
    }

    /// The change of one allowed domain no other owner holds live; `admit` checks quota and
    /// capacity when the change adds a domain to `operator`.
    fn decide(
        &self,
        operator: &str,
        domain: &str,
        expiry: Expiry,
        mine: Option<&Held>,
        now: DateTime<Utc>,
        admit: impl FnOnce() -> Result<(), Refusal>,
    ) -> Result<(Outcome, Option<Change<PublicAnnouncement>>), Refusal> {
        let record = |expires_at| PublicAnnouncement {
            expires_at,
            operator: operator.to_owned(),
            domain: mine.map_or(domain, |m| &m.announcement.domain).to_owned(),
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
        match mine {
            Some(m) if m.announcement.expires_at == new => Ok((Outcome::Unchanged, None)),
            Some(m) => {
                let write = needs_write(m.durable, new, now);
                let outcome = if write {
                    Outcome::Announced
                } else {
                    Outcome::Renewed
                };
                let durable = if write { new } else { m.durable };
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
            None => {
                admit()?;
                Ok((
                    Outcome::Announced,
                    Some(Change {
                        announcement: record(new),
                        durable: new,
                        write: true,
                        withdraw: false,
                    }),
                ))
            }
        }
    }

    /// Applies planned changes (after their records are durable).
    pub fn apply(&mut self, changes: Vec<Change<PublicAnnouncement>>) {
        for c in changes {
            let key = c.announcement.domain.to_ascii_lowercase();
            if c.withdraw {
                if let Some(old) = self.by_domain.remove(&key) {
                    self.holdings.remove(&old.announcement.operator);
                }
                continue;
            }
            self.insert(
                key,
                Held {
                    announcement: c.announcement,
                    durable: c.durable,
                },
            );
        }
    }

    /// The operator a live announcement routes `server_name` to.
    pub fn route(&self, server_name: &str, now: DateTime<Utc>) -> Option<&PublicAnnouncement> {
        self.by_domain
            .get(&server_name.to_ascii_lowercase())
            .map(|h| &h.announcement)
            .filter(|a| live(a.expires_at, now))
    }

    /// Live announcements, sorted by domain.
    pub fn live(&self, now: DateTime<Utc>) -> Vec<PublicAnnouncement> {
        let mut out: Vec<_> = self
            .by_domain
            .values()
            .map(|h| &h.announcement)
            .filter(|a| live(a.expires_at, now))
            .cloned()
            .collect();
        out.sort_by(|a, b| a.domain.cmp(&b.domain));
        out
    }

    /// Every entry held as it is in memory (the contents of a compacted store), by domain.
    pub fn snapshot(&self) -> Vec<PublicAnnouncement> {
        let mut out: Vec<_> = self
            .by_domain
            .values()
            .map(|h| h.announcement.clone())
            .collect();
        out.sort_by(|a, b| a.domain.cmp(&b.domain));
        out
    }

    /// Records that the store now holds every entry exactly as in memory (after a compaction).
    pub fn mark_durable(&mut self) {
        for h in self.by_domain.values_mut() {
            h.durable = h.announcement.expires_at;
        }
    }

    /// Whether some entry's expiry in memory is not yet the stored one (a deferred renewal).
    pub fn has_deferred(&self) -> bool {
        self.by_domain
            .values()
            .any(|h| h.durable != h.announcement.expires_at)
    }

    /// Drops expired announcements; returns how many.
    pub fn prune(&mut self, now: DateTime<Utc>) -> usize {
        let before = self.by_domain.len();
        let holdings = &mut self.holdings;
        self.by_domain.retain(|_, h| {
            let keep = live(h.announcement.expires_at, now);
            if !keep {
                holdings.remove(&h.announcement.operator);
            }
            keep
        });
        before - self.by_domain.len()
    }

    /// Entries `operator` holds (live or not yet pruned).
    pub fn held_by(&self, operator: &str) -> usize {
        self.holdings.of(operator)
    }

    /// Entries held (live or not yet pruned).
    pub fn len(&self) -> usize {
        self.by_domain.len()
    }

    /// Whether no entry is held.
    pub fn is_empty(&self) -> bool {
        self.by_domain.is_empty()
    }
}
