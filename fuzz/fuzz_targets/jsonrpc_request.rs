//! Fuzz target: `tandem_control::fuzzing::jsonrpc_request` (see that function for the input layout and the checks).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| tandem_control::fuzzing::jsonrpc_request(data));
