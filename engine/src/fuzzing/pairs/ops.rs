//! The operations of a pair-table run checked against the model: arrivals, expiry, cancel, clear and the bounds.

use std::time::Duration;

use super::{Conn, Gone, LIMITS, Pair, Run, State, TABLES};
use crate::pair_table::{Arrival, PairKind, Port, Refusal, Side};

/// What the model says an arrival must produce.
#[derive(Debug)]
enum Want {
    Refused(&'static [Refusal]),
    Waiting,
    Paired(Conn),
}

impl Run {
    /// `op` bit 0: present to the other core; bit 3: side B; bit 4: TLS port; bits 5–7 all set: a stranger's token.
    pub(super) fn arrive(&mut self, op: u8, pick: usize) {
        let side = if op & 0x08 != 0 { Side::B } else { Side::A };
        let port = if op & 0x10 != 0 {
            Port::Tls
        } else {
            Port::Pairing
        };
        let conn = self.next_conn;
        self.next_conn += 1;
        if self.pairs.is_empty() || op & 0xe0 == 0xe0 {
            let token = self.fresh_token();
            let table = usize::from(op & 1) % TABLES;
            match self.tables[table].arrive(&token, port, conn, self.now) {
                Arrival::Refused { reason, conn: c } => {
                    assert_eq!((reason, c), (Refusal::Unknown, conn), "stranger's token");
                }
                other => panic!("a token never issued was admitted: {other:?}"),
            }
            return;
        }
        let p = pick % self.pairs.len();
        let table = (self.pairs[p].table + usize::from(op & 1)) % TABLES;
        let token = self.pairs[p].tokens[side_index(side)];
        self.conns.insert(conn, (p, side));
        let want = self.want(p, table, side, port);
        let got = self.tables[table].arrive(&token, port, conn, self.now);
        let pair = &mut self.pairs[p];
        match (got, want) {
            (Arrival::Refused { reason, conn: c }, Want::Refused(allowed)) => {
                assert_eq!(c, conn, "refusal returned another connection");
                assert!(
                    allowed.contains(&reason),
                    "refused as {reason:?}, want one of {allowed:?}"
                );
                return;
            }
            (Arrival::Waiting(id), Want::Waiting) => {
                assert_eq!(id, pair.id);
                pair.state = State::Held {
                    waiting: Some((side, conn, self.now)),
                };
            }
            (Arrival::Paired { id, a, b, .. }, Want::Paired(first)) => {
                assert_eq!(id, pair.id);
                let want = match side {
                    Side::B => (first, conn),
                    Side::A => (conn, first),
                };
                assert_eq!((a, b), want, "paired with the wrong connections or order");
                assert_eq!(self.conns.get(&a), Some(&(p, Side::A)));
                assert_eq!(self.conns.get(&b), Some(&(p, Side::B)));
                pair.state = State::Removed(Gone::Paired);
            }
            (got, want) => panic!("arrival gave {got:?}, the model wants {want:?}"),
        }
        assert!(self.now < pair.expires, "admitted after the pair's TTL");
        let count = self.admitted.entry(*token.as_bytes()).or_default();
        *count += 1;
        assert_eq!(*count, 1, "a token admitted a second connection");
    }

    fn want(&self, p: usize, table: usize, side: Side, port: Port) -> Want {
        let pair = &self.pairs[p];
        if table != pair.table {
            return Want::Refused(&[Refusal::Unknown]);
        }
        let waiting = match pair.state {
            State::Removed(gone) => {
                return Want::Refused(match gone {
                    Gone::Paired => &[Refusal::Reused, Refusal::Unknown],
                    Gone::Cancelled => &[Refusal::Cancelled, Refusal::Unknown],
                    Gone::Expired => &[Refusal::Expired, Refusal::Unknown],
                    Gone::Cleared => &[Refusal::Unknown],
                });
            }
            State::Held { waiting } => waiting,
        };
        let expected_port = match (pair.kind, side) {
            (PairKind::Sni, Side::A) => Port::Tls,
            _ => Port::Pairing,
        };
        match waiting {
            _ if pair.expires <= self.now => Want::Refused(&[Refusal::Expired]),
            _ if port != expected_port => Want::Refused(&[Refusal::WrongSide]),
            Some((s, _, _)) if s == side => Want::Refused(&[Refusal::Reused]),
            Some((_, first, _)) => Want::Paired(first),
            None if self.waiting_in(table) >= LIMITS.max_waiting => {
                Want::Refused(&[Refusal::WaitingFull])
            }
            None => Want::Waiting,
        }
    }

    fn waiting_in(&self, table: usize) -> usize {
        self.held(table)
            .filter(|p| waiting_conn(p).is_some())
            .count()
    }

    /// Expiry must return exactly the held pairs whose TTL passed, with their waiting connections.
    pub(super) fn tick(&mut self, table: usize) {
        let now = self.now;
        let mut got: Vec<(u64, Option<Conn>)> = self.tables[table]
            .tick(now)
            .into_iter()
            .map(|e| (e.id.seq, e.waiting))
            .collect();
        let mut want = self.remove_where(table, Gone::Expired, |p| p.expires <= now);
        got.sort_unstable();
        want.sort_unstable();
        assert_eq!(got, want, "tick expired the wrong pairs or connections");
    }

    /// Cancel by sequence number, possibly on the wrong core (then nothing happens).
    pub(super) fn cancel(&mut self, table: usize, pick: usize) {
        let Some(seq) = self
            .pairs
            .get(pick % self.pairs.len().max(1))
            .map(|p| p.id.seq)
        else {
            assert_eq!(self.tables[table].cancel(u64::MAX, self.now), None);
            return;
        };
        let got = self.tables[table].cancel(seq, self.now);
        let want = self.remove_where(table, Gone::Cancelled, |p| p.id.seq == seq);
        match want.as_slice() {
            [] => assert_eq!(got, None, "cancelled a pair the table does not hold"),
            [(_, waiting)] => assert_eq!(got, Some(*waiting), "cancel returned the wrong waiter"),
            _ => panic!("the model holds two pairs with sequence number {seq}"),
        }
    }

    /// Drain: every waiting connection comes back, and the table is empty.
    pub(super) fn clear(&mut self, table: usize) {
        let mut got: Vec<(u64, Option<Conn>)> = self.tables[table]
            .clear()
            .into_iter()
            .map(|(id, conn)| (id.seq, Some(conn)))
            .collect();
        let mut want = self.remove_where(table, Gone::Cleared, |_| true);
        want.retain(|(_, conn)| conn.is_some());
        got.sort_unstable();
        want.sort_unstable();
        assert_eq!(got, want, "clear returned the wrong connections");
        assert!(self.tables[table].is_empty());
    }

    /// Marks the held pairs of `table` matching `pred` as gone; returns their `(seq, waiting connection)`.
    fn remove_where(
        &mut self,
        table: usize,
        gone: Gone,
        pred: impl Fn(&Pair) -> bool,
    ) -> Vec<(u64, Option<Conn>)> {
        let mut out = Vec::new();
        for pair in &mut self.pairs {
            if pair.table == table && matches!(pair.state, State::Held { .. }) && pred(pair) {
                out.push((pair.id.seq, waiting_conn(pair)));
                pair.state = State::Removed(gone);
            }
        }
        out
    }

    /// The table's counters equal the model's, within the bounds.
    pub(super) fn check_bounds(&self) {
        for (i, table) in self.tables.iter().enumerate() {
            let held = self.held(i).count();
            assert_eq!(
                table.len(),
                held,
                "table {i} holds a different number of pairs"
            );
            assert!(table.len() <= LIMITS.max_pairs);
            assert_eq!(
                table.waiting(),
                self.waiting_in(i),
                "table {i} waiting count"
            );
            assert!(table.waiting() <= LIMITS.max_waiting);
            assert!(
                table.tomb_count() <= 2 * LIMITS.max_pairs,
                "tombstones over the bound"
            );
            let oldest = self
                .held(i)
                .filter_map(|p| match p.state {
                    State::Held {
                        waiting: Some((_, _, since)),
                    } => Some(self.now.saturating_duration_since(since)),
                    _ => None,
                })
                .max();
            assert_eq!(table.oldest_wait(self.now), oldest);
            assert!(oldest.unwrap_or(Duration::ZERO) <= self.now - self.start);
        }
    }
}

fn side_index(side: Side) -> usize {
    match side {
        Side::A => 0,
        Side::B => 1,
    }
}

fn waiting_conn(pair: &Pair) -> Option<Conn> {
    match pair.state {
        State::Held {
            waiting: Some((_, conn, _)),
        } => Some(conn),
        _ => None,
    }
}
