//! `postern spool adopt PATH`: taking over the spool another node left.
//!
//! Every queued message (with its retry and hold sidecars) and every dead
//! letter (with its reason) moves from the other spool into this one under
//! its own id, so the delivery history and back-off carry over. The other
//! spool's lock is taken first and held throughout: a live process holding
//! it means the node is not dead, and adopting from under it would deliver
//! its mail twice.
//!
//! Crash safety, one message at a time: sidecars are copied first (tmp/,
//! fsync, rename), then the message is renamed into place (or, across file
//! systems, copied to tmp/, fsync'd and renamed), the directory fsync'd,
//! and only then is the source removed. A message is therefore in the
//! source, in both places (same id, same bytes), or here alone, never
//! nowhere; a second run finishes a half-done one by recognising the copy
//! already in place and removing the source. Across file systems a crash
//! between the rename and the source's removal leaves both copies; if this
//! node delivers its copy before the run is repeated, the repeat would
//! deliver it again. On one file system the rename moves it atomically.

use std::fs::{self, File};
use std::io;
use std::path::{Path, PathBuf};

use super::store::{HOLD_SUFFIX, REASON_SUFFIX, RETRY_SUFFIX, check_id, sync_dir};
use super::{Recovered, SpoolDir, SpoolError};

/// What one adoption moved.
#[derive(Debug, Default)]
pub struct Adopted {
    /// Queued messages now in this spool, to be scheduled.
    pub queued: Vec<Recovered>,
    /// Dead letters now in this spool's dead/.
    pub dead: Vec<String>,
    /// Files left in the other spool, each with why (an id this spool
    /// already has with other contents, an unreadable file).
    pub skipped: Vec<(String, String)>,
}

impl SpoolDir {
    /// Takes this spool's lock for an offline adoption (no daemon runs on
    /// it); the lock is held while the returned file is open.
    pub fn lock_for_adoption(&self) -> Result<File, SpoolError> {
        self.create_and_lock()
    }

    /// Moves everything queued and dead in the spool at `source` into this
    /// one. The caller holds this spool's lock (the daemon, or
    /// [`SpoolDir::lock_for_adoption`]). Blocking.
    pub fn adopt_from(&self, source: &Path) -> Result<Adopted, SpoolError> {
        let src = SpoolDir::new(spool_root(source));
        if fs::canonicalize(src.root()).ok() == fs::canonicalize(self.root()).ok() {
            return Err(SpoolError::Adopt(format!(
                "{} is this node's own spool",
                src.root().display()
            )));
        }
        if !src.queue_dir().is_dir() && !src.dead_dir().is_dir() {
            return Err(SpoolError::Adopt(format!(
                "{} is not a postern spool (no queue/ or dead/)",
                src.root().display()
            )));
        }
        let _lock = src.lock_existing()?;
        // Its segment log's live records become files there first, so one
        // way of moving (file by file) covers everything.
        src.materialize_segments()?;
        let mut out = Adopted::default();
        if src.queue_dir().is_dir() {
            self.adopt_queue(&src, &mut out)?;
        }
        if src.dead_dir().is_dir() {
            self.adopt_dead(&src, &mut out)?;
        }
        Ok(out)
    }

    /// The other spool's lock, without creating directories. An error
    /// when a live process holds it.
    fn lock_existing(&self) -> Result<Option<File>, SpoolError> {
        let path = self.root().join("lock");
        let file = match fs::OpenOptions::new().write(true).open(&path) {
            Ok(f) => f,
            // A spool copied without its lock file: nobody can hold it.
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(SpoolError::io("open", &path, e)),
        };
        match file.try_lock() {
            Ok(()) => Ok(Some(file)),
            Err(fs::TryLockError::WouldBlock) => Err(SpoolError::Adopt(format!(
                "{} is locked by a running process: that node is alive (stop it first; adopting its spool from under it would deliver its mail twice)",
                self.root().display()
            ))),
            Err(fs::TryLockError::Error(e)) => Err(SpoolError::io("lock", &path, e)),
        }
    }

    fn adopt_queue(&self, src: &SpoolDir, out: &mut Adopted) -> Result<(), SpoolError> {
        let names = src.names(&src.queue_dir())?;
        for name in &names {
            if super::store::is_sidecar(name, false) {
                continue;
            }
            if check_id(name).is_err() {
                out.skipped.push((name.clone(), "not a message id".into()));
                continue;
            }
            let from = src.queue_path(name);
            let envelope = match src.check_message(&from, name) {
                Ok(e) => e,
                Err(reason) => {
                    out.skipped.push((name.clone(), reason));
                    continue;
                }
            };
            if self.dead_path(name).exists() {
                out.skipped.push((
                    name.clone(),
                    "this spool has a dead letter with that id".into(),
                ));
                continue;
            }
            // Sidecars first, so the message never sits here without the
            // back-off and hold it had.
            for suffix in [RETRY_SUFFIX, HOLD_SUFFIX] {
                let side = format!("{name}{suffix}");
                let from = src.queue_dir().join(&side);
                if from.exists() {
                    self.copy_in(&from, &side, &self.queue_dir().join(&side))?;
                }
            }
            if let Err(reason) = self.place(&from, name, &self.queue_path(name)) {
                out.skipped.push((name.clone(), reason));
                continue;
            }
            sync_dir(&self.queue_dir())?;
            remove_if_present(&from)?;
            for suffix in [RETRY_SUFFIX, HOLD_SUFFIX] {
                remove_if_present(&src.queue_dir().join(format!("{name}{suffix}")))?;
            }
            sync_dir(&src.queue_dir())?;
            out.queued.push(Recovered {
                retry: self.read_retry(name),
                held: self.hold_path(name).exists(),
                envelope,
            });
        }
        // Sidecars whose message went (a run interrupted after the move).
        for name in names {
            if let Some(id) = sidecar_id(&name, &[RETRY_SUFFIX, HOLD_SUFFIX])
                && !src.queue_path(id).exists()
            {
                remove_if_present(&src.queue_dir().join(&name))?;
            }
        }
        out.queued.sort_by(|a, b| a.envelope.id.cmp(&b.envelope.id));
        Ok(())
    }

    fn adopt_dead(&self, src: &SpoolDir, out: &mut Adopted) -> Result<(), SpoolError> {
        let names = src.names(&src.dead_dir())?;
        for name in &names {
            if super::store::is_sidecar(name, true) {
                continue;
            }
            if check_id(name).is_err() {
                out.skipped.push((name.clone(), "not a message id".into()));
                continue;
            }
            let from = src.dead_path(name);
            if self.queue_path(name).exists() {
                out.skipped.push((
                    name.clone(),
                    "this spool has a queued message with that id".into(),
                ));
                continue;
            }
            let side = format!("{name}{REASON_SUFFIX}");
            let reason = src.dead_dir().join(&side);
            if reason.exists() {
                self.copy_in(&reason, &side, &self.dead_dir().join(&side))?;
            }
            if let Err(why) = self.place(&from, name, &self.dead_path(name)) {
                out.skipped.push((name.clone(), why));
                continue;
            }
            sync_dir(&self.dead_dir())?;
            remove_if_present(&from)?;
            remove_if_present(&reason)?;
            sync_dir(&src.dead_dir())?;
            out.dead.push(name.clone());
        }
        for name in names {
            if let Some(id) = sidecar_id(&name, &[REASON_SUFFIX])
                && !src.dead_path(id).exists()
            {
                remove_if_present(&src.dead_dir().join(&name))?;
            }
        }
        out.dead.sort();
        Ok(())
    }

    /// Puts the message file `from` at `dest` (this spool). Err (the
    /// message stays in the source) when `dest` already holds different
    /// bytes: an id collision, which no run should resolve by guessing.
    fn place(&self, from: &Path, name: &str, dest: &Path) -> Result<(), String> {
        if dest.exists() {
            // A previous run got this far; the copy is ours if identical.
            return match (fs::read(from), fs::read(dest)) {
                (Ok(a), Ok(b)) if a == b => Ok(()),
                (Ok(_), Ok(_)) => {
                    Err("this spool already has a different message with that id".into())
                }
                (Err(e), _) | (_, Err(e)) => Err(e.to_string()),
            };
        }
        match fs::rename(from, dest) {
            // The source is gone with it; the caller's removal finds nothing.
            Ok(()) => Ok(()),
            Err(e) if e.raw_os_error() == Some(18) => {
                // EXDEV: another file system (a re-attached volume).
                self.copy_in(from, name, dest).map_err(|e| e.to_string())
            }
            Err(e) => Err(e.to_string()),
        }
    }

    /// Copies `from` to `dest` through tmp/ (fsync'd, then renamed).
    fn copy_in(&self, from: &Path, tmp_name: &str, dest: &Path) -> Result<(), SpoolError> {
        let tmp = self.tmp_path(tmp_name);
        fs::copy(from, &tmp).map_err(|e| SpoolError::io("copy", from, e))?;
        File::open(&tmp)
            .and_then(|f| f.sync_all())
            .map_err(|e| SpoolError::io("fsync", &tmp, e))?;
        fs::rename(&tmp, dest).map_err(|e| {
            let _ = fs::remove_file(&tmp);
            SpoolError::io("rename", dest, e)
        })
    }
}

/// PATH may name the spool itself or the state_dir above it.
fn spool_root(path: &Path) -> PathBuf {
    let inner = path.join("spool");
    if inner.join("queue").is_dir() || inner.join("dead").is_dir() {
        inner
    } else {
        path.to_path_buf()
    }
}

fn sidecar_id<'a>(name: &'a str, suffixes: &[&str]) -> Option<&'a str> {
    suffixes.iter().find_map(|s| name.strip_suffix(s))
}

fn remove_if_present(path: &Path) -> Result<(), SpoolError> {
    match fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(SpoolError::io("remove", path, e)),
    }
}

#[cfg(test)]
mod tests;
