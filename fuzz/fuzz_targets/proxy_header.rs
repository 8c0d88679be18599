//! Fuzz target: `tandem_proxy_header::fuzzing::proxy_header` (see that function for the input layout and the checks).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| tandem_proxy_header::fuzzing::proxy_header(data));
