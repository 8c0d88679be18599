#![allow(clippy::unwrap_used)]
use super::*;
use crate::handover::state::{
    FdIndex, IssuedPair, ListenerEntry, ListenerRole, LivePair, WaitingSide,
};
use crate::pair_table::{PairId, PairKind, Port, Side};
use crate::relay::throttle::{BandwidthLimits, ByteRate, OperatorBandwidth};
use crate::token::{CoreId, Token};
use proptest::prelude::*;
use std::net::SocketAddr;
use std::num::NonZeroU64;
use std::time::Duration;

fn rate() -> impl Strategy<Value = ByteRate> {
    (1u64.., 1u64..).prop_map(|(r, b)| ByteRate {
        per_second: NonZeroU64::new(r).unwrap(),
        burst: NonZeroU64::new(b).unwrap(),
    })
}

/// Unlimited, a pair rate, an operator's key and rate, or both.
fn limits() -> impl Strategy<Value = BandwidthLimits> {
    (
        prop::option::of(rate()),
        prop::option::of((any::<u64>(), rate())),
    )
        .prop_map(|(pair, op)| BandwidthLimits {
            pair,
            operator: op.map(|(key, rate)| OperatorBandwidth { key, rate }),
        })
}

fn addr() -> impl Strategy<Value = SocketAddr> {
    prop_oneof![
        (any::<[u8; 4]>(), any::<u16>()).prop_map(|(ip, p)| SocketAddr::from((ip, p))),
        (any::<[u8; 16]>(), any::<u16>()).prop_map(|(ip, p)| SocketAddr::from((ip, p))),
    ]
}

/// A state with `cores` cores whose fd indices are a permutation of 0..fds.
fn state() -> impl Strategy<Value = HandoverState> {
    (1u16..8).prop_flat_map(|cores| {
        let id = (0..cores, any::<u64>()).prop_map(|(c, seq)| PairId {
            core: CoreId(c as usize),
            seq,
        });
        let listeners = prop::collection::vec(
            (0u8..5, 0..cores).prop_map(|(tag, core)| match tag {
                0 => ListenerRole::Pairing { core },
                1 => ListenerRole::Tls { core },
                2 => ListenerRole::JsonRpc,
                3 => ListenerRole::Control,
                _ => ListenerRole::Metrics,
            }),
            0..6,
        );
        let waiting = prop::option::of((
            any::<bool>(),
            addr(),
            any::<bool>(),
            prop::collection::vec(any::<u8>(), 0..64),
        ));
        let issued = prop::collection::vec(
            (
                id.clone(),
                any::<[u8; 32]>(),
                any::<[u8; 32]>(),
                any::<bool>(),
                0u64..1 << 40,
                waiting,
                limits(),
            ),
            0..5,
        );
        let live =
            prop::collection::vec((id, any::<[u64; 2]>(), any::<[bool; 2]>(), limits()), 0..5);
        let extra = prop::collection::vec(any::<u8>(), 0..100);
        (
            Just(cores),
            any::<[u64; 2]>(),
            listeners,
            issued,
            live,
            extra,
        )
            .prop_map(|(cores, token_key, ls, is, lv, extra)| {
                let mut next = 0u32;
                let mut fd = || {
                    next += 1;
                    FdIndex(next - 1)
                };
                let listeners = ls
                    .into_iter()
                    .map(|role| ListenerEntry { role, fd: fd() })
                    .collect();
                let issued = is
                    .into_iter()
                    .map(|(id, a, b, sni, ms, w, limits)| IssuedPair {
                        id,
                        tokens: [Token::from_bytes(a), Token::from_bytes(b)],
                        kind: if sni { PairKind::Sni } else { PairKind::Direct },
                        ttl_left: Duration::from_millis(ms),
                        waiting: w.map(|(a_side, peer, tls, prefix)| WaitingSide {
                            side: if a_side { Side::A } else { Side::B },
                            fd: fd(),
                            peer,
                            port: if tls { Port::Tls } else { Port::Pairing },
                            prefix,
                        }),
                        limits,
                    })
                    .collect();
                let live = lv
                    .into_iter()
                    .map(|(id, bytes, eof, limits)| LivePair {
                        id,
                        fds: [fd(), fd()],
                        bytes,
                        eof,
                        limits,
                    })
                    .collect();
                HandoverState {
                    token_key,
                    cores,
                    fds: next,
                    listeners,
                    issued,
                    live,
                    extra,
                }
            })
    })
}

fn message() -> impl Strategy<Value = Message> {
    prop_oneof![
        (any::<u16>(), any::<u16>(), any::<u32>()).prop_map(|(min, max, pid)| Message::Hello {
            min,
            max,
            pid
        }),
        state().prop_map(Message::Offer),
        any::<u32>().prop_map(|pid| Message::Ready { pid }),
        "[a-z é]{0,40}".prop_map(|reason| Message::Refuse { reason }),
    ]
}

proptest! {
    #[test]
    fn every_message_round_trips(msg in message()) {
        let bytes = encode(&msg).unwrap();
        let (back, used) = decode(&bytes).unwrap().unwrap();
        prop_assert_eq!(back, msg);
        prop_assert_eq!(used, bytes.len());
    }

    #[test]
    fn a_truncated_frame_asks_for_more_and_never_decodes(msg in message()) {
        let bytes = encode(&msg).unwrap();
        for cut in 0..bytes.len() {
            prop_assert_eq!(decode(&bytes[..cut]).unwrap(), None, "cut at {}", cut);
        }
    }

    #[test]
    fn garbage_is_refused_or_incomplete_never_a_panic(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
        let _ = decode(&bytes);
        let mut framed = encode(&Message::Ready { pid: 1 }).unwrap()[..HEADER_LEN].to_vec();
        framed[10] = KIND_OFFER;
        framed[11..15].copy_from_slice(&(bytes.len() as u32).to_be_bytes());
        framed.extend_from_slice(&bytes);
        let _ = decode(&framed);
    }

    #[test]
    fn a_flipped_byte_in_an_offer_never_panics(s in state(), at in any::<prop::sample::Index>(), x in 1u8..=255) {
        let mut bytes = encode(&Message::Offer(s)).unwrap();
        let i = at.index(bytes.len());
        bytes[i] ^= x;
        // What still decodes round-trips (the fuzz target's check, `fuzzing::handover_frame`).
        if let Ok(Some((msg, _))) = decode(&bytes) {
            let again = encode(&msg).unwrap();
            prop_assert_eq!(decode(&again).unwrap().unwrap().0, msg);
        }
    }
}

#[test]
fn a_truncated_offer_body_is_malformed_not_short() {
    let s = HandoverState {
        cores: 1,
        ..Default::default()
    };
    let mut bytes = encode(&Message::Offer(s)).unwrap();
    bytes.pop();
    let len = (bytes.len() - HEADER_LEN) as u32;
    bytes[11..15].copy_from_slice(&len.to_be_bytes());
    assert_eq!(decode(&bytes), Err(WireError::Malformed("body ends early")));
}

#[test]
fn another_version_is_refused_clearly() {
    let mut bytes = encode(&Message::Ready { pid: 7 }).unwrap();
    bytes[8..10].copy_from_slice(&(VERSION + 1).to_be_bytes());
    let e = decode(&bytes).unwrap_err();
    assert_eq!(e, WireError::Version { found: VERSION + 1 });
    assert!(e.to_string().contains("version 3"), "{e}");
    // Version 1 had no bandwidth limits: its pairs would relay unlimited here, so it is refused.
    bytes[8..10].copy_from_slice(&1u16.to_be_bytes());
    let e = decode(&bytes).unwrap_err();
    assert_eq!(e, WireError::Version { found: 1 });
    assert!(e.to_string().contains("reads 2..=2"), "{e}");
}

#[test]
fn a_zero_rate_or_unknown_limit_flags_are_malformed() {
    let one = NonZeroU64::MIN;
    let live = LivePair {
        id: PairId {
            core: CoreId(0),
            seq: 1,
        },
        fds: [FdIndex(0), FdIndex(1)],
        bytes: [0, 0],
        eof: [false, false],
        limits: BandwidthLimits {
            pair: Some(ByteRate {
                per_second: one,
                burst: one,
            }),
            operator: None,
        },
    };
    let s = HandoverState {
        cores: 1,
        fds: 2,
        live: vec![live],
        ..Default::default()
    };
    let bytes = encode(&Message::Offer(s)).unwrap();
    // The live pair's limits sit before the extra section's length (4 bytes, empty section).
    let rate_at = bytes.len() - 4 - 16;
    let mut zero = bytes.clone();
    zero[rate_at..rate_at + 8].copy_from_slice(&0u64.to_be_bytes());
    assert_eq!(
        decode(&zero),
        Err(WireError::Malformed("a zero bandwidth rate"))
    );
    let mut flags = bytes;
    flags[rate_at - 1] = 4 | 1;
    assert_eq!(
        decode(&flags),
        Err(WireError::Malformed("unknown bandwidth limit flags"))
    );
}

#[test]
fn a_wrong_first_byte_is_refused_before_a_whole_header() {
    assert_eq!(decode(b"GET / HTTP/1.1"), Err(WireError::BadMagic));
    assert_eq!(decode(b"T"), Ok(None));
    assert_eq!(decode(b"X"), Err(WireError::BadMagic));
}

#[test]
fn a_huge_declared_body_or_count_is_refused_without_allocating() {
    let mut bytes = encode(&Message::Ready { pid: 7 }).unwrap();
    bytes[11..15].copy_from_slice(&u32::MAX.to_be_bytes());
    assert!(matches!(
        decode(&bytes),
        Err(WireError::TooLarge {
            what: "frame body",
            ..
        })
    ));
    // An offer claiming MAX_PAIRS issued pairs in a few bytes: refused as short, nothing reserved.
    let s = HandoverState {
        cores: 1,
        ..Default::default()
    };
    let mut bytes = encode(&Message::Offer(s)).unwrap();
    let issued_at = HEADER_LEN + 16 + 2 + 4 + 4;
    bytes[issued_at..issued_at + 4].copy_from_slice(&(MAX_PAIRS as u32).to_be_bytes());
    assert_eq!(decode(&bytes), Err(WireError::Malformed("body ends early")));
    bytes[issued_at..issued_at + 4].copy_from_slice(&(MAX_PAIRS as u32 + 1).to_be_bytes());
    assert!(matches!(
        decode(&bytes),
        Err(WireError::TooLarge {
            what: "issued pair count",
            ..
        })
    ));
}

#[test]
fn fd_indices_must_cover_the_fds_sent_once_each() {
    let pair = |fds: [u32; 2]| LivePair {
        id: PairId {
            core: CoreId(0),
            seq: 1,
        },
        fds: fds.map(FdIndex),
        bytes: [0, 0],
        eof: [false, false],
        limits: BandwidthLimits::UNLIMITED,
    };
    let with = |live: Vec<LivePair>, fds: u32| {
        let s = HandoverState {
            cores: 1,
            fds,
            live,
            ..Default::default()
        };
        decode(&encode(&Message::Offer(s)).unwrap()).map(|_| ())
    };
    assert_eq!(with(vec![pair([0, 1])], 2), Ok(()));
    assert_eq!(
        with(vec![pair([0, 0])], 2),
        Err(WireError::Malformed("an fd is named twice"))
    );
    assert_eq!(
        with(vec![pair([0, 2])], 2),
        Err(WireError::Malformed("fd index out of range"))
    );
    assert_eq!(
        with(vec![pair([0, 1])], 3),
        Err(WireError::Malformed(
            "fd count differs from the sockets named"
        ))
    );
}

#[test]
fn versions_agree_on_the_newest_both_read() {
    assert_eq!(agree(VERSION, VERSION), Some(VERSION));
    assert_eq!(agree(1, 1), None, "version 1 carried no bandwidth limits");
    assert_eq!(agree(1, 9), Some(VERSION));
    assert_eq!(agree(VERSION + 1, VERSION + 3), None);
    assert_eq!(agree(0, 0), None);
}

#[test]
fn a_long_reason_is_cut_at_a_char_boundary() {
    let reason = "é".repeat(MAX_REASON);
    let bytes = encode(&Message::Refuse { reason }).unwrap();
    let Message::Refuse { reason } = decode(&bytes).unwrap().unwrap().0 else {
        panic!("not a refusal");
    };
    assert!(reason.len() <= MAX_REASON && reason.chars().all(|c| c == 'é'));
}
