//! Replays the committed fuzz corpus (`fuzz/corpus/<target>/`) through the same checks the fuzz targets run
//! (`tandem_testkit::fuzzing`), so `make test` catches a regression on any input a fuzzer once found interesting.
//! Also holds the (ignored) generator of the directory target's fixed test CA and signed seed record.

use std::path::PathBuf;

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair, KeyUsagePurpose,
    PKCS_ECDSA_P256_SHA256, SanType,
};
use serde_json::json;
use tandem_directory::{
    ChangeRecord, RecordTime, Section, SignedChangeRecord, Signer, SigningPins,
};
use tandem_testkit::fuzzing;

fn corpus_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus")
}

/// Every file of one target's corpus directory, sorted; panics on an empty or missing directory so that a moved
/// corpus cannot turn these tests into ones that pass on nothing.
fn corpus(target: &str) -> Vec<(String, Vec<u8>)> {
    let dir = corpus_dir().join(target);
    let mut files: Vec<(String, Vec<u8>)> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("corpus {}: {e}", dir.display()))
        .map(|entry| {
            let path = entry.expect("readable directory entry").path();
            let bytes = std::fs::read(&path).expect("readable corpus file");
            (path.display().to_string(), bytes)
        })
        .collect();
    files.sort();
    assert!(!files.is_empty(), "corpus {} is empty", dir.display());
    files
}

fn replay(target: &str, check: impl Fn(&[u8]) + std::panic::RefUnwindSafe) {
    for (name, bytes) in corpus(target) {
        if std::panic::catch_unwind(|| check(&bytes)).is_err() {
            panic!("{target}: corpus input {name} fails its check");
        }
    }
}

fn ca_pem() -> Vec<u8> {
    std::fs::read(corpus_dir().join("ca/root.pem")).expect("the committed test CA")
}

#[test]
fn jsonrpc_request_corpus() {
    replay("jsonrpc_request", fuzzing::jsonrpc_request);
}

#[test]
fn hyper_message_corpus() {
    replay("hyper_message", fuzzing::hyper_message);
}

#[test]
fn directory_record_corpus() {
    let verifier = fuzzing::directory_verifier(&ca_pem()).expect("test CA");
    replay("directory_record", |bytes| {
        fuzzing::directory_record(&verifier, bytes)
    });
}

/// The committed seed record really verifies under the committed CA, so the fuzzer starts from a record that
/// reaches the signature check (and the round-trip check on a verified record is exercised).
#[test]
fn seed_record_verifies_under_the_test_ca() {
    let verifier = fuzzing::directory_verifier(&ca_pem()).expect("test CA");
    let seed = std::fs::read(corpus_dir().join("directory_record/seed_signed_groups.json"))
        .expect("seed record");
    let record = SignedChangeRecord::from_json(&seed).expect("seed parses");
    assert_eq!(
        verifier.verify_record(&record, &SigningPins::default()),
        Ok("fuzz-admin".to_owned())
    );
}

/// Regenerates `fuzz/corpus/ca/root.pem` and the signed seed record (run once by hand:
/// `cargo test -p tandem-testkit --test integration -- --ignored regenerate`). Keys are not kept.
#[test]
#[ignore = "writes the committed fuzz seeds; run by hand"]
fn regenerate_directory_seed() {
    let key = || KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).expect("P-256 key");
    let mut ca = CertificateParams::new(Vec::<String>::new()).expect("no SANs");
    ca.distinguished_name
        .push(DnType::CommonName, "tandem-fuzz-ca");
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let root = CertifiedIssuer::self_signed(ca, key()).expect("root");
    let mut leaf = CertificateParams::new(Vec::<String>::new()).expect("no SANs");
    leaf.distinguished_name
        .push(DnType::CommonName, "fuzz-admin");
    leaf.subject_alt_names = vec![
        SanType::URI("iris-name://fuzz-admin".try_into().expect("ia5")),
        SanType::URI("iris-group://sd-admin".try_into().expect("ia5")),
        SanType::DnsName("fuzz-admin".try_into().expect("ia5")),
    ];
    leaf.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    let leaf_key = key();
    let cert = leaf.signed_by(&leaf_key, &root).expect("leaf");
    let signer = Signer::from_pem(&leaf_key.serialize_pem(), &cert.pem()).expect("signer");
    let at = RecordTime::parse("2026-01-01T00:00:00Z").expect("time");
    let groups = ChangeRecord::new(
        "fuzz-admin".into(),
        Section::Groups,
        &json!(["sd-admin", "health"]),
        at,
    )
    .expect("record");
    let signed = signer.sign_record("", groups).expect("sign");
    let dir = corpus_dir();
    std::fs::write(dir.join("ca/root.pem"), root.pem()).expect("write CA");
    std::fs::write(
        dir.join("directory_record/seed_signed_groups.json"),
        signed.to_json(),
    )
    .expect("write seed");
}
