use super::*;
use crate::record::ChangeRecord;
use crate::signing::Signer;
use crate::test_pki::{IdentitySigner as _, PkiVerifier as _, TestPki};
use crate::time::RecordTime;
use rcgen::ExtendedKeyUsagePurpose;
use serde_json::json;

fn record(name: &str, section: Section, data: Value) -> ChangeRecord {
    let t = RecordTime::parse("2021-05-17T10:00:00Z").unwrap();
    ChangeRecord::new(name.into(), section, &data, t).unwrap()
}

fn certificates(name: &str, signing_fp: &str) -> ChangeRecord {
    record(
        name,
        Section::Certificates,
        json!([{"fingerprint": signing_fp, "key_usage": "signing"}]),
    )
}

#[test]
fn sign_verify_roundtrip_and_json_roundtrip() {
    let pki = TestPki::temporary();
    let signer = pki.signing("hd-1", "sd-admin").signer();
    let signed = signer
        .sign_record(
            "",
            record("hd-1", Section::Groups, json!(["health-departments"])),
        )
        .unwrap();
    let verifier = pki.verifier();
    assert_eq!(
        verifier
            .verify_record(&signed, &SigningPins::default())
            .unwrap(),
        "hd-1"
    );
    let back = SignedChangeRecord::from_json(&signed.to_json()).unwrap();
    assert_eq!(back, signed);
    assert!(
        verifier
            .verify_record(&back, &SigningPins::default())
            .is_ok()
    );
    let sig = signed.signature.as_ref().unwrap();
    assert!(sig.r.len() >= 10 && sig.c.starts_with("-----BEGIN CERTIFICATE-----\n"));
}

#[test]
fn tampered_fields_are_detected() {
    let pki = TestPki::temporary();
    let signer = pki.signing("hd-1", "sd-admin").signer();
    let verifier = pki.verifier();
    let pins = SigningPins::default();
    let signed = signer
        .sign_record("", record("hd-1", Section::Groups, json!(["a"])))
        .unwrap();

    let mut data = signed.clone();
    data.record.data = json!(["b"]);
    assert_eq!(
        verifier.verify_record(&data, &pins),
        Err(RecordError::InvalidHash)
    );

    let mut rehashed = data.clone();
    rehashed.hash = record_hash(&rehashed.record);
    assert_eq!(
        verifier.verify_record(&rehashed, &pins),
        Err(RecordError::BadSignature)
    );

    let mut parent = signed.clone();
    parent.parent_hash = "ab".repeat(32);
    assert_eq!(
        verifier.verify_record(&parent, &pins),
        Err(RecordError::BadSignature)
    );

    let mut unsigned = signed.clone();
    unsigned.signature = None;
    assert_eq!(
        verifier.verify_record(&unsigned, &pins),
        Err(RecordError::MissingSignature)
    );

    let mut bad_number = signed;
    if let Some(sig) = bad_number.signature.as_mut() {
        sig.s = "1".repeat(100);
    }
    assert_eq!(
        verifier.verify_record(&bad_number, &pins),
        Err(RecordError::BadSignature)
    );
}

#[test]
fn foreign_ca_is_untrusted() {
    let pki = TestPki::temporary();
    let foreign = TestPki::temporary();
    let signed = foreign
        .signing("hd-1", "sd-admin")
        .signer()
        .sign_record("", record("hd-1", Section::Groups, json!(["a"])))
        .unwrap();
    let err = pki
        .verifier()
        .verify_record(&signed, &SigningPins::default())
        .unwrap_err();
    assert_eq!(err.kind(), "untrusted_chain");
}

#[test]
fn non_admin_signer_is_rejected() {
    let pki = TestPki::temporary();
    let signed = pki
        .signing("hd-2", "")
        .signer()
        .sign_record("", record("hd-2", Section::Groups, json!(["a"])))
        .unwrap();
    assert_eq!(
        pki.verifier()
            .verify_record(&signed, &SigningPins::default()),
        Err(RecordError::NotAdmin("hd-2".into()))
    );
}

#[test]
fn pinned_key_mismatch_is_rejected_and_match_accepted() {
    let pki = TestPki::temporary();
    let first = pki.signing("hd-1", "sd-admin");
    let alt = pki.signing("hd-1", "sd-admin");
    let pin = first
        .signer()
        .sign_record(
            "",
            certificates("hd-1", &cert::fingerprint(&first.cert_der)),
        )
        .unwrap();
    let pins = SigningPins::from_records([&pin]);
    let verifier = pki.verifier();
    let by_first = first
        .signer()
        .sign_record(&pin.hash, record("hd-1", Section::Groups, json!(["a"])))
        .unwrap();
    assert!(verifier.verify_record(&by_first, &pins).is_ok());
    let by_alt = alt
        .signer()
        .sign_record(&pin.hash, record("hd-1", Section::Groups, json!(["a"])))
        .unwrap();
    assert_eq!(
        verifier.verify_record(&by_alt, &pins),
        Err(RecordError::PinMismatch("hd-1".into()))
    );
    // Pins are per name: another admin is unaffected (trust on first use).
    let other = pki
        .signing("sd-1", "sd-admin")
        .signer()
        .sign_record(&pin.hash, record("sd-1", Section::Groups, json!([])))
        .unwrap();
    assert!(
        verifier
            .verify_record_in(&other, std::slice::from_ref(&pin))
            .is_ok()
    );
}

#[test]
fn eku_code_signing_required_only_if_present() {
    let pki = TestPki::temporary();
    let verifier = pki.verifier();
    let data = record("hd-1", Section::Groups, json!(["a"]));
    let code = pki
        .signing_with_eku("hd-1", "sd-admin", ExtendedKeyUsagePurpose::CodeSigning)
        .signer();
    assert!(
        verifier
            .verify_record(
                &code.sign_record("", data.clone()).unwrap(),
                &SigningPins::default()
            )
            .is_ok()
    );
    let server = pki
        .signing_with_eku("hd-1", "sd-admin", ExtendedKeyUsagePurpose::ServerAuth)
        .signer();
    let err = verifier
        .verify_record(
            &server.sign_record("", data).unwrap(),
            &SigningPins::default(),
        )
        .unwrap_err();
    assert_eq!(err.kind(), "untrusted_chain");
}

#[test]
fn generic_signed_data_with_dns_name_check() {
    let pki = TestPki::temporary();
    let id = pki.signing("hd-1", "");
    let signed = id
        .signer()
        .sign_data(json!({"anything": [1, 2, {"x": true}]}))
        .unwrap();
    let text = serde_json::to_string(&signed).unwrap();
    let back: SignedData = serde_json::from_str(&text).unwrap();
    let verifier = pki.verifier();
    assert_eq!(
        verifier
            .verify_signed_data(&back, Some("hd-1"))
            .unwrap()
            .name,
        "hd-1"
    );
    assert!(verifier.verify_signed_data(&back, None).is_ok());
    assert_eq!(
        verifier
            .verify_signed_data(&back, Some("hd-2"))
            .unwrap_err()
            .kind(),
        "wrong_name"
    );
    let mut tampered = back;
    tampered.data = json!({"anything": [1, 2]});
    assert_eq!(
        verifier.verify_signed_data(&tampered, None).unwrap_err(),
        RecordError::BadSignature
    );
    assert!(
        verifier
            .check_signing_certificate(&id.cert_der, "hd-1")
            .is_ok()
    );
    assert!(
        verifier
            .check_signing_certificate(&id.cert_der, "hd-2")
            .is_err()
    );
}

#[test]
fn signer_accepts_sec1_keys_and_rejects_foreign_certs() {
    use p256::pkcs8::DecodePrivateKey as _;
    let pki = TestPki::temporary();
    let id = pki.signing("hd-1", "sd-admin");
    let sec1 = p256::SecretKey::from_pkcs8_pem(&id.key_pem)
        .unwrap()
        .to_sec1_pem(Default::default())
        .unwrap();
    assert!(sec1.contains("EC PRIVATE KEY"));
    let chain = format!("{}{}", id.cert_pem, pki.intermediate_pem());
    assert_eq!(Signer::from_pem(&sec1, &chain).unwrap().name(), "hd-1");
    let other = pki.signing("hd-2", "");
    assert!(matches!(
        Signer::from_pem(&sec1, &other.cert_pem),
        Err(crate::signing::SignError::KeyMismatch)
    ));
}
