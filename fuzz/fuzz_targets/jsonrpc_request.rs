//! Fuzz target: `tandem_testkit::fuzzing::jsonrpc_request` (see that function for the input layout and the checks).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| tandem_testkit::fuzzing::jsonrpc_request(data));
