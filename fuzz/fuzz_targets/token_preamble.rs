//! Fuzz target: `tandem_engine::fuzzing::token_preamble` (see that function for the input layout and the checks).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| tandem_engine::fuzzing::token_preamble(data));
