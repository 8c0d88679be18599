use super::*;
use crate::record::{ChangeRecord, Section};
use crate::signing::Signer;
use crate::test_pki::{IdentitySigner as _, PkiVerifier as _, TestPki};
use crate::time::RecordTime;
use serde_json::json;

pub(super) struct Fixture {
    pub(super) pki: TestPki,
    pub(super) admin: Signer,
    pub(super) verifier: Verifier,
}

pub(super) fn fixture() -> Fixture {
    let pki = TestPki::temporary();
    let admin = pki.signing("hd-1", "sd-admin").signer();
    let verifier = pki.verifier();
    Fixture {
        pki,
        admin,
        verifier,
    }
}

pub(super) fn groups(name: &str, group: &str, at: &str) -> ChangeRecord {
    ChangeRecord::new(
        name.into(),
        Section::Groups,
        &json!([group]),
        RecordTime::parse(at).unwrap(),
    )
    .unwrap()
}

pub(super) const T0: &str = "2021-05-17T10:00:00Z";
pub(super) const T1: &str = "2022-01-01T00:00:00Z";

#[test]
fn append_chain_then_records_after() {
    let f = fixture();
    let mut ledger = Ledger::new();
    let batch = f
        .admin
        .sign_chain("", vec![groups("hd-1", "a", T0), groups("hd-2", "b", T0)])
        .unwrap();
    let checked = ledger.check_append(&batch, &f.verifier).unwrap();
    ledger.apply(checked).unwrap();
    let more = f
        .admin
        .sign_chain(&batch[1].hash, vec![groups("hd-1", "c", T0)])
        .unwrap();
    ledger
        .apply(ledger.check_append(&more, &f.verifier).unwrap())
        .unwrap();
    assert_eq!(ledger.tip().unwrap().hash, more[0].hash);
    assert_eq!(ledger.entry("hd-1").unwrap().groups, vec!["c".to_string()]);
    assert_eq!(ledger.entry("hd-1").unwrap().records.len(), 2);
    assert_eq!(ledger.records_after(&batch[0].hash).len(), 2);
    assert_eq!(ledger.records_after(&more[0].hash).len(), 0);
    assert_eq!(ledger.records_after("").len(), 3);
    assert_eq!(
        ledger.records_after(&"f".repeat(64)).len(),
        3,
        "unknown after gives the whole chain"
    );
}

#[test]
fn stale_append_is_rejected() {
    let f = fixture();
    let mut ledger = Ledger::new();
    let first = f
        .admin
        .sign_chain("", vec![groups("hd-1", "a", T0), groups("hd-1", "b", T0)])
        .unwrap();
    ledger
        .apply(ledger.check_append(&first, &f.verifier).unwrap())
        .unwrap();
    let stale = f
        .admin
        .sign_chain(&first[0].hash, vec![groups("hd-1", "c", T0)])
        .unwrap();
    let err = ledger.check_append(&stale, &f.verifier).unwrap_err();
    assert_eq!(err.kind(), "stale");
    assert_eq!(err.to_string(), "stale append, please try again");
    // A checked batch is refused if the ledger moved on meanwhile.
    let a = f
        .admin
        .sign_chain(&first[1].hash, vec![groups("hd-1", "d", T0)])
        .unwrap();
    let b = f
        .admin
        .sign_chain(&first[1].hash, vec![groups("hd-1", "e", T0)])
        .unwrap();
    let (ca, cb) = (
        ledger.check_append(&a, &f.verifier).unwrap(),
        ledger.check_append(&b, &f.verifier).unwrap(),
    );
    ledger.apply(ca).unwrap();
    assert_eq!(ledger.apply(cb).unwrap_err().kind(), "stale");
}

#[test]
fn reset_must_be_newer_and_replaces_entries() {
    let f = fixture();
    let mut ledger = Ledger::new();
    let old = f
        .admin
        .sign_chain("", vec![groups("hd-1", "a", T1)])
        .unwrap();
    ledger
        .apply(ledger.check_append(&old, &f.verifier).unwrap())
        .unwrap();
    let older = f
        .admin
        .sign_chain("", vec![groups("hd-2", "b", T0)])
        .unwrap();
    assert_eq!(
        ledger.check_append(&older, &f.verifier).unwrap_err().kind(),
        "reset_not_newer"
    );
    let same = f
        .admin
        .sign_chain("", vec![groups("hd-2", "b", T1)])
        .unwrap();
    assert_eq!(
        ledger.check_append(&same, &f.verifier).unwrap_err().kind(),
        "reset_not_newer"
    );
    let newer = f
        .admin
        .sign_chain("", vec![groups("hd-2", "b", "2023-01-01T00:00:00Z")])
        .unwrap();
    ledger
        .apply(ledger.check_append(&newer, &f.verifier).unwrap())
        .unwrap();
    assert!(ledger.entry("hd-1").is_none());
    assert_eq!(ledger.chain().len(), 1);
    // Rebuild from storage selects the same chain.
    let stored: Vec<_> = old.iter().chain(&newer).cloned().collect();
    let rebuilt = Ledger::rebuild(stored, &f.verifier).unwrap();
    assert_eq!(rebuilt.tip().unwrap().hash, newer[0].hash);
    assert_eq!(
        ledger.check_append(&newer, &f.verifier).unwrap_err().kind(),
        "duplicate"
    );
}

#[test]
fn rebuild_skips_invalid_records_without_ending_the_chain() {
    let f = fixture();
    let outsider = f.pki.signing("hd-2", "").signer();
    let a = f.admin.sign_record("", groups("hd-1", "a", T0)).unwrap();
    let bad = outsider
        .sign_record(&a.hash, groups("hd-2", "x", T0))
        .unwrap();
    let c = f
        .admin
        .sign_record(&bad.hash, groups("hd-1", "c", T0))
        .unwrap();
    let ledger = Ledger::rebuild(vec![a.clone(), bad, c.clone()], &f.verifier).unwrap();
    let hashes: Vec<_> = ledger.chain().iter().map(|r| r.hash.clone()).collect();
    assert_eq!(hashes, vec![a.hash, c.hash]);
    assert!(ledger.entry("hd-2").is_none());
    assert_eq!(ledger.stored_len(), 3);
}

#[test]
fn rebuild_prefers_latest_root_and_first_found_on_ties() {
    let f = fixture();
    let r1 = f
        .admin
        .sign_chain("", vec![groups("hd-1", "a", T0), groups("hd-1", "b", T0)])
        .unwrap();
    let r2 = f
        .admin
        .sign_chain("", vec![groups("hd-1", "new", T1)])
        .unwrap();
    let r3 = f
        .admin
        .sign_chain("", vec![groups("hd-1", "tie", T1)])
        .unwrap();
    let stored: Vec<_> = r2.iter().chain(&r1).chain(&r3).cloned().collect();
    let ledger = Ledger::rebuild(stored, &f.verifier).unwrap();
    assert_eq!(
        ledger.entry("hd-1").unwrap().groups,
        vec!["new".to_string()]
    );
    assert!(
        Ledger::rebuild(Vec::new(), &f.verifier)
            .unwrap()
            .tip()
            .is_none()
    );
}

#[test]
fn pins_follow_the_valid_prefix() {
    let f = fixture();
    let id = f.pki.signing("hd-1", "sd-admin");
    let alt = f.pki.signing("hd-1", "sd-admin").signer();
    let signer = id.signer();
    let pin = ChangeRecord::new(
        "hd-1".into(),
        Section::Certificates,
        &json!([{"fingerprint": crate::cert::fingerprint(&id.cert_der), "key_usage": "signing"}]),
        RecordTime::parse(T0).unwrap(),
    )
    .unwrap();
    let mut ledger = Ledger::new();
    let batch = signer.sign_chain("", vec![pin]).unwrap();
    ledger
        .apply(ledger.check_append(&batch, &f.verifier).unwrap())
        .unwrap();
    let by_alt = alt
        .sign_chain(&batch[0].hash, vec![groups("hd-1", "x", T0)])
        .unwrap();
    let err = ledger.check_append(&by_alt, &f.verifier).unwrap_err();
    assert!(matches!(
        err,
        AppendError::Rejected {
            source: RecordError::PinMismatch(_),
            ..
        }
    ));
}
