#![allow(clippy::unwrap_used)]
use super::*;
use proptest::prelude::*;

fn carry() -> impl Strategy<Value = QuotaCarry> {
    let name = "[a-z0-9.-]{1,20}";
    let count = (name, any::<u64>(), any::<u64>()).prop_map(|(operator, m, b)| CarriedCount {
        operator,
        pairs_this_minute: m,
        bytes_today: b,
    });
    let owner = (0u16..1024, any::<u64>(), name, any::<bool>(), 0u64..1 << 50).prop_map(
        |(core, seq, operator, waiting, ms)| CarriedOwner {
            id: PairId {
                core: CoreId(core as usize),
                seq,
            },
            operator,
            waiting,
            expires_at: UNIX_EPOCH + Duration::from_millis(ms),
        },
    );
    (
        0u64..1 << 50,
        prop::collection::vec(count, 0..6),
        prop::collection::vec(owner, 0..8),
    )
        .prop_map(|(ms, counts, owners)| QuotaCarry {
            taken_at: UNIX_EPOCH + Duration::from_millis(ms),
            counts,
            owners,
        })
}

proptest! {
    #[test]
    fn a_carry_round_trips(c in carry()) {
        let bytes = c.encode().unwrap();
        prop_assert_eq!(QuotaCarry::decode(&bytes).unwrap(), c);
    }

    #[test]
    fn a_truncated_or_flipped_section_is_refused_never_a_panic(
        c in carry(),
        at in any::<prop::sample::Index>(),
        x in 1u8..=255,
    ) {
        let bytes = c.encode().unwrap();
        let cut = at.index(bytes.len());
        prop_assert!(QuotaCarry::decode(&bytes[..cut]).is_err());
        let mut flipped = bytes;
        flipped[cut] ^= x;
        if let Ok(back) = QuotaCarry::decode(&flipped) {
            prop_assert_eq!(QuotaCarry::decode(&back.encode().unwrap()).unwrap(), back);
        }
    }
}

#[test]
fn another_version_or_magic_is_refused_clearly() {
    let c = QuotaCarry {
        taken_at: UNIX_EPOCH,
        counts: Vec::new(),
        owners: Vec::new(),
    };
    let mut bytes = c.encode().unwrap();
    bytes[8..10].copy_from_slice(&(CARRY_VERSION + 1).to_be_bytes());
    let e = QuotaCarry::decode(&bytes).unwrap_err();
    assert_eq!(e, CarryError::Version { found: 2 });
    assert!(e.to_string().contains("version 2"), "{e}");
    bytes[0] = b'X';
    assert_eq!(QuotaCarry::decode(&bytes), Err(CarryError::BadMagic));
}

#[test]
fn a_huge_count_is_refused_without_allocating_and_a_bad_index_is_malformed() {
    let c = QuotaCarry {
        taken_at: UNIX_EPOCH,
        counts: vec![CarriedCount {
            operator: "op".into(),
            pairs_this_minute: 1,
            bytes_today: 2,
        }],
        owners: Vec::new(),
    };
    let bytes = c.encode().unwrap();
    let names_at = 8 + 2 + 8;
    let mut huge = bytes.clone();
    huge[names_at..names_at + 4].copy_from_slice(&u32::MAX.to_be_bytes());
    assert!(matches!(
        QuotaCarry::decode(&huge),
        Err(CarryError::TooLarge {
            what: "operator names",
            ..
        })
    ));
    let mut many = bytes.clone();
    many[names_at..names_at + 4].copy_from_slice(&(MAX_CARRIED_NAMES as u32).to_be_bytes());
    assert_eq!(
        QuotaCarry::decode(&many),
        Err(CarryError::Malformed("the section ends early"))
    );
    // The count's name index (after the one name "op": 1 + 2 bytes, and the count of counts).
    let index_at = names_at + 4 + 3 + 4;
    let mut bad = bytes;
    bad[index_at..index_at + 4].copy_from_slice(&7u32.to_be_bytes());
    assert_eq!(
        QuotaCarry::decode(&bad),
        Err(CarryError::Malformed("a name index out of range"))
    );
}
