use super::*;
use crate::token::CoreId;
use crate::token::TokenMap;
use proptest::prelude::*;

const TTL: Duration = Duration::from_secs(30);

fn limits(max_pairs: usize, max_waiting: usize) -> TableLimits {
    TableLimits {
        max_pairs,
        max_waiting,
        tomb_ttl: TTL,
    }
}

fn pair(t: &mut PairTable<u32>, seq: u64, now: Instant) -> [Token; 2] {
    let tokens = [Token::random(), Token::random()];
    let id = PairId {
        core: CoreId(0),
        seq,
    };
    t.register(id, tokens, PairKind::Direct, now, TTL).unwrap();
    tokens
}

fn reason<C>(a: Arrival<C>) -> Option<Refusal> {
    match a {
        Arrival::Refused { reason, .. } => Some(reason),
        _ => None,
    }
}

#[test]
fn pairs_in_both_orders() {
    let now = Instant::now();
    let mut t = PairTable::new(limits(10, 10));
    let [a, b] = pair(&mut t, 1, now);
    assert!(matches!(
        t.arrive(&b, Port::Pairing, 2, now),
        Arrival::Waiting(_)
    ));
    match t.arrive(&a, Port::Pairing, 1, now) {
        Arrival::Paired { a, b, .. } => assert_eq!((a, b), (1, 2)),
        other => panic!("{other:?}"),
    }
    let [a, b] = pair(&mut t, 2, now);
    assert!(matches!(
        t.arrive(&a, Port::Pairing, 1, now),
        Arrival::Waiting(_)
    ));
    assert!(matches!(
        t.arrive(&b, Port::Pairing, 2, now),
        Arrival::Paired { a: 1, b: 2, .. }
    ));
    assert!(t.is_empty());
}

#[test]
fn paired_reports_the_time_since_registration() {
    let t0 = Instant::now();
    let mut t = PairTable::new(limits(10, 10));
    let [a, b] = pair(&mut t, 1, t0);
    let first = t0 + Duration::from_millis(5);
    assert!(matches!(
        t.arrive(&a, Port::Pairing, 1, first),
        Arrival::Waiting(_)
    ));
    match t.arrive(&b, Port::Pairing, 2, t0 + Duration::from_millis(40)) {
        Arrival::Paired { setup, .. } => assert_eq!(setup, Duration::from_millis(40)),
        other => panic!("{other:?}"),
    }
}

#[test]
fn refusals_by_reason() {
    let now = Instant::now();
    let mut t = PairTable::new(limits(10, 10));
    assert_eq!(
        reason(t.arrive(&Token::random(), Port::Pairing, 0, now)),
        Some(Refusal::Unknown)
    );
    let [a, b] = pair(&mut t, 1, now);
    assert!(matches!(
        t.arrive(&a, Port::Pairing, 1, now),
        Arrival::Waiting(_)
    ));
    assert_eq!(
        reason(t.arrive(&a, Port::Pairing, 3, now)),
        Some(Refusal::Reused)
    );
    assert_eq!(
        reason(t.arrive(&b, Port::Tls, 3, now)),
        Some(Refusal::WrongSide)
    );
    assert!(matches!(
        t.arrive(&b, Port::Pairing, 2, now),
        Arrival::Paired { .. }
    ));
    assert_eq!(
        reason(t.arrive(&b, Port::Pairing, 3, now)),
        Some(Refusal::Reused)
    );
    let [c, _] = pair(&mut t, 2, now);
    let later = now + TTL;
    assert_eq!(
        reason(t.arrive(&c, Port::Pairing, 4, later)),
        Some(Refusal::Expired)
    );
    assert_eq!(t.tick(later).len(), 1);
    assert_eq!(
        reason(t.arrive(&c, Port::Pairing, 4, later)),
        Some(Refusal::Expired)
    );
    // tombstones go after their own TTL
    t.tick(later + TTL + TTL);
    assert_eq!(
        reason(t.arrive(&c, Port::Pairing, 4, later)),
        Some(Refusal::Unknown)
    );
}

#[test]
fn sni_sides_use_their_ports() {
    let now = Instant::now();
    let mut t = PairTable::new(limits(10, 10));
    let tokens = [Token::random(), Token::random()];
    let id = PairId {
        core: CoreId(0),
        seq: 9,
    };
    t.register(id, tokens, PairKind::Sni, now, TTL).unwrap();
    assert_eq!(
        reason(t.arrive(&tokens[0], Port::Pairing, 1, now)),
        Some(Refusal::WrongSide)
    );
    assert_eq!(
        reason(t.arrive(&tokens[1], Port::Tls, 1, now)),
        Some(Refusal::WrongSide)
    );
    assert!(matches!(
        t.arrive(&tokens[0], Port::Tls, 1, now),
        Arrival::Waiting(_)
    ));
    assert!(matches!(
        t.arrive(&tokens[1], Port::Pairing, 2, now),
        Arrival::Paired { .. }
    ));
}

#[test]
fn waiting_is_bounded_and_expiry_returns_the_waiter() {
    let now = Instant::now();
    let mut t = PairTable::new(limits(10, 1));
    let [a, _] = pair(&mut t, 1, now);
    let [c, _] = pair(&mut t, 2, now);
    assert!(matches!(
        t.arrive(&a, Port::Pairing, 1, now),
        Arrival::Waiting(_)
    ));
    assert_eq!(
        reason(t.arrive(&c, Port::Pairing, 2, now)),
        Some(Refusal::WaitingFull)
    );
    let expired = t.tick(now + TTL);
    assert_eq!(
        expired.iter().filter_map(|e| e.waiting).collect::<Vec<_>>(),
        vec![1]
    );
    assert_eq!(t.waiting(), 0);
    assert!(t.is_empty());
}

#[test]
fn register_is_bounded_and_cancel_returns_the_waiter() {
    let now = Instant::now();
    let mut t = PairTable::new(limits(1, 1));
    let [a, _] = pair(&mut t, 1, now);
    let id = PairId {
        core: CoreId(0),
        seq: 2,
    };
    let full = t.register(
        id,
        [Token::random(), Token::random()],
        PairKind::Direct,
        now,
        TTL,
    );
    assert_eq!(full, Err(TableFull));
    assert!(matches!(
        t.arrive(&a, Port::Pairing, 7, now),
        Arrival::Waiting(_)
    ));
    assert_eq!(t.cancel(1, now), Some(Some(7)));
    assert_eq!(t.cancel(1, now), None);
    assert_eq!(
        reason(t.arrive(&a, Port::Pairing, 7, now)),
        Some(Refusal::Cancelled)
    );
}

#[derive(Clone, Debug)]
enum Op {
    Register { core_hint: usize },
    Arrive { pair: usize, side: bool, tls: bool },
    Tick { ms: u64 },
    Cancel { pair: usize },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (0usize..3).prop_map(|core_hint| Op::Register { core_hint }),
        (0usize..40, any::<bool>(), prop::bool::weighted(0.1))
            .prop_map(|(pair, side, tls)| Op::Arrive { pair, side, tls }),
        (0u64..20_000).prop_map(|ms| Op::Tick { ms }),
        (0usize..40).prop_map(|pair| Op::Cancel { pair }),
    ]
}

proptest! {
    /// Over random op sequences on three cores' tables: bounds hold, every token admits at
    /// most one connection, a pair completes only with its own two tokens, on the core that
    /// owns both, and never after its TTL.
    #[test]
    fn invariants_hold(ops in prop::collection::vec(op(), 1..200)) {
        let map = TokenMap::new(3);
        let lim = limits(8, 3);
        let mut tables: Vec<PairTable<(usize, Side)>> =
            (0..3).map(|_| PairTable::new(lim)).collect();
        let start = Instant::now();
        let mut now = start;
        let mut pairs: Vec<([Token; 2], CoreId, Instant)> = Vec::new();
        let mut admitted: HashMap<Token, u32> = HashMap::new();
        for op in ops {
            match op {
                Op::Register { core_hint } => {
                    let core = CoreId(core_hint);
                    let (a, ca) = map.token_for(core);
                    let (b, cb) = map.token_for(ca);
                    prop_assert_eq!(ca, cb);
                    let seq = pairs.len() as u64;
                    let id = PairId { core: ca, seq };
                    if tables[ca.0].register(id, [a, b], PairKind::Direct, now, TTL).is_ok() {
                        pairs.push(([a, b], ca, now + TTL));
                    }
                }
                Op::Arrive { pair, side, tls } => {
                    let Some(&(tokens, core, expires)) = pairs.get(pair) else { continue };
                    let s = if side { Side::B } else { Side::A };
                    let token = tokens[s as usize];
                    prop_assert_eq!(map.owner(&token), core);
                    let port = if tls { Port::Tls } else { Port::Pairing };
                    match tables[core.0].arrive(&token, port, (pair, s), now) {
                        Arrival::Waiting(id) => {
                            prop_assert_eq!(id.core, core);
                            prop_assert!(now < expires);
                            *admitted.entry(token).or_default() += 1;
                        }
                        Arrival::Paired { id, a, b, .. } => {
                            prop_assert_eq!(id.core, core);
                            prop_assert!(now < expires);
                            prop_assert_eq!(a, (pair, Side::A));
                            prop_assert_eq!(b, (pair, Side::B));
                            *admitted.entry(token).or_default() += 1;
                        }
                        Arrival::Refused { .. } => {}
                    }
                }
                Op::Tick { ms } => {
                    now += Duration::from_millis(ms);
                    for t in &mut tables {
                        t.tick(now);
                    }
                }
                Op::Cancel { pair } => {
                    if let Some(&(_, core, _)) = pairs.get(pair) {
                        tables[core.0].cancel(pair as u64, now);
                    }
                }
            }
            for t in &tables {
                prop_assert!(t.len() <= lim.max_pairs);
                prop_assert!(t.waiting() <= lim.max_waiting);
                prop_assert!(t.tombs.len() <= 2 * lim.max_pairs);
            }
            prop_assert!(admitted.values().all(|&n| n == 1));
        }
    }
}
