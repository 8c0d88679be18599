//! Fuzz target: `tandem_testkit::fuzzing::hyper_message` (see that function for the checks).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| tandem_testkit::fuzzing::hyper_message(data));
