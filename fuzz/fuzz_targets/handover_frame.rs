//! Fuzz target: `tandem_engine::fuzzing::handover_frame` (see that function for the checks).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| tandem_engine::fuzzing::handover_frame(data));
