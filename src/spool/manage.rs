//! What an operator does to spooled messages (`postern spool hold`,
//! `release`, `retry`, `purge`), as file operations.
//!
//! Each change is durable before it is reported: a hold marker, a requeued
//! dead letter or a purge survives a crash right after the command
//! returned. Only the file side lives here; keeping the delivery scheduler
//! consistent with it (a held message is not picked, a requeued one is
//! scheduled) is `deliver`'s job, which calls these.

use std::fs;
use std::io;

use serde::{Deserialize, Serialize};

use super::store::{HOLD_SUFFIX, check_id, sync_dir};
use super::{
    HistoryEntry, RetryState, Spool, SpoolDir, SpoolError, blocking, extend_history, unix_now,
};

/// Contents of `queue/ID.hold`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hold {
    /// Unix seconds when the hold was placed.
    pub since: u64,
}

/// Where a message id is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Place {
    Queue,
    Dead,
}

impl SpoolDir {
    /// Whether `id` is queued, dead, or nowhere.
    pub fn locate(&self, id: &str) -> Result<Place, SpoolError> {
        check_id(id)?;
        if self.queue_path(id).exists() {
            Ok(Place::Queue)
        } else if self.dead_path(id).exists() {
            Ok(Place::Dead)
        } else {
            Err(SpoolError::NotFound(id.to_string()))
        }
    }

    /// Whether an operator holds queued message `id`.
    pub fn is_held(&self, id: &str) -> bool {
        check_id(id).is_ok() && self.hold_path(id).exists()
    }

    pub(super) fn read_hold(&self, id: &str) -> Option<Hold> {
        let bytes = fs::read(self.hold_path(id)).ok()?;
        // A marker that cannot be parsed still holds the message.
        Some(serde_json::from_slice(&bytes).unwrap_or(Hold { since: 0 }))
    }

    /// Places the hold marker beside a queued message (fsync'd with
    /// queue/). Holding a held message keeps the first hold.
    pub fn hold(&self, id: &str) -> Result<Hold, SpoolError> {
        match self.locate(id)? {
            Place::Dead => return Err(SpoolError::IsDead(id.to_string())),
            Place::Queue => {}
        }
        if let Some(h) = self.read_hold(id) {
            return Ok(h);
        }
        let hold = Hold { since: unix_now() };
        let json = serde_json::to_vec(&hold)?;
        self.replace_file(&format!("{id}{HOLD_SUFFIX}"), &self.hold_path(id), &json)?;
        sync_dir(&self.queue_dir())?;
        // The message may have been delivered (and unlinked) meanwhile;
        // then the marker is an orphan, and saying "held" would be a lie.
        if !self.queue_path(id).exists() {
            let _ = fs::remove_file(self.hold_path(id));
            return Err(SpoolError::NotFound(id.to_string()));
        }
        Ok(hold)
    }

    /// Removes the hold marker (fsync'd with queue/).
    pub fn release(&self, id: &str) -> Result<(), SpoolError> {
        if self.locate(id)? == Place::Dead {
            return Err(SpoolError::IsDead(id.to_string()));
        }
        let path = self.hold_path(id);
        match fs::remove_file(&path) {
            Ok(()) => sync_dir(&self.queue_dir()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                Err(SpoolError::NotHeld(id.to_string()))
            }
            Err(e) => Err(SpoolError::io("remove", &path, e)),
        }
    }

    /// Puts a dead letter back in queue/ for a fresh round of attempts:
    /// the retry sidecar (history so far plus a `requeued` entry, no
    /// failed attempts, `requeued_at` now) is written first, then the
    /// message is renamed into queue/ and both directories are synced. A
    /// crash in between leaves a dead letter and an orphan sidecar (removed
    /// at the next start), never a message in both places.
    pub fn requeue_dead(&self, id: &str) -> Result<RetryState, SpoolError> {
        check_id(id)?;
        let src = self.dead_path(id);
        if !src.exists() {
            return Err(if self.queue_path(id).exists() {
                SpoolError::NotDead(id.to_string())
            } else {
                SpoolError::NotFound(id.to_string())
            });
        }
        let now = unix_now();
        let reason = self.read_reason(id).unwrap_or_default();
        let mut history = reason.history;
        extend_history(
            &mut history,
            vec![HistoryEntry {
                time: now,
                upstream: None,
                outcome: "requeued".to_string(),
                detail: format!(
                    "put back from the dead letters by an operator after {} attempt(s): {}",
                    reason.attempts, reason.reason
                ),
            }],
        );
        let state = RetryState {
            attempts: 0,
            next_attempt: now,
            last_error: String::new(),
            last_upstream: None,
            requeued_at: Some(now),
            history,
        };
        let json = serde_json::to_vec(&state)?;
        self.replace_file(&format!("{id}.retry"), &self.retry_path(id), &json)?;
        let dest = self.queue_path(id);
        fs::rename(&src, &dest).map_err(|e| {
            let _ = fs::remove_file(self.retry_path(id));
            SpoolError::io("rename", &dest, e)
        })?;
        sync_dir(&self.queue_dir())?;
        let _ = fs::remove_file(self.reason_path(id));
        sync_dir(&self.dead_dir())?;
        Ok(state)
    }

    /// Deletes a message and its sidecars from queue/ or dead/, synced, so
    /// a crash does not bring it back.
    pub fn purge(&self, id: &str) -> Result<Place, SpoolError> {
        let place = self.locate(id)?;
        let (message, sidecars, dir) = match place {
            Place::Queue => (
                self.queue_path(id),
                vec![self.retry_path(id), self.hold_path(id)],
                self.queue_dir(),
            ),
            Place::Dead => (
                self.dead_path(id),
                vec![self.reason_path(id)],
                self.dead_dir(),
            ),
        };
        match fs::remove_file(&message) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(SpoolError::NotFound(id.to_string()));
            }
            Err(e) => return Err(SpoolError::io("remove", &message, e)),
        }
        for s in sidecars {
            let _ = fs::remove_file(s);
        }
        sync_dir(&dir)?;
        Ok(place)
    }

    /// Ids of every dead letter, oldest first.
    pub fn dead_ids(&self) -> Result<Vec<String>, SpoolError> {
        let mut ids: Vec<String> = self
            .names(&self.dead_dir())?
            .into_iter()
            .filter(|n| !super::store::is_sidecar(n, true) && check_id(n).is_ok())
            .collect();
        ids.sort();
        Ok(ids)
    }
}

impl Spool {
    /// See [`SpoolDir::hold`].
    pub async fn hold(&self, id: &str) -> Result<Hold, SpoolError> {
        self.on_file(id, SpoolDir::hold).await
    }

    /// See [`SpoolDir::release`].
    pub async fn release(&self, id: &str) -> Result<(), SpoolError> {
        self.on_file(id, SpoolDir::release).await
    }

    /// See [`SpoolDir::requeue_dead`].
    pub async fn requeue_dead(&self, id: &str) -> Result<RetryState, SpoolError> {
        self.on_file(id, SpoolDir::requeue_dead).await
    }

    /// See [`SpoolDir::purge`].
    pub async fn purge(&self, id: &str) -> Result<Place, SpoolError> {
        self.on_file(id, SpoolDir::purge).await
    }

    /// See [`SpoolDir::dead_ids`].
    pub async fn dead_ids(&self) -> Result<Vec<String>, SpoolError> {
        let dir = self.dir().clone();
        blocking(move || dir.dead_ids()).await
    }
}

#[cfg(test)]
mod tests;
