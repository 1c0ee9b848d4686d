#![no_main]
//! See postern::fuzzing::sasl for the invariants checked.
libfuzzer_sys::fuzz_target!(|data: &[u8]| postern::fuzzing::sasl(data));
