//! Announcements, sans-IO: which operator receives TLS connections for which domain (public
//! proxy, SPEC §4.2, [`PublicTable`]), and which domains the private proxy's tenants announced to
//! which public proxy (§4.7, [`PrivateTable`]). Time is injected; persistence is the caller's
//! (records are the original's `DataEntry` JSON, type 1 public / type 2 private, last write wins
//! on replay).
//!
//! Rules (fixes over the original, which let one operator block or take over others' domains):
//! - **Owner only**: an entry carries its owner (public: the announcing operator; private: the
//!   tenant). While it is live, only the owner changes or withdraws it; anyone else gets
//!   [`Refusal::Taken`]. An expired entry is free for anyone allowed the domain.
//! - **Quota**: one owner holds at most `per_operator_quota` entries ([`Refusal::OverQuota`]);
//!   every table holds at most [`MAX_ANNOUNCEMENTS`] ([`Refusal::Full`]).
//! - **Expiry** ([`Rules::expiry`]): a future `expires_at` at most `max_lifetime` ahead, or none
//!   (permanent, as the original allows). An `expires_at` that is not in the future is no
//!   announcement: it is the original clients' *withdrawal* (iris-client aborts an announcement
//!   by sending `now - 1 week`), which removes the owner's live entry and creates nothing.
//! - **Bounded writes** ([`needs_write`]): a renewal that only extends a stored expiry by a small
//!   part of the remaining lifetime is applied in memory and written later (or by compaction).
//! - Expired announcements are pruned; domains match case-insensitively (DNS names).

mod held;
mod private_table;
mod public_table;

use chrono::{DateTime, TimeDelta, Utc};

pub use held::{Announcement, Table};
pub use private_table::PrivateTable;
pub use public_table::{Plan, PublicTable};

use crate::settings::{AnnouncementSettings, MAX_ANNOUNCEMENT_QUOTA};

/// Datastore entry type of a public announcement (the original's `PublicAnnouncementType`).
pub const PUBLIC_ANNOUNCEMENT_TYPE: u8 = 1;
/// Datastore entry type of a private announcement (the original's `PrivateAnnouncementType`).
pub const PRIVATE_ANNOUNCEMENT_TYPE: u8 = 2;
/// Most announcements a table holds (entries; each ~200 B, so ~13 MiB): bounds memory whatever
/// the quotas. Announcing beyond it is refused item by item.
pub const MAX_ANNOUNCEMENTS: usize = 65_536;
const _: () = assert!(MAX_ANNOUNCEMENTS == MAX_ANNOUNCEMENT_QUOTA);

/// A renewal that only extends a stored expiry is written when the extension exceeds 1/4 of the
/// announcement's remaining lifetime; otherwise it is kept in memory. So the stored expiry always
/// covers at least 3/4 of the remaining lifetime the owner asked for (after a crash the domain
/// routes at least that long, and the private proxy's periodic re-announcement restores the
/// rest), and steady renewals write at most once per quarter lifetime per domain (7 days: once
/// per 42 h) instead of once per renewal.
pub const RENEWAL_WRITE_DIVISOR: i32 = 4;

/// `{expires_at, operator, domain}` as stored and as `getAnnouncements` returns it (the
/// contract's type).
pub use tandem_contracts::public_proxy::PublicAnnouncement;

/// `{expires_at, proxy, domain, operator}` as stored and as the private `getAnnouncements`
/// returns it (the contract's type).
pub use tandem_contracts::private_proxy::PrivateAnnouncement;

/// Whether an announcement routes at `now`: until its `expires_at`, exclusive (so a withdrawal,
/// whose `expires_at` is not in the future, never routes, also when replayed).
pub(crate) fn live(expires_at: Option<DateTime<Utc>>, now: DateTime<Utc>) -> bool {
    expires_at.is_none_or(|t| t > now)
}

/// Whether `domain` ends with one of `allowed` (suffixes starting with `.`), ignoring case.
pub fn domain_allowed(domain: &str, allowed: &[String]) -> bool {
    let domain = domain.to_ascii_lowercase();
    allowed
        .iter()
        .any(|suffix| domain.ends_with(&suffix.to_ascii_lowercase()))
}

/// What a requested `expires_at` asks for (see [`Rules::expiry`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expiry {
    /// No `expires_at`: routes until withdrawn.
    Never,
    /// Routes until this instant (in the future, within the maximum lifetime).
    Until(DateTime<Utc>),
    /// Not in the future: withdraw the owner's announcement (recorded with this instant).
    Withdraw(DateTime<Utc>),
}

impl Expiry {
    /// The `expires_at` an announcement gets.
    pub fn expires_at(&self) -> Option<DateTime<Utc>> {
        match *self {
            Expiry::Never => None,
            Expiry::Until(t) | Expiry::Withdraw(t) => Some(t),
        }
    }
}

/// A timed announcement that lies too far ahead.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("timed announcements need to expire in {} or less", human(*.max))]
pub struct TooFarAhead {
    /// The maximum lifetime.
    pub max: TimeDelta,
}

fn human(d: TimeDelta) -> String {
    let secs = d.num_seconds();
    let (n, unit) = match secs {
        s if s % 86_400 == 0 => (s / 86_400, "day"),
        s if s % 3600 == 0 => (s / 3600, "hour"),
        s => (s, "second"),
    };
    format!("{n} {unit}{}", if n == 1 { "" } else { "s" })
}

/// The admission rules of one table, from its `announcements:` settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rules {
    /// Most entries one owner holds.
    pub quota: usize,
    /// Furthest ahead a timed announcement may expire.
    pub max_lifetime: TimeDelta,
}

impl Default for Rules {
    fn default() -> Self {
        Self::new(&AnnouncementSettings::default())
    }
}

impl Rules {
    /// The rules of `settings`.
    pub fn new(settings: &AnnouncementSettings) -> Self {
        Self {
            quota: settings.per_operator_quota.get(),
            max_lifetime: TimeDelta::from_std(settings.max_lifetime).unwrap_or(TimeDelta::days(7)),
        }
    }

    /// Classifies a requested `expires_at` at `now`: none is permanent, the future (at most
    /// `max_lifetime` ahead) is a timed announcement, anything else a withdrawal.
    pub fn expiry(
        &self,
        expires_at: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
    ) -> Result<Expiry, TooFarAhead> {
        match expires_at {
            None => Ok(Expiry::Never),
            Some(t) if t <= now => Ok(Expiry::Withdraw(t)),
            Some(t) if t - self.max_lifetime <= now => Ok(Expiry::Until(t)),
            Some(_) => Err(TooFarAhead {
                max: self.max_lifetime,
            }),
        }
    }
}

/// Whether moving an entry's stored expiry `durable` to `new` must be written now: always,
/// unless it is an extension of a still-live stored expiry by at most 1/[`RENEWAL_WRITE_DIVISOR`]
/// of the new remaining lifetime.
pub fn needs_write(
    durable: Option<DateTime<Utc>>,
    new: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> bool {
    match (durable, new) {
        (Some(d), Some(n)) if n > d && d > now => (n - d) * RENEWAL_WRITE_DIVISOR > n - now,
        _ => durable != new,
    }
}

/// Why one announced domain was refused (its JSON-RPC item error).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Outside the caller's `allowed_domains` (403 "not allowed").
    NotAllowed,
    /// A live announcement of another owner holds it: changing or withdrawing it is theirs
    /// alone (409 "already taken").
    Taken,
    /// The caller already holds its quota of domains (429).
    OverQuota {
        /// The quota.
        quota: usize,
    },
    /// The table holds [`MAX_ANNOUNCEMENTS`] (507 "too many announcements").
    Full,
}

impl Refusal {
    /// The item's `{code, message}`.
    pub fn code_message(&self) -> (i64, String) {
        match self {
            Refusal::NotAllowed => (403, "not allowed".into()),
            Refusal::Taken => (409, "already taken".into()),
            Refusal::OverQuota { quota } => (
                429,
                format!("announcement quota reached: at most {quota} domains per operator"),
            ),
            Refusal::Full => (507, "too many announcements".into()),
        }
    }
}

/// What an accepted request did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// A new or changed announcement, written.
    Announced,
    /// An extension kept in memory; its write is deferred (see [`needs_write`]).
    Renewed,
    /// Already announced exactly so.
    Unchanged,
    /// The owner's live announcement was withdrawn (the withdrawal is written).
    Withdrawn,
    /// A withdrawal of something the caller does not hold live: nothing to do.
    NothingToWithdraw,
}

/// One planned change of a table, applied after its record (if any) is durable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change<A> {
    /// The announcement as it will be held (for a withdrawal: the record written).
    pub announcement: A,
    /// The expiry the store holds for it after this change.
    pub durable: Option<DateTime<Utc>>,
    /// Whether a record must be written before applying.
    pub write: bool,
    /// Whether this removes the entry.
    pub withdraw: bool,
}

#[cfg(test)]
mod private_tests;
#[cfg(test)]
mod public_tests;
#[cfg(test)]
mod rules_tests;
