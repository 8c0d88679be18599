//! Announcements, sans-IO: which operator receives TLS connections for which domain (public
//! proxy, SPEC §4.2), and which domains the private proxy announced to which public proxy
//! (§4.7). Time is injected; persistence is the caller's (records are the original's
//! `DataEntry` JSON, type 1 public / type 2 private, last write wins on replay).
//!
//! Fixes over the original: expired announcements are pruned, and a domain whose announcement
//! expired is free for another operator; domains match case-insensitively (DNS names).

use std::collections::HashMap;

use chrono::{DateTime, TimeDelta, Utc};
use serde::{Deserialize, Serialize};

/// Datastore entry type of a public announcement (the original's `PublicAnnouncementType`).
pub const PUBLIC_ANNOUNCEMENT_TYPE: u8 = 1;
/// Datastore entry type of a private announcement (the original's `PrivateAnnouncementType`).
pub const PRIVATE_ANNOUNCEMENT_TYPE: u8 = 2;
/// Most announcements a table holds (entries; each ~200 B): bounds memory against an operator
/// announcing without end. Announcing beyond it is refused item by item.
pub const MAX_ANNOUNCEMENTS: usize = 65_536;
/// Furthest ahead an `expires_at` may lie (the original's "7 days or less").
pub const MAX_EXPIRY_AHEAD: TimeDelta = TimeDelta::days(7);

/// `{expires_at, operator, domain}` as stored and as `getAnnouncements` returns it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PublicAnnouncement {
    /// When it stops routing; `None` = never.
    pub expires_at: Option<DateTime<Utc>>,
    /// The operator that receives the connections.
    pub operator: String,
    /// The TLS server name routed.
    pub domain: String,
}

/// `{expires_at, proxy, domain}` as stored and as the private `getAnnouncements` returns it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PrivateAnnouncement {
    /// When it stops; `None` = never.
    pub expires_at: Option<DateTime<Utc>>,
    /// The public proxy it is announced to.
    pub proxy: String,
    /// The domain.
    pub domain: String,
}

fn live(expires_at: Option<DateTime<Utc>>, now: DateTime<Utc>) -> bool {
    expires_at.is_none_or(|t| t >= now)
}

/// Whether `expires_at` is acceptable at `now` (at most [`MAX_EXPIRY_AHEAD`] ahead).
pub fn expiry_ok(expires_at: Option<DateTime<Utc>>, now: DateTime<Utc>) -> bool {
    expires_at.is_none_or(|t| t - MAX_EXPIRY_AHEAD <= now)
}

/// Whether `domain` ends with one of `allowed` (suffixes starting with `.`), ignoring case.
pub fn domain_allowed(domain: &str, allowed: &[String]) -> bool {
    let domain = domain.to_ascii_lowercase();
    allowed
        .iter()
        .any(|suffix| domain.ends_with(&suffix.to_ascii_lowercase()))
}

/// Why one announced domain was refused (its JSON-RPC item error).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Outside the caller's `allowed_domains` (403 "not allowed").
    NotAllowed,
    /// A live announcement of another operator holds it (409 "already taken").
    Taken,
    /// The table holds [`MAX_ANNOUNCEMENTS`] (507 "too many announcements").
    Full,
}

impl Refusal {
    /// The item's `{code, message}`.
    pub fn code_message(&self) -> (i64, &'static str) {
        match self {
            Refusal::NotAllowed => (403, "not allowed"),
            Refusal::Taken => (409, "already taken"),
            Refusal::Full => (507, "too many announcements"),
        }
    }
}

/// The outcome of [`PublicTable::plan`]: one result per requested domain, and the records to
/// persist before [`PublicTable::apply`].
#[derive(Debug, Default)]
pub struct Plan {
    /// Per requested domain, in order.
    pub results: Vec<Result<(), Refusal>>,
    /// New or changed announcements.
    pub writes: Vec<PublicAnnouncement>,
}

/// The public proxy's table: one operator per domain.
#[derive(Debug, Default)]
pub struct PublicTable {
    by_domain: HashMap<String, PublicAnnouncement>,
}

impl PublicTable {
    /// Replays stored records in order (last write per domain wins); beyond the bound, new
    /// domains are skipped. Returns how many were skipped.
    pub fn replay(&mut self, records: impl IntoIterator<Item = PublicAnnouncement>) -> usize {
        let mut skipped = 0;
        for a in records {
            let key = a.domain.to_ascii_lowercase();
            if self.by_domain.len() >= MAX_ANNOUNCEMENTS && !self.by_domain.contains_key(&key) {
                skipped += 1;
                continue;
            }
            self.by_domain.insert(key, a);
        }
        skipped
    }

    /// Decides what `operator` announcing `requested` (domain, expiry) changes, without changing it.
    pub fn plan(
        &self,
        operator: &str,
        allowed: &[String],
        requested: &[(String, Option<DateTime<Utc>>)],
        now: DateTime<Utc>,
    ) -> Plan {
        let mut overlay: HashMap<String, PublicAnnouncement> = HashMap::new();
        let mut plan = Plan::default();
        for (domain, expires_at) in requested {
            let key = domain.to_ascii_lowercase();
            let current = overlay.get(&key).or_else(|| self.by_domain.get(&key));
            let result = match current {
                _ if !domain_allowed(domain, allowed) => Err(Refusal::NotAllowed),
                Some(c) if c.operator != operator && live(c.expires_at, now) => Err(Refusal::Taken),
                Some(c) if c.operator == operator && c.expires_at == *expires_at => Ok(None),
                None if self.by_domain.len() + overlay.len() >= MAX_ANNOUNCEMENTS => {
                    Err(Refusal::Full)
                }
                _ => Ok(Some(PublicAnnouncement {
                    expires_at: *expires_at,
                    operator: operator.to_owned(),
                    domain: domain.clone(),
                })),
            };
            plan.results.push(result.map(|write| {
                if let Some(w) = write {
                    overlay.insert(key, w.clone());
                    plan.writes.push(w);
                }
            }));
        }
        plan
    }

    /// Applies persisted writes.
    pub fn apply(&mut self, writes: Vec<PublicAnnouncement>) {
        for w in writes {
            self.by_domain.insert(w.domain.to_ascii_lowercase(), w);
        }
    }

    /// The operator a live announcement routes `server_name` to.
    pub fn route(&self, server_name: &str, now: DateTime<Utc>) -> Option<&PublicAnnouncement> {
        self.by_domain
            .get(&server_name.to_ascii_lowercase())
            .filter(|a| live(a.expires_at, now))
    }

    /// Live announcements, sorted by domain.
    pub fn live(&self, now: DateTime<Utc>) -> Vec<PublicAnnouncement> {
        let mut out: Vec<_> = self
            .by_domain
            .values()
            .filter(|a| live(a.expires_at, now))
            .cloned()
            .collect();
        out.sort_by(|a, b| a.domain.cmp(&b.domain));
        out
    }

    /// Drops expired announcements; returns how many.
    pub fn prune(&mut self, now: DateTime<Utc>) -> usize {
        let before = self.by_domain.len();
        self.by_domain.retain(|_, a| live(a.expires_at, now));
        before - self.by_domain.len()
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

/// The private proxy's table, keyed by (public proxy, domain).
#[derive(Debug, Default)]
pub struct PrivateTable {
    by_key: HashMap<(String, String), PrivateAnnouncement>,
}

impl PrivateTable {
    fn key(proxy: &str, domain: &str) -> (String, String) {
        (proxy.to_owned(), domain.to_ascii_lowercase())
    }

    /// Inserts or replaces; `Ok(true)` when something changed, `Err` when full.
    pub fn upsert(&mut self, a: PrivateAnnouncement) -> Result<bool, Refusal> {
        let key = Self::key(&a.proxy, &a.domain);
        match self.by_key.get(&key) {
            Some(old) if *old == a => Ok(false),
            None if self.by_key.len() >= MAX_ANNOUNCEMENTS => Err(Refusal::Full),
            _ => {
                self.by_key.insert(key, a);
                Ok(true)
            }
        }
    }

    /// Whether a live announcement of `domain` to `proxy` exists.
    pub fn matches(&self, proxy: &str, domain: &str, now: DateTime<Utc>) -> bool {
        self.by_key
            .get(&Self::key(proxy, domain))
            .is_some_and(|a| live(a.expires_at, now))
    }

    /// Live announcements, sorted by (proxy, domain).
    pub fn live(&self, now: DateTime<Utc>) -> Vec<PrivateAnnouncement> {
        let mut out: Vec<_> = self
            .by_key
            .values()
            .filter(|a| live(a.expires_at, now))
            .cloned()
            .collect();
        out.sort_by(|a, b| (&a.proxy, &a.domain).cmp(&(&b.proxy, &b.domain)));
        out
    }

    /// Drops expired announcements; returns how many.
    pub fn prune(&mut self, now: DateTime<Utc>) -> usize {
        let before = self.by_key.len();
        self.by_key.retain(|_, a| live(a.expires_at, now));
        before - self.by_key.len()
    }
}

#[cfg(test)]
mod tests;
