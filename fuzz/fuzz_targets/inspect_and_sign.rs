#![no_main]
//! See postern::fuzzing::inspect_and_sign for the invariants checked.
libfuzzer_sys::fuzz_target!(|data: &[u8]| postern::fuzzing::inspect_and_sign(data));
