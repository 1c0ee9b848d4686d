//! Fuzz harnesses: one function per fuzz target, each asserting the
//! invariants the target exists to check, not only "no panic". The thin
//! cargo-fuzz binaries in `fuzz/fuzz_targets/` call these, and the unit
//! tests replay every seed and regression input under `fuzz/corpus/` through
//! them on each `cargo test`, so a crash once found stays fixed.
//!
//! Not part of postern's interface; public only so the fuzz crate can reach
//! it.

mod convert;
mod message;
mod proxy;
mod session;
mod text;

pub use convert::provider_conversion;
pub use message::inspect_and_sign;
pub use proxy::proxy_header;
pub use session::smtp_session;
pub use text::{address, config, sasl};

/// A harness: takes one fuzz input, panics when an invariant breaks.
pub type Harness = fn(&[u8]);

/// Every target by the name of its corpus directory and fuzz binary.
pub const TARGETS: &[(&str, Harness)] = &[
    ("smtp_session", smtp_session),
    ("sasl", sasl),
    ("inspect_and_sign", inspect_and_sign),
    ("config", config),
    ("address", address),
    ("provider_conversion", provider_conversion),
    ("proxy_header", proxy_header),
];

/// First bare CR or LF in `b` (one not part of a CRLF pair).
fn bare_newline(b: &[u8]) -> Option<usize> {
    (0..b.len()).find(|&i| match b[i] {
        b'\r' => b.get(i + 1) != Some(&b'\n'),
        b'\n' => i == 0 || b[i - 1] != b'\r',
        _ => false,
    })
}

#[cfg(test)]
mod tests;
