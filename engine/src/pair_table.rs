//! Sans-IO pair table of one core: issued pairs, the side waiting for its partner, and
//! tombstones of used/expired tokens so refusals can be counted by reason. Time is injected.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashMap};
use std::time::{Duration, Instant};

use slab::Slab;

use crate::token::Token;

pub use crate::pair_types::{Arrival, Expired, PairId, PairKind, Port, Refusal, Side, TableFull};

/// Lifecycle of an issued pair inside the table (completed pairs leave the table).
#[derive(Debug)]
enum PairState<C> {
    Issued,
    Waiting { side: Side, conn: C, since: Instant },
}

#[derive(Debug)]
struct Entry<C> {
    id: PairId,
    tokens: [Token; 2],
    kind: PairKind,
    registered: Instant,
    expires: Instant,
    state: PairState<C>,
}

#[derive(Clone, Copy, Debug)]
enum Tomb {
    Used,
    Expired,
    Cancelled,
}

/// The bounds of one table.
#[derive(Clone, Copy, Debug)]
pub struct TableLimits {
    /// Issued pairs held (waiting or not).
    pub max_pairs: usize,
    /// Sides waiting for a partner.
    pub max_waiting: usize,
    /// How long a tombstone of an expired or cancelled token is kept (the pair TTL).
    pub tomb_ttl: Duration,
}

/// The pair table of one core.
#[derive(Debug)]
pub struct PairTable<C> {
    limits: TableLimits,
    entries: Slab<Entry<C>>,
    by_token: HashMap<Token, (usize, Side)>,
    by_seq: HashMap<u64, usize>,
    deadlines: BTreeMap<(Instant, u64), usize>,
    /// Tombstones by [`TombKey`]: 24 bytes a slot instead of a whole token's 40.
    tombs: HashMap<TombKey, Tomb>,
    /// When each tombstone goes: 32-byte elements (a relaying pair leaves two tombstones for
    /// its TTL, so their size is part of every pair's cost), earliest first. A heap in one
    /// contiguous buffer, not a B-tree: B-tree nodes are allocated one by one while pairs set
    /// up, among the pairs' short-lived task allocations, and each pins an otherwise free page
    /// of the allocator long after those tasks ended (parked pairs: ~4 MiB per 10,000 pairs).
    tomb_deadlines: BinaryHeap<Reverse<(Instant, TombKey)>>,
    waiting: usize,
}

/// A tombstone's key: the first 16 bytes of its token. Tombstones only label a refusal
/// (reused, expired, cancelled or unknown); a token is refused whenever it is not live, so a
/// prefix shared with a dead token (2^-128 by chance) changes a label, never an admission.
type TombKey = u128;

fn tomb_key(t: &Token) -> TombKey {
    let b = t.as_bytes();
    let mut k = [0u8; 16];
    k.copy_from_slice(&b[..16]);
    u128::from_le_bytes(k)
}

impl<C> PairTable<C> {
    /// An empty table. Tombstones are bounded by `2 * max_pairs` tokens.
    pub fn new(limits: TableLimits) -> Self {
        PairTable {
            limits,
            entries: Slab::new(),
            by_token: HashMap::new(),
            by_seq: HashMap::new(),
            deadlines: BTreeMap::new(),
            tombs: HashMap::new(),
            tomb_deadlines: BinaryHeap::new(),
            waiting: 0,
        }
    }

    /// Issued pairs held.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when no pair is held.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Sides waiting for their partner.
    pub fn waiting(&self) -> usize {
        self.waiting
    }

    /// Tombstones held (the fuzz checks' bound: at most `2 * max_pairs`).
    pub(crate) fn tomb_count(&self) -> usize {
        self.tombs.len()
    }

    /// Issues a pair with one token per side, valid until `now + ttl`.
    pub fn register(
        &mut self,
        id: PairId,
        tokens: [Token; 2],
        kind: PairKind,
        now: Instant,
        ttl: Duration,
    ) -> Result<(), TableFull> {
        if self.entries.len() >= self.limits.max_pairs
            || self.by_seq.contains_key(&id.seq)
            || tokens.iter().any(|t| self.by_token.contains_key(t))
        {
            return Err(TableFull);
        }
        let expires = now + ttl;
        let idx = self.entries.insert(Entry {
            id,
            tokens,
            kind,
            registered: now,
            expires,
            state: PairState::Issued,
        });
        self.by_token.insert(tokens[0], (idx, Side::A));
        self.by_token.insert(tokens[1], (idx, Side::B));
        self.by_seq.insert(id.seq, idx);
        self.deadlines.insert((expires, id.seq), idx);
        Ok(())
    }

    /// A connection presents `token` on `port`.
    pub fn arrive(&mut self, token: &Token, port: Port, conn: C, now: Instant) -> Arrival<C> {
        let Some(&(idx, side)) = self.by_token.get(token) else {
            let reason = match self.tombs.get(&tomb_key(token)) {
                Some(Tomb::Used) => Refusal::Reused,
                Some(Tomb::Expired) => Refusal::Expired,
                Some(Tomb::Cancelled) => Refusal::Cancelled,
                None => Refusal::Unknown,
            };
            return Arrival::Refused { reason, conn };
        };
        let entry = &mut self.entries[idx];
        if entry.expires <= now {
            return Arrival::Refused {
                reason: Refusal::Expired,
                conn,
            };
        }
        let expected = match (entry.kind, side) {
            (PairKind::Direct, _) | (PairKind::Sni, Side::B) => Port::Pairing,
            (PairKind::Sni, Side::A) => Port::Tls,
        };
        if port != expected {
            return Arrival::Refused {
                reason: Refusal::WrongSide,
                conn,
            };
        }
        match &entry.state {
            PairState::Waiting {
                side: waiting_side, ..
            } if *waiting_side == side => Arrival::Refused {
                reason: Refusal::Reused,
                conn,
            },
            PairState::Issued => {
                if self.waiting >= self.limits.max_waiting {
                    return Arrival::Refused {
                        reason: Refusal::WaitingFull,
                        conn,
                    };
                }
                entry.state = PairState::Waiting {
                    side,
                    conn,
                    since: now,
                };
                self.waiting += 1;
                Arrival::Waiting(entry.id)
            }
            PairState::Waiting { .. } => self.complete(idx, conn, side, now),
        }
    }

    fn complete(&mut self, idx: usize, conn: C, side: Side, now: Instant) -> Arrival<C> {
        let entry = self.remove(idx);
        let PairState::Waiting { conn: first, .. } = entry.state else {
            unreachable!("complete is only called on a waiting entry");
        };
        for t in entry.tokens {
            self.bury(t, Tomb::Used, entry.expires);
        }
        let (a, b) = match side {
            Side::B => (first, conn),
            Side::A => (conn, first),
        };
        Arrival::Paired {
            id: entry.id,
            a,
            b,
            setup: now.saturating_duration_since(entry.registered),
        }
    }

    fn remove(&mut self, idx: usize) -> Entry<C> {
        let entry = self.entries.remove(idx);
        for t in &entry.tokens {
            self.by_token.remove(t);
        }
        self.by_seq.remove(&entry.id.seq);
        self.deadlines.remove(&(entry.expires, entry.id.seq));
        if matches!(entry.state, PairState::Waiting { .. }) {
            self.waiting -= 1;
        }
        entry
    }

    fn bury(&mut self, token: Token, tomb: Tomb, until: Instant) {
        if self.tombs.len() >= 2 * self.limits.max_pairs {
            return; // bound: a later reuse is then refused as Unknown, still refused.
        }
        let key = tomb_key(&token);
        // One tombstone and one deadline per key (a key seen twice: never for random tokens).
        if self.tombs.contains_key(&key) {
            return;
        }
        self.tombs.insert(key, tomb);
        self.tomb_deadlines.push(Reverse((until, key)));
    }

    /// Cancels a pair; returns its waiting connection (to close) if one waited, `None` when
    /// the pair is unknown here (already paired, expired or never issued).
    pub fn cancel(&mut self, seq: u64, now: Instant) -> Option<Option<C>> {
        let idx = *self.by_seq.get(&seq)?;
        let entry = self.remove(idx);
        for t in entry.tokens {
            self.bury(t, Tomb::Cancelled, now + self.limits.tomb_ttl);
        }
        Some(match entry.state {
            PairState::Waiting { conn, .. } => Some(conn),
            PairState::Issued => None,
        })
    }

    /// Expires pairs whose TTL passed and drops old tombstones. Bounded by the table size.
    pub fn tick(&mut self, now: Instant) -> Vec<Expired<C>> {
        let mut out = Vec::new();
        while let Some((&(at, _), &idx)) = self.deadlines.first_key_value() {
            if at > now {
                break;
            }
            let entry = self.remove(idx);
            for t in entry.tokens {
                self.bury(t, Tomb::Expired, now + self.limits.tomb_ttl);
            }
            let waiting = match entry.state {
                PairState::Waiting { conn, .. } => Some(conn),
                PairState::Issued => None,
            };
            out.push(Expired {
                id: entry.id,
                waiting,
            });
        }
        while let Some(&Reverse((at, key))) = self.tomb_deadlines.peek() {
            if at > now {
                break;
            }
            self.tomb_deadlines.pop();
            self.tombs.remove(&key);
        }
        out
    }

    /// Removes every pair (drain); returns the waiting connections to close.
    pub fn clear(&mut self) -> Vec<(PairId, C)> {
        let idxs: Vec<usize> = self.entries.iter().map(|(i, _)| i).collect();
        let mut out = Vec::new();
        for idx in idxs {
            let entry = self.remove(idx);
            if let PairState::Waiting { conn, .. } = entry.state {
                out.push((entry.id, conn));
            }
        }
        out
    }

    /// Takes every issued pair out of the table, with its waiting side and the time left
    /// before its tokens expire (a binary upgrade hands them to the next process; tombstones
    /// stay: they only label refusals).
    pub fn take_all(&mut self, now: Instant) -> Vec<Taken<C>> {
        let idxs: Vec<usize> = self.entries.iter().map(|(i, _)| i).collect();
        let mut out = Vec::with_capacity(idxs.len());
        for idx in idxs {
            let entry = self.remove(idx);
            out.push(Taken {
                id: entry.id,
                tokens: entry.tokens,
                kind: entry.kind,
                ttl_left: entry.expires.saturating_duration_since(now),
                waiting: match entry.state {
                    PairState::Waiting { side, conn, .. } => Some((side, conn)),
                    PairState::Issued => None,
                },
            });
        }
        out
    }

    /// How long the oldest waiting side has waited (for stats), if any.
    pub fn oldest_wait(&self, now: Instant) -> Option<Duration> {
        self.entries
            .iter()
            .filter_map(|(_, e)| match &e.state {
                PairState::Waiting { since, .. } => Some(now.saturating_duration_since(*since)),
                PairState::Issued => None,
            })
            .max()
    }
}

/// An issued pair taken out by [`PairTable::take_all`].
#[derive(Debug)]
pub struct Taken<C> {
    /// The pair.
    pub id: PairId,
    /// Side A's and side B's tokens.
    pub tokens: [Token; 2],
    /// Where each side arrives.
    pub kind: PairKind,
    /// Time left before its tokens expire.
    pub ttl_left: Duration,
    /// The side that waits, with its connection.
    pub waiting: Option<(Side, C)>,
}

#[cfg(test)]
#[path = "pair_table_tests.rs"]
mod tests;
