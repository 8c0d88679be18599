//! The private proxy's table, keyed by (public proxy, domain); each entry carries the tenant that
//! owns it, so one tenant cannot change or withdraw another's domain.

use chrono::{DateTime, Utc};

use super::held::{Announcement, Held, Table, holding, withdrawal};
use super::{
    Change, Expiry, MAX_ANNOUNCEMENTS, Outcome, PrivateAnnouncement, Refusal, needs_write,
};

/// The private proxy's table.
pub type PrivateTable = Table<PrivateAnnouncement>;

fn key(proxy: &str, domain: &str) -> (String, String) {
    (proxy.to_owned(), domain.to_ascii_lowercase())
}

impl PrivateTable {
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
        let current = self.entries.get(&key(proxy, domain));
        let owned_by =
            |h: &Held<PrivateAnnouncement>, who: &str| h.announcement.owner() == Some(who);
        if current.is_some_and(|h| {
            h.is_live(now) && h.announcement.operator.is_some() && !owned_by(h, tenant)
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
            let mine_live = mine.is_some_and(|m| m.is_live(now));
            return Ok(withdrawal(mine_live, record(Some(t)), t));
        }
        let new = expiry.expires_at();
        let counted = mine.is_some_and(|m| owned_by(m, tenant));
        if !counted && self.entries.held_by(tenant) >= self.rules.quota {
            return Err(Refusal::OverQuota {
                quota: self.rules.quota,
            });
        }
        if current.is_none() && self.entries.len() >= MAX_ANNOUNCEMENTS {
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
        Ok(holding(outcome, record(new), durable, write))
    }

    /// Applies a planned change (after its record is durable).
    pub fn apply(&mut self, change: Change<PrivateAnnouncement>) {
        self.entries.apply(change);
    }

    /// Whether a live announcement of `domain` to `proxy` exists.
    pub fn matches(&self, proxy: &str, domain: &str, now: DateTime<Utc>) -> bool {
        self.entries
            .get(&key(proxy, domain))
            .is_some_and(|h| h.is_live(now))
    }
}
