#![no_main]
//! See postern::fuzzing::address for the invariants checked.
libfuzzer_sys::fuzz_target!(|data: &[u8]| postern::fuzzing::address(data));
