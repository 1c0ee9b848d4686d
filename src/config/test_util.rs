//! Fixtures shared by the config modules' tests: one minimal valid
//! config and one way to load text and collect its errors as strings, so
//! each section's tests only say what they add.

use std::path::Path;

use super::{Config, load_str};

/// A minimal valid config: a state dir, one plain listener, one LAN
/// credential and a default route to the directory upstream `out`.
pub(super) const BASE: &str = r#"
[server]
state_dir = "state"

[[listeners]]
address = "127.0.0.1:2525"
tls = "none"

[credentials.lan]
networks = ["127.0.0.0/8"]
allowed_senders = ["*@example.com"]

[routes.default]
upstreams = ["out"]

[upstreams.out]
kind = "directory"
path = "outbox"
"#;

/// Loads `text` as `/etc/p/main.toml`; errors as their displayed lines.
pub(super) fn load_text(text: &str) -> Result<Config, Vec<String>> {
    load_str(Path::new("/etc/p/main.toml"), text)
        .map_err(|e| e.0.iter().map(|e| e.to_string()).collect())
}

/// The errors `text` produces (none when it loads).
pub(super) fn errors_of(text: &str) -> Vec<String> {
    load_text(text).err().unwrap_or_default()
}
