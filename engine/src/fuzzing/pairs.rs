//! Pair table: operation sequences decoded from bytes, applied to two cores' tables and to a plain model of what
//! each table must hold. Every outcome must match the model exactly (refusal reasons up to the documented loss of a
//! tombstone), every connection handed in comes back exactly once, and the bounds hold after each step.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use crate::pair_table::{PairId, PairKind, PairTable, Side, TableFull, TableLimits};
use crate::token::{CoreId, Token};

/// Tables (cores) in a run: two, so tokens and pair ids can be presented to the wrong core.
const TABLES: usize = 2;
/// Small bounds so that short inputs reach them: 6 pairs, 3 waiting sides, tombstones kept 5 s.
const LIMITS: TableLimits = TableLimits {
    max_pairs: 6,
    max_waiting: 3,
    tomb_ttl: Duration::from_secs(5),
};
/// Most operations decoded from one input (bounds a run; 1–3 input bytes each).
const MAX_OPS: usize = 4096;

type Conn = u32;

/// Why a pair left its table (the refusal its tokens get afterwards, if the tombstone survives).
#[derive(Clone, Copy, Debug, PartialEq)]
enum Gone {
    Paired,
    Cancelled,
    Expired,
    Cleared,
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum State {
    Held {
        waiting: Option<(Side, Conn, Instant)>,
    },
    Removed(Gone),
}

#[derive(Debug)]
struct Pair {
    table: usize,
    id: PairId,
    tokens: [Token; 2],
    kind: PairKind,
    expires: Instant,
    state: State,
}

/// The tables under test, the model, and the connection ledger.
struct Run {
    tables: Vec<PairTable<Conn>>,
    pairs: Vec<Pair>,
    start: Instant,
    now: Instant,
    next_token: u64,
    next_seq: u64,
    next_conn: Conn,
    /// Which pair and side each connection was presented for (to check who is paired with whom).
    conns: HashMap<Conn, (usize, Side)>,
    admitted: HashMap<[u8; 32], u32>,
}

/// Input: a stream of operations (register, arrive, advance time, tick, cancel, clear), see [`Run::step`].
pub fn pair_table(data: &[u8]) {
    let start = Instant::now();
    let mut run = Run {
        tables: (0..TABLES).map(|_| PairTable::new(LIMITS)).collect(),
        pairs: Vec::new(),
        start,
        now: start,
        next_token: 0,
        next_seq: 0,
        next_conn: 0,
        conns: HashMap::new(),
        admitted: HashMap::new(),
    };
    let mut input = data.iter().copied();
    for _ in 0..MAX_OPS {
        let Some(op) = input.next() else { break };
        run.step(op, &mut input);
        run.check_bounds();
    }
    for table in 0..TABLES {
        run.clear(table);
    }
    assert!(run.tables.iter().all(PairTable::is_empty));
}

impl Run {
    /// One operation: `op % 8` selects it, the high bits and 0–2 following bytes are its arguments.
    fn step(&mut self, op: u8, input: &mut impl Iterator<Item = u8>) {
        let table = usize::from(op >> 3) % TABLES;
        match op % 8 {
            0 | 1 => {
                let ttl = Duration::from_millis((u64::from(input.next().unwrap_or(0)) + 1) * 100);
                let kind = if op & 0x10 != 0 {
                    PairKind::Sni
                } else {
                    PairKind::Direct
                };
                self.register(table, kind, ttl, (op >> 5) & 3);
            }
            2 | 3 => {
                let pick = usize::from(input.next().unwrap_or(0));
                self.arrive(op, pick);
            }
            4 => {
                let ms = u16::from_le_bytes([input.next().unwrap_or(0), input.next().unwrap_or(0)]);
                self.now += Duration::from_millis(u64::from(ms));
            }
            5 => self.tick(table),
            6 => {
                let pick = usize::from(input.next().unwrap_or(0));
                self.cancel(table, pick);
            }
            _ if op >> 4 == 0xf => self.clear(table),
            _ => self.now += Duration::from_millis(u64::from(op >> 3)),
        }
    }

    fn fresh_token(&mut self) -> Token {
        self.next_token += 1;
        let mut bytes = [0x5a; 32];
        bytes[..8].copy_from_slice(&self.next_token.to_le_bytes());
        Token::from_bytes(bytes)
    }

    fn held(&self, table: usize) -> impl Iterator<Item = &Pair> {
        self.pairs
            .iter()
            .filter(move |p| p.table == table && matches!(p.state, State::Held { .. }))
    }

    /// `dup` 1: reuse a held pair's token; 2: reuse a held pair's sequence number (both must be refused).
    fn register(&mut self, table: usize, kind: PairKind, ttl: Duration, dup: u8) {
        let mut tokens = [self.fresh_token(), self.fresh_token()];
        self.next_seq += 1;
        let mut seq = self.next_seq;
        let last_held = self.held(table).last().map(|p| (p.tokens[1], p.id.seq));
        let duplicate = match (dup, last_held) {
            (1, Some((token, _))) => {
                tokens[0] = token;
                true
            }
            (2, Some((_, held_seq))) => {
                seq = held_seq;
                true
            }
            _ => false,
        };
        let id = PairId {
            core: CoreId(table),
            seq,
        };
        let full = self.held(table).count() >= LIMITS.max_pairs;
        let got = self.tables[table].register(id, tokens, kind, self.now, ttl);
        if full || duplicate {
            assert_eq!(
                got,
                Err(TableFull),
                "register past the bound or with a duplicate"
            );
            return;
        }
        assert_eq!(got, Ok(()), "register refused with room and fresh tokens");
        self.pairs.push(Pair {
            table,
            id,
            tokens,
            kind,
            expires: self.now + ttl,
            state: State::Held { waiting: None },
        });
    }
}

mod ops;
