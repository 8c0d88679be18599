//! Fuzz target: `tandem_testkit::fuzzing::directory_record` against the committed test CA (`corpus/ca/root.pem`).
#![no_main]

use std::sync::OnceLock;

use tandem_directory::Verifier;

/// The fixed test CA the seed record is signed under (generated once, see `corpus/README.md`).
const CA_PEM: &[u8] = include_bytes!("../corpus/ca/root.pem");

fn verifier() -> &'static Verifier {
    static VERIFIER: OnceLock<Verifier> = OnceLock::new();
    VERIFIER.get_or_init(|| {
        tandem_testkit::fuzzing::directory_verifier(CA_PEM)
            .expect("the committed test CA is a valid PEM certificate")
    })
}

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    tandem_testkit::fuzzing::directory_record(verifier(), data)
});
