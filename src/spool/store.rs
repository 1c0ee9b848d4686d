//! Blocking file operations on the spool directory: the file format, the
//! crash-safe moves between tmp/, queue/ and dead/, and read-only listing.
//!
//! Kept separate from `Spool` so the CLI can inspect a spool the daemon
//! holds locked without opening (and cleaning) it.

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufRead, BufReader, Read, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use super::{
    DeadReason, Envelope, Recovered, RetryState, SpoolEntry, SpoolError, StoredMessage,
    extend_history, unix_now,
};

/// Longest envelope line accepted when reading; a bigger one means the file
/// is not ours. Sized so that `MAX_RECIPIENTS` recipients plus the sender,
/// each the longest path RFC 5321 allows with every byte JSON-escaped (two
/// bytes each, plus quotes and a comma), and the other fields fit.
pub(super) const MAX_HEADER: u64 = 64 * 1024
    + (super::MAX_RECIPIENTS as u64 + 1) * (2 * crate::validate::address::MAX_PATH as u64 + 3);

pub(super) const RETRY_SUFFIX: &str = ".retry";
pub(super) const HOLD_SUFFIX: &str = ".hold";
pub(super) const REASON_SUFFIX: &str = ".reason";

/// Sidecars that live beside a queued message in queue/.
const QUEUE_SIDECARS: [&str; 2] = [RETRY_SUFFIX, HOLD_SUFFIX];

/// The message id a sidecar file belongs to, if `name` is one.
fn sidecar_of<'a>(name: &'a str, suffixes: &[&str]) -> Option<&'a str> {
    suffixes.iter().find_map(|s| name.strip_suffix(s))
}

/// Ids become file names (and appear in SMTP replies and CLI arguments), so
/// only a conservative alphabet is allowed; no dots keeps the sidecar
/// suffixes unambiguous.
pub(super) fn check_id(id: &str) -> Result<(), SpoolError> {
    let ok = !id.is_empty()
        && id.len() <= 64
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(SpoolError::InvalidId(id.chars().take(80).collect()))
    }
}

/// What one spool state directory holds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    pub messages: u64,
    pub bytes: u64,
    /// Arrival time of the oldest message.
    pub oldest: Option<std::time::SystemTime>,
}

/// Paths of one spool directory and the blocking operations on them.
#[derive(Debug, Clone)]
pub struct SpoolDir {
    root: PathBuf,
    tmp: PathBuf,
    queue: PathBuf,
    dead: PathBuf,
}

impl SpoolDir {
    /// Names a spool directory without touching the disk.
    pub fn new(root: PathBuf) -> SpoolDir {
        SpoolDir {
            tmp: root.join("tmp"),
            queue: root.join("queue"),
            dead: root.join("dead"),
            root,
        }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn queue_dir(&self) -> PathBuf {
        self.queue.clone()
    }

    pub fn dead_dir(&self) -> PathBuf {
        self.dead.clone()
    }

    pub(super) fn tmp_path(&self, id: &str) -> PathBuf {
        self.tmp.join(id)
    }

    pub(super) fn queue_path(&self, id: &str) -> PathBuf {
        self.queue.join(id)
    }

    pub(super) fn dead_path(&self, id: &str) -> PathBuf {
        self.dead.join(id)
    }

    pub(super) fn retry_path(&self, id: &str) -> PathBuf {
        self.queue.join(format!("{id}{RETRY_SUFFIX}"))
    }

    pub(super) fn hold_path(&self, id: &str) -> PathBuf {
        self.queue.join(format!("{id}{HOLD_SUFFIX}"))
    }

    pub(super) fn reason_path(&self, name: &str) -> PathBuf {
        self.dead.join(format!("{name}{REASON_SUFFIX}"))
    }

    pub(super) fn create_and_lock(&self) -> Result<File, SpoolError> {
        for dir in [
            &self.root,
            &self.tmp,
            &self.queue,
            &self.dead,
            &self.root.join(super::segment::SEG_DIR),
        ] {
            fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)
                .map_err(|e| SpoolError::io("create directory", dir, e))?;
        }
        let path = self.root.join("lock");
        let file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(&path)
            .map_err(|e| SpoolError::io("open", &path, e))?;
        match file.try_lock() {
            Ok(()) => Ok(file),
            Err(std::fs::TryLockError::WouldBlock) => Err(SpoolError::Locked(self.root.clone())),
            Err(std::fs::TryLockError::Error(e)) => Err(SpoolError::io("lock", &path, e)),
        }
    }

    /// Removes what a crash left half-written; those puts were never
    /// answered 250.
    pub(super) fn clean_tmp(&self) -> Result<(), SpoolError> {
        let entries = fs::read_dir(&self.tmp).map_err(|e| SpoolError::io("read", &self.tmp, e))?;
        for entry in entries {
            let entry = entry.map_err(|e| SpoolError::io("read", &self.tmp, e))?;
            let path = entry.path();
            let result = if entry.file_type().is_ok_and(|t| t.is_dir()) {
                fs::remove_dir_all(&path)
            } else {
                fs::remove_file(&path)
            };
            result.map_err(|e| SpoolError::io("remove", &path, e))?;
        }
        Ok(())
    }

    /// Reads a message from queue/ (or dead/ when `dead`).
    pub fn read(&self, id: &str, dead: bool) -> Result<StoredMessage, SpoolError> {
        check_id(id)?;
        let path = if dead {
            self.dead.join(id)
        } else {
            self.queue_path(id)
        };
        let (envelope, mut reader) = open_message(&path, id)?;
        let mut data =
            Vec::with_capacity(usize::try_from(envelope.size).unwrap_or(0).min(64 << 20));
        reader
            .read_to_end(&mut data)
            .map_err(|e| SpoolError::io("read", &path, e))?;
        if data.len() as u64 != envelope.size {
            return Err(SpoolError::Corrupt {
                id: id.to_string(),
                reason: format!(
                    "expected {} message bytes, found {}",
                    envelope.size,
                    data.len()
                ),
            });
        }
        Ok(StoredMessage { envelope, data })
    }

    /// Every queued message, oldest first. Corrupt files go to dead/ (never
    /// deleted); sidecars whose message is gone are removed.
    pub fn recover(&self) -> Result<Vec<Recovered>, SpoolError> {
        let mut found = Vec::new();
        for name in self.names(&self.queue)? {
            if let Some(id) = sidecar_of(&name, &QUEUE_SIDECARS) {
                if !self.queue_path(id).exists() {
                    let _ = fs::remove_file(self.queue.join(&name));
                }
                continue;
            }
            let problem = match check_id(&name) {
                Err(_) => Err("unexpected file name".to_string()),
                Ok(()) => self.check_message(&self.queue_path(&name), &name),
            };
            match problem {
                Ok(envelope) => {
                    let retry = self.read_retry(&name);
                    let held = self.hold_path(&name).exists();
                    found.push(Recovered {
                        envelope,
                        retry,
                        held,
                    });
                }
                Err(reason) => {
                    tracing::error!(file = %name, %reason, "corrupt spool file moved to dead letters");
                    let reason = DeadReason {
                        reason: format!("corrupt spool file: {reason}"),
                        time: unix_now(),
                        ..DeadReason::default()
                    };
                    self.move_to_dead(&name, &reason)?;
                }
            }
        }
        found.sort_by(|a, b| a.envelope.id.cmp(&b.envelope.id));
        Ok(found)
    }

    /// Validates a message file without reading its body into memory.
    pub(super) fn check_message(&self, path: &Path, id: &str) -> Result<Envelope, String> {
        let meta = fs::symlink_metadata(path).map_err(|e| e.to_string())?;
        if !meta.is_file() {
            return Err("not a regular file".to_string());
        }
        let (envelope, reader) = open_message(path, id).map_err(|e| match e {
            SpoolError::Corrupt { reason, .. } => reason,
            other => other.to_string(),
        })?;
        let body = meta.len().saturating_sub(reader.header);
        if body != envelope.size {
            return Err(format!(
                "expected {} message bytes, found {body}",
                envelope.size
            ));
        }
        Ok(envelope)
    }

    pub(super) fn read_retry(&self, id: &str) -> Option<RetryState> {
        let bytes = fs::read(self.retry_path(id)).ok()?;
        serde_json::from_slice(&bytes).ok()
    }

    pub(super) fn read_reason(&self, id: &str) -> Option<DeadReason> {
        let bytes = fs::read(self.reason_path(id)).ok()?;
        serde_json::from_slice(&bytes).ok()
    }

    /// Written via tmp/ + rename so a crash leaves the old state or the new
    /// one, never half, and fsync'd with queue/ because it carries the
    /// message's history (only failed attempts write it, never the
    /// delivery fast path).
    pub fn write_retry(&self, id: &str, state: &RetryState) -> Result<(), SpoolError> {
        check_id(id)?;
        let json = serde_json::to_vec(state)?;
        self.replace_file(&format!("{id}{RETRY_SUFFIX}"), &self.retry_path(id), &json)?;
        sync_dir(&self.queue)
    }

    /// `write_retry` after appending `state.history` to what is recorded,
    /// keeping a recorded `requeued_at` unless `state` has one.
    pub fn record_attempt(&self, id: &str, mut state: RetryState) -> Result<(), SpoolError> {
        check_id(id)?;
        if let Some(old) = self.read_retry(id) {
            let mut history = old.history;
            extend_history(&mut history, std::mem::take(&mut state.history));
            state.history = history;
            state.requeued_at = state.requeued_at.or(old.requeued_at);
        }
        self.write_retry(id, &state)
    }

    /// Writes `bytes` to tmp/`tmp_name` (synced) and renames it to `dest`;
    /// the caller syncs `dest`'s directory.
    pub(super) fn replace_file(
        &self,
        tmp_name: &str,
        dest: &Path,
        bytes: &[u8],
    ) -> Result<(), SpoolError> {
        let tmp = self.tmp.join(tmp_name);
        write_file(&tmp, bytes, true).map_err(|e| SpoolError::io("write", &tmp, e))?;
        fs::rename(&tmp, dest).map_err(|e| {
            let _ = fs::remove_file(&tmp);
            SpoolError::io("rename", dest, e)
        })
    }

    pub fn complete(&self, id: &str) -> Result<(), SpoolError> {
        check_id(id)?;
        let path = self.queue_path(id);
        match fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(SpoolError::io("remove", &path, e)),
        }
        let _ = fs::remove_file(self.retry_path(id));
        let _ = fs::remove_file(self.hold_path(id));
        // No directory fsync here: it would force a journal commit per
        // delivered message. If a crash loses the unlink, the message is
        // delivered once more after restart, the same at-least-once window
        // that exists between the upstream's 2xx and this unlink anyway.
        Ok(())
    }

    /// Moves a queued message to dead/; the history recorded beside it
    /// goes first in the reason's.
    pub fn dead_letter(&self, id: &str, reason: &DeadReason) -> Result<(), SpoolError> {
        check_id(id)?;
        if !self.queue_path(id).exists() {
            return Err(SpoolError::NotFound(id.to_string()));
        }
        let mut reason = reason.clone();
        if let Some(old) = self.read_retry(id) {
            let mut history = old.history;
            extend_history(&mut history, std::mem::take(&mut reason.history));
            reason.history = history;
        }
        self.move_to_dead(id, &reason)
    }

    /// The reason is made durable before the move, so a dead letter never
    /// exists without its reason; a crash in between at worst leaves a stale
    /// reason beside a message that is still queued.
    fn move_to_dead(&self, name: &str, reason: &DeadReason) -> Result<(), SpoolError> {
        let mut json = serde_json::to_vec_pretty(reason)?;
        json.push(b'\n');
        let tmp = self.tmp.join(format!("{name}{REASON_SUFFIX}"));
        write_file(&tmp, &json, true).map_err(|e| SpoolError::io("write", &tmp, e))?;
        let reason_path = self.reason_path(name);
        fs::rename(&tmp, &reason_path).map_err(|e| {
            let _ = fs::remove_file(&tmp);
            SpoolError::io("rename", &reason_path, e)
        })?;
        let dest = self.dead.join(name);
        let src = self.queue.join(name);
        fs::rename(&src, &dest).map_err(|e| SpoolError::io("rename", &dest, e))?;
        let _ = fs::remove_file(self.retry_path(name));
        let _ = fs::remove_file(self.hold_path(name));
        sync_dir(&self.dead)?;
        sync_dir(&self.queue)
    }

    /// Lists the queue (queue/ and the segment log's live records) or
    /// dead/, oldest first, with envelopes, retry state and dead reasons.
    /// Does not modify anything.
    pub fn list(&self, dead: bool) -> Result<Vec<SpoolEntry>, SpoolError> {
        let live = if dead {
            Vec::new()
        } else {
            self.live_records()?
                .into_iter()
                .map(|l| l.envelope)
                .collect()
        };
        self.list_with(dead, live)
    }

    /// `list` with the live records' envelopes given.
    pub(super) fn list_with(
        &self,
        dead: bool,
        live: Vec<Envelope>,
    ) -> Result<Vec<SpoolEntry>, SpoolError> {
        let dir = if dead { &self.dead } else { &self.queue };
        let mut entries: Vec<SpoolEntry> = live
            .into_iter()
            .map(|envelope| SpoolEntry {
                id: envelope.id.clone(),
                envelope: Some(envelope),
                error: None,
                retry: None,
                dead_reason: None,
                held: None,
            })
            .collect();
        for name in self.names(dir)? {
            if is_sidecar(&name, dead) {
                continue;
            }
            let (envelope, error) = match self.check_message(&dir.join(&name), &name) {
                Ok(env) => (Some(env), None),
                Err(reason) => (None, Some(reason)),
            };
            let (retry, dead_reason, held) = if dead {
                (None, self.read_reason(&name), None)
            } else {
                (self.read_retry(&name), None, self.read_hold(&name))
            };
            entries.push(SpoolEntry {
                id: name,
                envelope,
                error,
                retry,
                dead_reason,
                held,
            });
        }
        entries.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(entries)
    }

    /// How many message files queue/ (or dead/) holds, their bytes and the
    /// oldest one's arrival time, from file metadata alone (cheap enough
    /// for every metrics scrape). The segment log's live records are not
    /// counted here (`Spool::usage` adds them).
    pub fn usage(&self, dead: bool) -> Result<Usage, SpoolError> {
        let dir = if dead { &self.dead } else { &self.queue };
        let mut usage = Usage::default();
        for name in self.names(dir)? {
            if is_sidecar(&name, dead) {
                continue;
            }
            // A file delivered (removed) since the listing is not counted.
            let Ok(meta) = fs::metadata(dir.join(&name)) else {
                continue;
            };
            usage.messages += 1;
            usage.bytes += meta.len();
            if let Ok(t) = meta.modified() {
                usage.oldest = Some(usage.oldest.map_or(t, |o: std::time::SystemTime| o.min(t)));
            }
        }
        Ok(usage)
    }

    /// Creates, syncs and removes a file in tmp/: whether the spool can
    /// take a message now (disk full or read-only shows here).
    pub fn probe_writable(&self) -> Result<(), SpoolError> {
        let path = self.tmp.join(format!(".probe-{}", std::process::id()));
        let result = (|| {
            let mut f = File::create(&path)?;
            std::io::Write::write_all(&mut f, b"probe")?;
            f.sync_all()
        })();
        let _ = fs::remove_file(&path);
        result.map_err(|e| SpoolError::io("write", &path, e))
    }

    /// File names in a directory; names that are not UTF-8 are shown lossily
    /// (they cannot be ours anyway).
    pub(super) fn names(&self, dir: &Path) -> Result<Vec<String>, SpoolError> {
        let entries = fs::read_dir(dir).map_err(|e| SpoolError::io("read", dir, e))?;
        let mut names = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|e| SpoolError::io("read", dir, e))?;
            names.push(entry.file_name().to_string_lossy().into_owned());
        }
        Ok(names)
    }
}

/// Whether `name` in queue/ (or dead/ when `dead`) is a sidecar rather
/// than a message.
pub(super) fn is_sidecar(name: &str, dead: bool) -> bool {
    if dead {
        name.ends_with(REASON_SUFFIX)
    } else {
        sidecar_of(name, &QUEUE_SIDECARS).is_some()
    }
}

/// Opens a message file and parses its envelope line, leaving the reader at
/// the first message byte.
pub(super) fn open_message(path: &Path, id: &str) -> Result<(Envelope, Counted), SpoolError> {
    let file = File::open(path).map_err(|e| {
        if e.kind() == io::ErrorKind::NotFound {
            SpoolError::NotFound(id.to_string())
        } else {
            SpoolError::io("open", path, e)
        }
    })?;
    let corrupt = |reason: String| SpoolError::Corrupt {
        id: id.to_string(),
        reason,
    };
    let mut reader = BufReader::new(file);
    let mut line = Vec::new();
    (&mut reader)
        .take(MAX_HEADER)
        .read_until(b'\n', &mut line)
        .map_err(|e| SpoolError::io("read", path, e))?;
    if line.last() != Some(&b'\n') {
        return Err(corrupt("no envelope line".to_string()));
    }
    let envelope: Envelope =
        serde_json::from_slice(&line).map_err(|e| corrupt(format!("bad envelope: {e}")))?;
    if envelope.id != id {
        return Err(corrupt(format!(
            "envelope id {:?} does not match file name",
            envelope.id.chars().take(80).collect::<String>()
        )));
    }
    Ok((
        envelope,
        Counted {
            inner: reader,
            header: line.len() as u64,
        },
    ))
}

/// Reader positioned after the envelope line, remembering its length.
pub(super) struct Counted {
    inner: BufReader<File>,
    pub(super) header: u64,
}

impl Read for Counted {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.inner.read(buf)
    }
}

/// Creates (or truncates) `path` with mode 0600.
fn create_private(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
}

pub(super) fn write_file(path: &Path, bytes: &[u8], sync: bool) -> io::Result<()> {
    let mut file = create_private(path)?;
    file.write_all(bytes)?;
    if sync {
        file.sync_data()?;
    }
    Ok(())
}

/// Creates `path` (0600) holding `header` then `data`, synced.
pub(super) fn write_synced(path: &Path, header: &[u8], data: &[u8]) -> io::Result<()> {
    let mut file = create_private(path)?;
    file.write_all(header)?;
    file.write_all(data)?;
    file.sync_data()
}

pub(super) fn sync_dir(dir: &Path) -> Result<(), SpoolError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| SpoolError::io("fsync", dir, e))
}
