//! Credential suspension: an operator's (or the volume-spike detector's)
//! immediate revocation of a credential, without editing the configuration.
//!
//! A suspended credential cannot log in (`535 5.7.8 Credential "NAME" is
//! suspended`, answered only after a valid password, so the reply tells
//! nothing to someone who does not have the secret) and every session
//! already using it, by AUTH or by `networks`, gets `550 5.7.1 Credential
//! "NAME" is suspended` at its next MAIL. A suspension may carry an expiry
//! and a reason; an expired one is simply no longer in force.
//!
//! The record belongs to the daemon, not to a configuration generation (a
//! reload keeps it, like lockouts and known clients), and lives in
//! `state_dir/suspensions.json`, replaced atomically (temporary file,
//! fsync, rename, directory fsync) on every change so it survives a
//! restart. Unlike the quota and known-client records, an unreadable file
//! stops the daemon from starting: forgetting it would silently give a
//! revoked credential its access back. Time comes from an injectable clock
//! (wall time: an expiry written before a restart means the same after it).

use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::clock::{SharedClock, SystemClock};
use crate::quota::persist::write_atomically;

/// The file in `state_dir`.
pub const FILE_NAME: &str = "suspensions.json";

const VERSION: u32 = 1;
const NANOS_PER_SEC: u64 = 1_000_000_000;

/// One credential's suspension.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Suspension {
    pub credential: String,
    /// Unix seconds when it was suspended.
    pub since: u64,
    /// Unix seconds when it lifts by itself; never if absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Who asked: `operator` (`postern credential suspend`) or `alerts`
    /// (the volume-spike detector).
    pub by: String,
}

#[derive(Serialize, Deserialize)]
struct StateFile {
    version: u32,
    suspensions: Vec<Suspension>,
}

/// Why the saved record cannot be used; the daemon does not start.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("cannot read credential suspensions {}: {source}", path.display())]
    Read { path: PathBuf, source: io::Error },
    #[error(
        "credential suspensions {} are unreadable ({reason}); fix the file, or remove it to lift every suspension",
        path.display()
    )]
    Corrupt { path: PathBuf, reason: String },
}

/// Every suspension in force, shared by all configuration generations.
pub struct Suspensions {
    state: Mutex<BTreeMap<String, Suspension>>,
    /// Serialises writers, so the file always holds the latest state.
    saving: Mutex<()>,
    path: PathBuf,
    clock: SharedClock,
}

impl Suspensions {
    /// Loads `path` (normally `state_dir/suspensions.json`; missing means
    /// none).
    pub fn load(path: PathBuf) -> Result<Suspensions, LoadError> {
        Suspensions::with_clock(path, SystemClock::shared())
    }

    /// Like [`Suspensions::load`] on a given clock.
    pub fn with_clock(path: PathBuf, clock: SharedClock) -> Result<Suspensions, LoadError> {
        let list = load(&path)?;
        Ok(Suspensions {
            state: Mutex::new(
                list.into_iter()
                    .map(|s| (s.credential.clone(), s))
                    .collect(),
            ),
            saving: Mutex::new(()),
            path,
            clock,
        })
    }

    fn lock(&self) -> MutexGuard<'_, BTreeMap<String, Suspension>> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn now(&self) -> u64 {
        self.clock.now() / NANOS_PER_SEC
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The suspension of `credential` if one is in force now.
    pub fn check(&self, credential: &str) -> Option<Suspension> {
        let now = self.now();
        self.lock()
            .get(credential)
            .filter(|s| s.until.is_none_or(|u| u > now))
            .cloned()
    }

    /// Every suspension in force now, by credential name.
    pub fn active(&self) -> Vec<Suspension> {
        let now = self.now();
        self.lock()
            .values()
            .filter(|s| s.until.is_none_or(|u| u > now))
            .cloned()
            .collect()
    }

    /// Suspends `credential` from now (for `duration` if given), replacing
    /// an earlier suspension of it. In force at once; [`Suspensions::save`]
    /// makes it durable.
    pub fn suspend(
        &self,
        credential: &str,
        duration: Option<Duration>,
        reason: Option<String>,
        by: &str,
    ) -> Suspension {
        let now = self.now();
        let s = Suspension {
            credential: credential.to_string(),
            since: now,
            until: duration.map(|d| now.saturating_add(d.as_secs().max(1))),
            reason: reason.filter(|r| !r.trim().is_empty()),
            by: by.to_string(),
        };
        self.lock().insert(credential.to_string(), s.clone());
        s
    }

    /// Lifts the suspension of `credential`; what it was, if one was in
    /// force. [`Suspensions::save`] makes it durable.
    pub fn resume(&self, credential: &str) -> Option<Suspension> {
        let now = self.now();
        self.lock()
            .remove(credential)
            .filter(|s| s.until.is_none_or(|u| u > now))
    }

    /// Puts one suspension (as made by [`Suspensions::suspend`]) in force
    /// again: after it was written to the shared record, so a read of that
    /// record in between cannot have lifted it for good.
    pub fn put(&self, s: Suspension) {
        self.lock().insert(s.credential.clone(), s);
    }

    /// Puts `list` in force instead of what is held now (the record shared
    /// through Redis, `[cluster]`); whether anything in force changed.
    pub fn replace_all(&self, list: Vec<Suspension>) -> bool {
        let now = self.now();
        let live = |s: &Suspension| s.until.is_none_or(|u| u > now);
        let new: BTreeMap<String, Suspension> = list
            .into_iter()
            .filter(live)
            .map(|s| (s.credential.clone(), s))
            .collect();
        let mut state = self.lock();
        let old: BTreeMap<&String, &Suspension> = state.iter().filter(|(_, s)| live(s)).collect();
        if old.len() == new.len() && new.iter().all(|(k, v)| old.get(k) == Some(&v)) {
            return false;
        }
        *state = new;
        true
    }

    /// Writes the record (expired suspensions dropped). Blocking: call
    /// from `spawn_blocking`.
    pub fn save(&self) -> io::Result<()> {
        let _saving = self.saving.lock().unwrap_or_else(PoisonError::into_inner);
        let now = self.now();
        let list: Vec<Suspension> = {
            let mut state = self.lock();
            state.retain(|_, s| s.until.is_none_or(|u| u > now));
            state.values().cloned().collect()
        };
        let file = StateFile {
            version: VERSION,
            suspensions: list,
        };
        let bytes = serde_json::to_vec_pretty(&file).map_err(io::Error::other)?;
        write_atomically(&self.path, &bytes)
    }
}

/// Reads the saved record; a missing file is an empty one.
fn load(path: &Path) -> Result<Vec<Suspension>, LoadError> {
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
        Ok(f) if f.version == VERSION => return Ok(f.suspensions),
        Ok(f) => format!("unknown version {}", f.version),
        Err(e) => e.to_string(),
    };
    Err(LoadError::Corrupt {
        path: path.to_path_buf(),
        reason,
    })
}

#[cfg(test)]
mod tests;
