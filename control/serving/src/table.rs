//! The sans-IO admission table of one listener: who holds a slot, in what order they came, which
//! of them have proved themselves by completing a request, and each source's counts and rate.
//!
//! Pure logic with injected time: the serving kit wraps it in a mutex and turns its decisions into
//! closed sockets. Every operation is `O(log n)` except the occasional sweep of idle sources.

use std::collections::{BTreeSet, HashMap};
use std::net::IpAddr;
use std::time::Instant;

use super::source::SourceKey;
use tandem_types::bucket::TokenBucket;
use tandem_types::serving_config::AdmissionConfig;

/// One admitted connection; ids grow with admission time, so the smallest is the oldest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnId(u64);

/// Why a new connection was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Its source opened connections faster than its accept rate.
    SourceRate,
    /// Its source holds its cap and all of those connections have completed a request.
    SourceFull,
    /// The listener holds its cap and every connection has completed a request.
    Full,
}

impl Refusal {
    /// A stable label for logs and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::SourceRate => "source_rate",
            Self::SourceFull => "source_full",
            Self::Full => "full",
        }
    }
}

/// Why an admitted connection was closed to make room.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Eviction {
    /// Its source reached its cap with a newer connection.
    SourceFull,
    /// The listener reached its cap.
    Full,
}

impl Eviction {
    /// A stable label for logs and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::SourceFull => "evicted_source_full",
            Self::Full => "evicted_full",
        }
    }
}

/// A new connection's slot and the connections closed to make room for it (at most two).
#[derive(Debug)]
pub struct Admitted<T> {
    /// The new connection.
    pub id: ConnId,
    /// Connections that lost their slot, with why; their sockets must be closed.
    pub evicted: Vec<(T, Eviction)>,
}

#[derive(Debug)]
struct Entry<T> {
    source: SourceKey,
    proven: bool,
    payload: T,
}

#[derive(Debug)]
struct Source {
    open: u32,
    unproven: BTreeSet<ConnId>,
    bucket: Option<TokenBucket>,
}

/// The table.
#[derive(Debug)]
pub struct AdmissionTable<T> {
    config: AdmissionConfig,
    next: u64,
    conns: HashMap<ConnId, Entry<T>>,
    unproven: BTreeSet<ConnId>,
    sources: HashMap<SourceKey, Source>,
}

impl<T> AdmissionTable<T> {
    /// An empty table.
    pub fn new(config: AdmissionConfig) -> Self {
        Self {
            config,
            next: 0,
            conns: HashMap::new(),
            unproven: BTreeSet::new(),
            sources: HashMap::new(),
        }
    }

    /// Connections holding a slot.
    pub fn len(&self) -> usize {
        self.conns.len()
    }

    /// Whether no connection holds a slot.
    pub fn is_empty(&self) -> bool {
        self.conns.is_empty()
    }

    /// Sources tracked (with open connections or a rate bucket still refilling).
    pub fn tracked_sources(&self) -> usize {
        self.sources.len()
    }

    /// Admits a connection from `ip` at `now`, or refuses it. `payload` travels with the slot and
    /// comes back if the connection is later evicted.
    pub fn admit(&mut self, ip: IpAddr, now: Instant, payload: T) -> Result<Admitted<T>, Refusal> {
        let key = SourceKey::from(ip);
        if !self.sources.contains_key(&key)
            && self.sources.len() >= self.config.max_tracked_sources.get()
        {
            self.sweep(now);
        }
        let rate = self.config.per_source_rate;
        let source = self.sources.entry(key).or_insert_with(|| Source {
            open: 0,
            unproven: BTreeSet::new(),
            bucket: rate.map(|r| TokenBucket::new(r, now)),
        });
        if let Some(bucket) = &mut source.bucket
            && !bucket.take(now)
        {
            return Err(Refusal::SourceRate);
        }
        let mut evicted = Vec::new();
        if source.open >= self.config.per_source_connections.get() {
            let Some(&victim) = source.unproven.first() else {
                return Err(Refusal::SourceFull);
            };
            if let Some(payload) = self.remove(victim) {
                evicted.push((payload, Eviction::SourceFull));
            }
        }
        if self.conns.len() >= self.config.max_connections.get() {
            let Some(&victim) = self.unproven.first() else {
                return Err(Refusal::Full);
            };
            if let Some(payload) = self.remove(victim) {
                evicted.push((payload, Eviction::Full));
            }
        }
        let id = ConnId(self.next);
        self.next += 1;
        let source = self.sources.entry(key).or_insert_with(|| Source {
            open: 0,
            unproven: BTreeSet::new(),
            bucket: rate.map(|r| TokenBucket::new(r, now)),
        });
        source.open += 1;
        source.unproven.insert(id);
        self.unproven.insert(id);
        self.conns.insert(
            id,
            Entry {
                source: key,
                proven: false,
                payload,
            },
        );
        Ok(Admitted { id, evicted })
    }

    /// Marks `id` as having completed a request: it is no longer evicted to make room.
    pub fn prove(&mut self, id: ConnId) {
        let Some(entry) = self.conns.get_mut(&id) else {
            return;
        };
        if entry.proven {
            return;
        }
        entry.proven = true;
        self.unproven.remove(&id);
        if let Some(source) = self.sources.get_mut(&entry.source) {
            source.unproven.remove(&id);
        }
    }

    /// Frees `id`'s slot (the connection closed). Unknown ids (already evicted) are ignored.
    pub fn release(&mut self, id: ConnId, now: Instant) {
        let Some(entry) = self.conns.get(&id) else {
            return;
        };
        let key = entry.source;
        self.remove(id);
        if let Some(source) = self.sources.get_mut(&key)
            && source.open == 0
            && source.bucket.as_mut().is_none_or(|b| b.is_full(now))
        {
            self.sources.remove(&key);
        }
    }

    fn remove(&mut self, id: ConnId) -> Option<T> {
        let entry = self.conns.remove(&id)?;
        self.unproven.remove(&id);
        if let Some(source) = self.sources.get_mut(&entry.source) {
            source.open = source.open.saturating_sub(1);
            source.unproven.remove(&id);
        }
        Some(entry.payload)
    }

    /// Forgets sources without open connections: first those whose rate memory is spent, then, if
    /// the table is still at its bound, all of them (a many-source flood may then reopen at burst).
    fn sweep(&mut self, now: Instant) {
        self.sources
            .retain(|_, s| s.open > 0 || s.bucket.as_mut().is_some_and(|b| !b.is_full(now)));
        if self.sources.len() >= self.config.max_tracked_sources.get() {
            self.sources.retain(|_, s| s.open > 0);
        }
    }
}

#[cfg(test)]
#[path = "table_tests.rs"]
mod tests;
