//! The audit trail: one event per step of each message.
//!
//! Audit events are ordinary `tracing` events with target [`TARGET`] and an
//! `event` field naming the step; their other fields are the facts
//! (`queue_id`, `session`, `client_ip`, `credential`, `upstream`, `reply`,
//! ...). Under journald every field becomes a journal field with the
//! `POSTERN_` prefix (`POSTERN_QUEUE_ID`, `POSTERN_EVENT`), in JSON each is
//! a key of the line's object, and `[log] audit_file` appends the audit
//! events alone, as JSON lines, to a file. The event names and fields are
//! an interface, listed in docs/operations.md.
//!
//! The audit file is reopened on SIGHUP (for logrotate) and synced to disk
//! at most once a second by a background thread, so a burst of mail costs
//! one fsync a second, not one per event.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The `tracing` target of every audit event.
pub const TARGET: &str = "audit";

/// How often written audit lines are synced to disk.
const SYNC_INTERVAL: Duration = Duration::from_secs(1);

/// A new session id: the same monotonic form as queue ids, with an `S`
/// in front so the two cannot be mistaken for each other.
pub fn new_session_id() -> String {
    format!("S{}", crate::spool::new_id())
}

/// The `[log] audit_file`, shared by the log layer and the SIGHUP handler.
pub struct AuditFile {
    path: PathBuf,
    file: Mutex<File>,
    dirty: AtomicBool,
}

impl AuditFile {
    /// Opens (creating, mode 0600) `path` for appending and starts the
    /// thread that syncs it.
    pub fn open(path: &Path) -> io::Result<Arc<AuditFile>> {
        let audit = Arc::new(AuditFile {
            path: path.to_path_buf(),
            file: Mutex::new(open_append(path)?),
            dirty: AtomicBool::new(false),
        });
        let weak = Arc::downgrade(&audit);
        std::thread::Builder::new()
            .name("audit-sync".into())
            .spawn(move || {
                while let Some(audit) = weak.upgrade() {
                    audit.sync();
                    drop(audit);
                    std::thread::sleep(SYNC_INTERVAL);
                }
            })?;
        Ok(audit)
    }

    /// Closes and reopens the file by name: after logrotate moved it away,
    /// new lines go to a new file. The old handle is synced first.
    pub fn reopen(&self) -> io::Result<()> {
        let new = open_append(&self.path)?;
        let mut file = self.lock();
        let _ = file.sync_data();
        *file = new;
        Ok(())
    }

    fn sync(&self) {
        if self.dirty.swap(false, Ordering::AcqRel) {
            let file = self.lock();
            if let Err(e) = file.sync_data() {
                eprintln!(
                    "postern: cannot sync audit file {}: {e}",
                    self.path.display()
                );
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, File> {
        self.file.lock().unwrap_or_else(|p| p.into_inner())
    }
}

fn open_append(path: &Path) -> io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(path)
}

/// One formatted event; written to the file in one `write` when dropped,
/// so concurrent events never interleave within a line.
pub struct Line<'a> {
    audit: &'a AuditFile,
    buf: Vec<u8>,
}

impl Write for Line<'_> {
    fn write(&mut self, b: &[u8]) -> io::Result<usize> {
        self.buf.extend_from_slice(b);
        Ok(b.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Drop for Line<'_> {
    fn drop(&mut self) {
        if self.buf.is_empty() {
            return;
        }
        let mut file = self.audit.lock();
        if let Err(e) = file.write_all(&self.buf) {
            eprintln!(
                "postern: cannot write audit file {}: {e}",
                self.audit.path.display()
            );
        }
        self.audit.dirty.store(true, Ordering::Release);
    }
}

/// The writer the JSON layer formats audit events into.
#[derive(Clone)]
pub struct Writer(pub Arc<AuditFile>);

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Writer {
    type Writer = Line<'a>;

    fn make_writer(&'a self) -> Line<'a> {
        Line {
            audit: &self.0,
            buf: Vec::with_capacity(512),
        }
    }
}
