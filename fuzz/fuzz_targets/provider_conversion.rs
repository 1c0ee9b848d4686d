#![no_main]
//! See postern::fuzzing::provider_conversion for the invariants checked.
libfuzzer_sys::fuzz_target!(|data: &[u8]| postern::fuzzing::provider_conversion(data));
