//! Fuzz target: `tandem_engine::fuzzing::pair_table` (see that function for the input layout and the checks).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| tandem_engine::fuzzing::pair_table(data));
