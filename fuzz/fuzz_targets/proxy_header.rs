#![no_main]
//! See postern::fuzzing::proxy_header for the invariants checked.
libfuzzer_sys::fuzz_target!(|data: &[u8]| postern::fuzzing::proxy_header(data));
