#![no_main]
//! See postern::fuzzing::smtp_session for the invariants checked.
libfuzzer_sys::fuzz_target!(|data: &[u8]| postern::fuzzing::smtp_session(data));
