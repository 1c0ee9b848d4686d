//! The quota state file: hour and day counters that survive a restart.
//!
//! Written whole, to a temporary file that is fsync'd and renamed over the
//! old one (then the directory is fsync'd), so a crash leaves either the old
//! or the new file, never a torn one. A file that cannot be parsed is moved
//! aside (`.corrupt`) and postern starts with empty counters: refusing to
//! start because of rate-limit bookkeeping would stop all mail.

use super::engine::Dim;
use super::window::{Day, Hour, Saved, Span, Window};
use serde::{Deserialize, Serialize};
use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The file name under `[server] state_dir`.
pub const STATE_FILE_NAME: &str = "quota-state.json";

const VERSION: u32 = 1;

#[derive(Serialize, Deserialize)]
struct StateFile {
    version: u32,
    /// Unix seconds; informational.
    saved_at: u64,
    keys: Vec<Record>,
}

/// Why the saved state could not be used.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("cannot read {path}: {source}")]
    Read { path: PathBuf, source: io::Error },
    #[error(
        "{path} is not a quota state file ({reason}); moved it to {moved} and started with empty counters"
    )]
    Corrupt {
        path: PathBuf,
        reason: String,
        moved: PathBuf,
    },
}

/// Reads the saved records; a missing file is an empty state.
pub(crate) fn load(path: &Path) -> Result<Vec<Record>, LoadError> {
    let bytes = match fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => {
            return Err(LoadError::Read {
                path: path.to_path_buf(),
                source,
            });
        }
    };
    let reason = match serde_json::from_slice::<StateFile>(&bytes) {
        Ok(f) if f.version == VERSION => return Ok(f.keys),
        Ok(f) => format!("unknown version {}", f.version),
        Err(e) => e.to_string(),
    };
    let moved = side_path(path, ".corrupt");
    // If even the move fails, the next save overwrites the file; the
    // error below still tells the operator what happened.
    let _ = fs::rename(path, &moved);
    Err(LoadError::Corrupt {
        path: path.to_path_buf(),
        reason,
        moved,
    })
}

pub(crate) fn side_path(path: &Path, suffix: &str) -> PathBuf {
    let mut s = path.as_os_str().to_os_string();
    s.push(suffix);
    PathBuf::from(s)
}

/// Replaces the state file atomically and durably.
pub(crate) fn save(path: &Path, records: Vec<Record>, saved_at: u64) -> io::Result<()> {
    let file = StateFile {
        version: VERSION,
        saved_at,
        keys: records,
    };
    let bytes = serde_json::to_vec(&file).map_err(io::Error::other)?;
    write_atomically(path, &bytes)
}

/// Replaces `path` with `bytes`: a temporary file that is fsync'd and
/// renamed over it, then the directory fsync'd, so a crash leaves the old
/// file or the new one. Owner-only: the state files name senders, usernames
/// and client addresses. Also used for `access::known`'s file.
pub(crate) fn write_atomically(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    fs::create_dir_all(dir)?;
    let tmp = side_path(path, ".tmp");
    {
        let mut f = fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
    }
    fs::rename(&tmp, path)?;
    fs::File::open(dir)?.sync_all()
}

/// A copy of a window that still counts something.
pub(crate) fn live<S: Span>(w: &mut Option<Window<S>>, now: u64) -> Option<Window<S>> {
    let w = w.as_mut()?;
    if w.is_empty(now) {
        None
    } else {
        Some(w.clone())
    }
}

/// One key's counters as copied under the lock.
pub(crate) struct Snap {
    pub dim: Dim,
    pub key: Arc<str>,
    pub messages_hour: Option<Window<Hour>>,
    pub messages_day: Option<Window<Day>>,
    pub recipients_hour: Option<Window<Hour>>,
    pub recipients_day: Option<Window<Day>>,
}

impl Snap {
    pub fn record(&self) -> Record {
        Record {
            dim: self.dim,
            key: self.key.to_string(),
            messages_hour: self.messages_hour.as_ref().map(Window::save),
            messages_day: self.messages_day.as_ref().map(Window::save),
            recipients_hour: self.recipients_hour.as_ref().map(Window::save),
            recipients_day: self.recipients_day.as_ref().map(Window::save),
        }
    }
}

/// False if a saved window has the wrong shape (it is then left empty).
pub(crate) fn restore_window<S: Span>(slot: &mut Option<Window<S>>, saved: &Option<Saved>) -> bool {
    let Some(saved) = saved else {
        return true;
    };
    *slot = Window::restore(saved);
    slot.is_some()
}

/// One key's saved counters in the state file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Record {
    pub dim: Dim,
    pub key: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub messages_hour: Option<Saved>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub messages_day: Option<Saved>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recipients_hour: Option<Saved>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recipients_day: Option<Saved>,
}
