//! The public proxy's table: one owner (operator) per domain.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};

use super::held::{Table, holding, withdrawal};
use super::{
    Change, Expiry, MAX_ANNOUNCEMENTS, Outcome, PublicAnnouncement, Refusal, domain_allowed,
    needs_write,
};

type Held = super::held::Held<PublicAnnouncement>;

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
pub type PublicTable = Table<PublicAnnouncement>;

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
            None => table.entries.get(key),
        }
    }

    /// Whether `operator` may gain one more domain.
    fn admit(&self, table: &PublicTable, operator: &str, is_new_key: bool) -> Result<(), Refusal> {
        let quota = table.rules.quota;
        if table.entries.held_by(operator) as isize + self.gained >= quota as isize {
            return Err(Refusal::OverQuota { quota });
        }
        if is_new_key && table.entries.len() + self.added.len() >= MAX_ANNOUNCEMENTS {
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
            let foreign = current
                .as_ref()
                .is_some_and(|c| c.announcement.operator != operator && c.is_live(now));
            let mine = current.filter(|c| c.announcement.operator == operator);
            let is_new_key = !self.entries.contains(&key) && !pending.added.contains(&key);
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
            let mine_live = mine.is_some_and(|m| m.is_live(now));
            return Ok(withdrawal(mine_live, record(Some(t)), t));
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
                Ok(holding(outcome, record(new), durable, write))
            }
            None => {
                admit()?;
                Ok(holding(Outcome::Announced, record(new), new, true))
            }
        }
    }

    /// Applies planned changes (after their records are durable).
    pub fn apply(&mut self, changes: Vec<Change<PublicAnnouncement>>) {
        for c in changes {
            self.entries.apply(c);
        }
    }

    /// The operator a live announcement routes `server_name` to.
    pub fn route(&self, server_name: &str, now: DateTime<Utc>) -> Option<&PublicAnnouncement> {
        self.entries
            .get(server_name.to_ascii_lowercase().as_str())
            .filter(|h| h.is_live(now))
            .map(|h| &h.announcement)
    }
}
