//! Which daemon the control commands talk to, and how their output reads.
//!
//! A command finds the daemon through its `state_dir`: from `--state-dir`,
//! or from `[server] state_dir` of the configuration (`--config`, default
//! /etc/postern/postern.toml). Reading the configuration resolves its
//! secret references, so where those are not available (an operator shell
//! without the service's environment) `--state-dir` is the way.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::config;
use crate::control::{self, ClientError, Request};

/// `--config` / `--state-dir` as given.
#[derive(Debug, Clone)]
pub struct Target {
    pub config: PathBuf,
    pub state_dir: Option<PathBuf>,
}

impl Target {
    /// The state_dir to use, or the error text to print.
    pub fn state_dir(&self) -> Result<PathBuf, String> {
        if let Some(d) = &self.state_dir {
            return Ok(d.clone());
        }
        match config::load(&self.config) {
            Ok(c) => Ok(c.server.state_dir),
            Err(errors) => Err(format!(
                "{errors}\npostern: cannot read the configuration to find state_dir; fix it, or give --state-dir DIR"
            )),
        }
    }
}

/// Asks the daemon; `Err` is the line to print.
pub fn ask(state_dir: &Path, req: &Request) -> Result<serde_json::Value, ClientError> {
    control::request(state_dir, req)
}

/// Decodes a result the daemon sent.
pub fn decode<T: serde::de::DeserializeOwned>(v: serde_json::Value) -> Result<T, String> {
    serde_json::from_value(v).map_err(|e| format!("unexpected answer from the daemon: {e}"))
}

/// The refusal for a command that needs the running daemon.
pub fn needs_daemon(command: &str, err: &ClientError) -> String {
    if err.is_not_running() {
        format!(
            "`postern {command}` needs the running daemon, and {err}.\n\
             Start postern (systemctl start postern) and run the command again; \
             a stopped daemon's spool can only be listed and shown."
        )
    } else {
        err.to_string()
    }
}

pub fn now_unix() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// "3m 20s" (whole seconds; at most two units).
pub fn span(secs: u64) -> String {
    let units = [(86_400, "d"), (3600, "h"), (60, "m"), (1, "s")];
    if secs == 0 {
        return "0s".to_string();
    }
    let mut out = Vec::new();
    let mut rest = secs;
    for (size, name) in units {
        if rest >= size {
            out.push(format!("{}{name}", rest / size));
            rest %= size;
        }
        if out.len() == 2 {
            break;
        }
    }
    out.join(" ")
}

/// How long ago unix time `t` was.
pub fn ago(t: u64) -> String {
    span(now_unix().saturating_sub(t))
}

/// When unix time `t` comes: "now", "in 30s", or "5m ago" when overdue.
pub fn when(t: u64) -> String {
    let now = now_unix();
    if t <= now {
        if now - t < 2 {
            "now".to_string()
        } else {
            format!("due {} ago", span(now - t))
        }
    } else {
        format!("in {}", span(t - now))
    }
}

/// RFC 3339 in UTC, whole seconds.
pub fn stamp(t: u64) -> String {
    humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_secs(t)).to_string()
}

/// Bytes with a binary unit ("1.5 KiB").
pub fn size(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut v = bytes as f64 / 1024.0;
    let mut unit = 0;
    while v >= 1024.0 && unit < UNITS.len() - 1 {
        v /= 1024.0;
        unit += 1;
    }
    format!("{v:.1} {}", UNITS[unit])
}

/// Text from the spool or the daemon, made safe for a terminal: control
/// characters (an escape sequence in a sender address or an upstream's
/// error) are shown as `?`.
pub fn clean(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .collect()
}

#[cfg(test)]
mod tests;
