//! What both announcement tables hold: entries by key with the expiry of their last durable
//! record, and the count per owner the quotas read. The tables differ in their key (public: the
//! domain; private: public proxy and domain) and in how they plan a change; holding, replaying,
//! applying, listing, compaction bookkeeping and pruning are the same and live here.

use std::borrow::Borrow;
use std::cmp::Ordering;
use std::collections::HashMap;
use std::hash::Hash;

use chrono::{DateTime, Utc};

use super::{
    Change, MAX_ANNOUNCEMENTS, Outcome, PrivateAnnouncement, PublicAnnouncement, Rules, live,
};

/// What a table needs of its announcements.
pub trait Announcement: Clone + std::fmt::Debug + Send + Sync + 'static {
    /// The table key (domains case-folded: DNS names match case-insensitively).
    type Key: Eq + Hash + Clone + std::fmt::Debug + Send + Sync;
    /// This announcement's key.
    fn key(&self) -> Self::Key;
    /// Who owns it (counts against their quota); `None` for legacy unowned records.
    fn owner(&self) -> Option<&str>;
    /// When it stops routing (`None`: never).
    fn expires_at(&self) -> Option<DateTime<Utc>>;
    /// The order of listings (as stored, not case-folded).
    fn listing_order(&self, other: &Self) -> Ordering;
}

impl Announcement for PublicAnnouncement {
    type Key = String;

    fn key(&self) -> String {
        self.domain.to_ascii_lowercase()
    }

    fn owner(&self) -> Option<&str> {
        Some(&self.operator)
    }

    fn expires_at(&self) -> Option<DateTime<Utc>> {
        self.expires_at
    }

    fn listing_order(&self, other: &Self) -> Ordering {
        self.domain.cmp(&other.domain)
    }
}

impl Announcement for PrivateAnnouncement {
    type Key = (String, String);

    fn key(&self) -> (String, String) {
        (self.proxy.clone(), self.domain.to_ascii_lowercase())
    }

    fn owner(&self) -> Option<&str> {
        self.operator.as_deref()
    }

    fn expires_at(&self) -> Option<DateTime<Utc>> {
        self.expires_at
    }

    fn listing_order(&self, other: &Self) -> Ordering {
        (&self.proxy, &self.domain).cmp(&(&other.proxy, &other.domain))
    }
}

/// One entry as held.
#[derive(Debug, Clone)]
pub(crate) struct Held<A> {
    pub(crate) announcement: A,
    /// The expiry of the last durable record (differs while a renewal's write is deferred).
    pub(crate) durable: Option<DateTime<Utc>>,
}

impl<A: Announcement> Held<A> {
    /// Whether it routes at `now`.
    pub(crate) fn is_live(&self, now: DateTime<Utc>) -> bool {
        live(self.announcement.expires_at(), now)
    }
}

/// Entries by key, at most [`MAX_ANNOUNCEMENTS`], with their owners' counts.
#[derive(Debug)]
pub(crate) struct Entries<A: Announcement> {
    by_key: HashMap<A::Key, Held<A>>,
    holdings: Holdings,
}

impl<A: Announcement> Default for Entries<A> {
    fn default() -> Self {
        Self {
            by_key: HashMap::new(),
            holdings: Holdings::default(),
        }
    }
}

impl<A: Announcement> Entries<A> {
    pub(crate) fn get<Q>(&self, key: &Q) -> Option<&Held<A>>
    where
        A::Key: Borrow<Q>,
        Q: Eq + Hash + ?Sized,
    {
        self.by_key.get(key)
    }

    pub(crate) fn contains<Q>(&self, key: &Q) -> bool
    where
        A::Key: Borrow<Q>,
        Q: Eq + Hash + ?Sized,
    {
        self.by_key.contains_key(key)
    }

    /// Entries held (live or not yet pruned).
    pub(crate) fn len(&self) -> usize {
        self.by_key.len()
    }

    /// Entries `owner` holds (live or not yet pruned).
    pub(crate) fn held_by(&self, owner: &str) -> usize {
        self.holdings.of(owner)
    }

    /// Replays stored records in order (last write per key wins; quotas are for admission, not
    /// replay); beyond [`MAX_ANNOUNCEMENTS`], new keys are skipped. Returns how many were.
    pub(crate) fn replay(&mut self, records: impl IntoIterator<Item = A>) -> usize {
        let mut skipped = 0;
        for a in records {
            let key = a.key();
            if self.by_key.len() >= MAX_ANNOUNCEMENTS && !self.by_key.contains_key(&key) {
                skipped += 1;
                continue;
            }
            self.insert(Held {
                durable: a.expires_at(),
                announcement: a,
            });
        }
        skipped
    }

    fn insert(&mut self, held: Held<A>) {
        if let Some(owner) = held.announcement.owner() {
            self.holdings.add(owner);
        }
        if let Some(old) = self.by_key.insert(held.announcement.key(), held)
            && let Some(owner) = old.announcement.owner()
        {
            self.holdings.remove(owner);
        }
    }

    /// Applies a planned change (after its record is durable).
    pub(crate) fn apply(&mut self, change: Change<A>) {
        if !change.withdraw {
            return self.insert(Held {
                announcement: change.announcement,
                durable: change.durable,
            });
        }
        if let Some(old) = self.by_key.remove(&change.announcement.key())
            && let Some(owner) = old.announcement.owner()
        {
            self.holdings.remove(owner);
        }
    }

    /// Live announcements, in listing order.
    pub(crate) fn live(&self, now: DateTime<Utc>) -> Vec<A> {
        let live = self.by_key.values().filter(|h| h.is_live(now));
        sorted(live.map(|h| h.announcement.clone()).collect())
    }

    /// Every entry held as it is in memory (the contents of a compacted store).
    pub(crate) fn snapshot(&self) -> Vec<A> {
        sorted(
            self.by_key
                .values()
                .map(|h| h.announcement.clone())
                .collect(),
        )
    }

    /// Records that the store now holds every entry exactly as in memory.
    pub(crate) fn mark_durable(&mut self) {
        for h in self.by_key.values_mut() {
            h.durable = h.announcement.expires_at();
        }
    }

    /// Whether some entry's expiry in memory is not yet the stored one (a deferred renewal).
    pub(crate) fn has_deferred(&self) -> bool {
        self.by_key
            .values()
            .any(|h| h.durable != h.announcement.expires_at())
    }

    /// Drops expired announcements; returns how many.
    pub(crate) fn prune(&mut self, now: DateTime<Utc>) -> usize {
        let before = self.by_key.len();
        let holdings = &mut self.holdings;
        self.by_key.retain(|_, h| {
            let keep = h.is_live(now);
            if !keep && let Some(owner) = h.announcement.owner() {
                holdings.remove(owner);
            }
            keep
        });
        before - self.by_key.len()
    }
}

/// An announcement table under its rules: [`super::PublicTable`] or [`super::PrivateTable`]
/// (each adds its own planning and lookups).
#[derive(Debug)]
pub struct Table<A: Announcement> {
    pub(super) entries: Entries<A>,
    pub(super) rules: Rules,
}

impl<A: Announcement> Default for Table<A> {
    fn default() -> Self {
        Self::new(Rules::default())
    }
}

impl<A: Announcement> Table<A> {
    /// An empty table under `rules`.
    pub fn new(rules: Rules) -> Self {
        Self {
            entries: Entries::default(),
            rules,
        }
    }

    /// The table's rules.
    pub fn rules(&self) -> &Rules {
        &self.rules
    }

    /// Replays stored records in order (last write per key wins; quotas are for admission, not
    /// replay); beyond [`MAX_ANNOUNCEMENTS`], new keys are skipped. Returns how many were.
    pub fn replay(&mut self, records: impl IntoIterator<Item = A>) -> usize {
        self.entries.replay(records)
    }

    /// Live announcements in listing order (public: by domain; private: by proxy, domain).
    pub fn live(&self, now: DateTime<Utc>) -> Vec<A> {
        self.entries.live(now)
    }

    /// Every entry held as it is in memory (the contents of a compacted store).
    pub fn snapshot(&self) -> Vec<A> {
        self.entries.snapshot()
    }

    /// Records that the store now holds every entry exactly as in memory (after a compaction).
    pub fn mark_durable(&mut self) {
        self.entries.mark_durable();
    }

    /// Whether some entry's expiry in memory is not yet the stored one (a deferred renewal).
    pub fn has_deferred(&self) -> bool {
        self.entries.has_deferred()
    }

    /// Drops expired announcements; returns how many.
    pub fn prune(&mut self, now: DateTime<Utc>) -> usize {
        self.entries.prune(now)
    }

    /// Entries `owner` holds (live or not yet pruned).
    pub fn held_by(&self, owner: &str) -> usize {
        self.entries.held_by(owner)
    }

    /// Entries held (live or not yet pruned).
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether no entry is held.
    pub fn is_empty(&self) -> bool {
        self.entries.len() == 0
    }
}

fn sorted<A: Announcement>(mut out: Vec<A>) -> Vec<A> {
    out.sort_by(A::listing_order);
    out
}

/// The change that holds `record` with the stored expiry `durable` (`write`: its record is
/// written before the change is applied).
pub(crate) fn holding<A>(
    outcome: Outcome,
    record: A,
    durable: Option<DateTime<Utc>>,
    write: bool,
) -> (Outcome, Option<Change<A>>) {
    let change = Change {
        announcement: record,
        durable,
        write,
        withdraw: false,
    };
    (outcome, Some(change))
}

/// The withdrawal of the caller's entry `mine` (when it is live) by a record expiring at `at`.
pub(crate) fn withdrawal<A: Announcement>(
    mine_live: bool,
    record: A,
    at: DateTime<Utc>,
) -> (Outcome, Option<Change<A>>) {
    if !mine_live {
        return (Outcome::NothingToWithdraw, None);
    }
    let change = Change {
        announcement: record,
        durable: Some(at),
        write: true,
        withdraw: true,
    };
    (Outcome::Withdrawn, Some(change))
}

/// Entries per owner, for the quotas (owners with none are removed: bounded by the table).
#[derive(Debug, Default)]
pub(crate) struct Holdings(HashMap<String, usize>);

impl Holdings {
    pub(crate) fn of(&self, owner: &str) -> usize {
        self.0.get(owner).copied().unwrap_or(0)
    }

    pub(crate) fn add(&mut self, owner: &str) {
        *self.0.entry(owner.to_owned()).or_default() += 1;
    }

    pub(crate) fn remove(&mut self, owner: &str) {
        if let Some(n) = self.0.get_mut(owner) {
            *n -= 1;
            if *n == 0 {
                self.0.remove(owner);
            }
        }
    }
}
