//! Directory records: parsing never panics, a parsed record's JSON round trip is lossless (same text, same hash),
//! verification never panics, and a record that verifies still verifies after the round trip.

use std::time::Duration;

use rustls_pki_types::UnixTime;

use tandem_directory::{
    SignedChangeRecord, SigningPins, Verifier, VerifierSetupError, record_hash,
};

/// Verification time of the checks: 2026-01-01T00:00:00Z, in seconds since the epoch. Fixed so that a committed
/// seed keeps verifying; inside the test CA's validity (rcgen's default, 1975 to 4096).
const VERIFY_AT_SECS: u64 = 1_767_225_600;

/// A verifier trusting only `ca_pem` (no intermediates) at the fixed check time.
pub fn directory_verifier(ca_pem: &[u8]) -> Result<Verifier, VerifierSetupError> {
    Ok(
        Verifier::from_pem(&[ca_pem.to_vec()], &[])?.at_time(UnixTime::since_unix_epoch(
            Duration::from_secs(VERIFY_AT_SECS),
        )),
    )
}

/// Input: one record's JSON. Checks the record as given and, so that mutated records reach the certificate and
/// signature checks, once more with its hash recomputed; each both without pins and pinned by the record itself.
pub fn directory_record(verifier: &Verifier, data: &[u8]) {
    let Ok(record) = SignedChangeRecord::from_json(data) else {
        return;
    };
    let json = record.to_json();
    let back = match SignedChangeRecord::from_json(&json) {
        Ok(back) => back,
        Err(e) => panic!("a parsed record's own JSON does not parse: {e}"),
    };
    // Representations may differ where nothing depends on them (`+00:00` reads back as `Z`); the stored text must
    // be a fixed point and the hash must not move.
    assert_eq!(back.to_json(), json, "the stored JSON is not a fixed point");
    let hash = record_hash(&record.record);
    assert_eq!(
        record_hash(&back.record),
        hash,
        "the JSON round trip changed the hash"
    );
    check_verify(verifier, &record, &back);
    if record.hash != hash {
        let mut rehashed = record.clone();
        rehashed.hash.clone_from(&hash);
        let mut rehashed_back = back;
        rehashed_back.hash = hash;
        check_verify(verifier, &rehashed, &rehashed_back);
    }
}

/// Verifies `record` with no pins and with the pins it sets itself; a success must repeat on `back`.
fn check_verify(verifier: &Verifier, record: &SignedChangeRecord, back: &SignedChangeRecord) {
    for pins in [SigningPins::default(), SigningPins::from_records([record])] {
        if let Ok(name) = verifier.verify_record(record, &pins) {
            assert_eq!(
                verifier.verify_record(back, &pins),
                Ok(name),
                "a record that verifies fails after a JSON round trip"
            );
        }
    }
}
