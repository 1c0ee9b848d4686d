#![no_main]
//! See postern::fuzzing::config for the invariants checked.
libfuzzer_sys::fuzz_target!(|data: &[u8]| postern::fuzzing::config(data));
