//! Durable on-disk queue: the point where a message stops being the client's
//! problem and becomes ours.
//!
//! Layout under the spool directory (all 0700, files 0600):
//!
//! ```text
//! lock            flock'd by the running daemon so two daemons never share a spool
//! tmp/            half-written files; emptied on open
//! seg/N.log       the segment log: accepted messages not yet attempted (see `segment`)
//! seg/N.done      ids that left segment N
//! seg/N.spare     a preallocated segment not yet in use (see `spare`)
//! queue/ID        one JSON envelope line, then the raw message bytes
//! queue/ID.retry  retry sidecar (attempts, next attempt, last error, history)
//! queue/ID.hold   present while an operator holds the message (JSON: since)
//! dead/ID         dead letters, same format as queue/ID
//! dead/ID.reason  why it died, with the delivery history (JSON)
//! ```
//!
//! The retry sidecar and the dead reason carry the message's delivery
//! history (each failed attempt: time, upstream, outcome, reason; and an
//! operator's requeue of a dead letter), so `postern spool show` can tell
//! what happened. Each is written whole (tmp/ + rename) and fsync'd with
//! the directory it lands in, so the history is as durable as the state it
//! describes. A delivered message leaves nothing behind; the fast path (put,
//! deliver, a done line) creates no file at all.
//!
//! `put` only returns Ok once the message's record is fdatasync'd in the
//! segment log, because that Ok is what lets SMTP answer 250. Puts are
//! group-committed on a dedicated writer thread (see `writer`), so many
//! concurrent sessions share one sync and the tokio runtime never blocks
//! on disk. A message delivered at its first attempt never gets a file;
//! everything else about a message works on its queue/ file, which it gets
//! first (see `live`), and opening the spool gives every record still live
//! its file.

mod adopt;
mod free;
mod index;
mod live;
mod manage;
mod segment;
mod show;
mod spare;
mod store;
#[cfg(test)]
mod tests;
mod writer;

use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{SystemTime, UNIX_EPOCH};

use ring::rand::{SecureRandom, SystemRandom};
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, oneshot};

pub use adopt::Adopted;
pub use manage::{Hold, Place};
pub use show::MessageDetail;
pub use store::{SpoolDir, Usage};

/// Most recipients one message may have: `[server] max_recipients` may not
/// be larger, and the envelope line the spool reads back is sized for it.
pub const MAX_RECIPIENTS: usize = 10_000;

/// The SMTP envelope plus what postern decided about the message at
/// acceptance time. Stored as the first line of every spool file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Envelope {
    pub id: String,
    /// Unix seconds when the message was accepted; drives `max_age`.
    pub received_at: u64,
    /// Name of the credential (config key) the client authenticated as.
    pub credential: String,
    /// Reverse path without angle brackets; empty for the null sender.
    pub mail_from: String,
    pub rcpt_to: Vec<String>,
    pub route: String,
    /// Length of the message bytes that follow the envelope line. `put`
    /// overwrites it with the real length so truncation is detectable.
    pub size: u64,
}

/// Delivery bookkeeping kept beside a queued message: back-off state and
/// the history of what happened to it so far.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RetryState {
    /// Failed attempts since the message was queued (or requeued).
    pub attempts: u32,
    /// Unix seconds of the next delivery attempt.
    pub next_attempt: u64,
    pub last_error: String,
    pub last_upstream: Option<String>,
    /// Unix seconds when an operator put the message back from the dead
    /// letters: `max_age` counts from then rather than from acceptance.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requeued_at: Option<u64>,
    /// Oldest first, at most [`MAX_HISTORY`] entries (the newest kept).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub history: Vec<HistoryEntry>,
}

/// Contents of `dead/ID.reason`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeadReason {
    pub reason: String,
    pub attempts: u32,
    /// Unix seconds when the message was dead-lettered.
    pub time: u64,
    pub last_upstream: Option<String>,
    /// What happened before it died, oldest first (see [`RetryState`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub history: Vec<HistoryEntry>,
}

/// Most history entries kept per message; older ones are dropped (the
/// attempt count still says how many there were).
pub const MAX_HISTORY: usize = 50;

/// One thing that happened to a message after it was queued.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HistoryEntry {
    /// Unix seconds.
    pub time: u64,
    /// The upstream of a delivery attempt.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upstream: Option<String>,
    /// An attempt's result (`transient`, `permanent`, `ambiguous`,
    /// `not_attempted`), or `requeued` (an operator's `spool retry` of a
    /// dead letter).
    pub outcome: String,
    /// The upstream's reason, or what the operator did.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub detail: String,
}

/// Appends `new` to `history`, keeping the newest [`MAX_HISTORY`].
pub(crate) fn extend_history(history: &mut Vec<HistoryEntry>, new: Vec<HistoryEntry>) {
    history.extend(new);
    if history.len() > MAX_HISTORY {
        history.drain(..history.len() - MAX_HISTORY);
    }
}

/// A message read back from the spool.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredMessage {
    pub envelope: Envelope,
    pub data: Vec<u8>,
}

/// What `Spool::writer_progress` reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WriterProgress {
    /// Grows after every commit and every idle tick of any writer thread.
    pub beats: u64,
    /// How long the oldest commit still running has taken so far; zero when
    /// no thread is inside a commit. A commit stuck in `fsync` grows this
    /// while the other threads' idle ticks keep `beats` moving.
    pub longest_commit: std::time::Duration,
}

/// A queued message found by `recover`, with its back-off state if any.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recovered {
    pub envelope: Envelope,
    pub retry: Option<RetryState>,
    /// An operator holds it (`queue/ID.hold`): not to be delivered.
    pub held: bool,
}

/// One line of `list`: unreadable files are still listed (with `error`) so an
/// operator sees them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpoolEntry {
    pub id: String,
    pub envelope: Option<Envelope>,
    pub error: Option<String>,
    pub retry: Option<RetryState>,
    pub dead_reason: Option<DeadReason>,
    /// Held by an operator (queued messages only).
    pub held: Option<Hold>,
}

#[derive(Debug, thiserror::Error)]
pub enum SpoolError {
    /// Disk full, permission denied, read-only file system, ... The io error's
    /// own text ("No space left on device") is kept because it is the most
    /// useful thing to show an operator.
    #[error("spool: cannot {op} {}: {source}", path.display())]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("spool {} is locked by another postern process", .0.display())]
    Locked(PathBuf),
    #[error("spool adopt: {0}")]
    Adopt(String),
    #[error("spool: invalid message id {0:?}")]
    InvalidId(String),
    #[error("spool: no message {0}")]
    NotFound(String),
    #[error("spool: message {0} is a dead letter (`postern spool retry {0}` queues it again)")]
    IsDead(String),
    #[error("spool: message {0} is not held")]
    NotHeld(String),
    #[error("spool: message {0} is queued, not a dead letter")]
    NotDead(String),
    #[error("spool: corrupt message file {id}: {reason}")]
    Corrupt { id: String, reason: String },
    #[error("spool: cannot encode envelope: {0}")]
    Encode(#[from] serde_json::Error),
    #[error("spool: writer threads have stopped")]
    WriterGone,
    #[error("spool: envelope of {0} bytes is larger than the spool reads back")]
    EnvelopeTooLarge(usize),
}

impl SpoolError {
    pub(crate) fn io(op: &'static str, path: &Path, source: io::Error) -> Self {
        SpoolError::Io {
            op,
            path: path.to_path_buf(),
            source,
        }
    }
}

/// Number of group-commit writer threads, each appending to its own
/// segment. One suffices: while it syncs a batch the next one gathers.
const WRITER_THREADS: usize = 1;

/// State shared by every clone of `Spool` and by the writer threads.
struct Shared {
    dir: SpoolDir,
    /// Where freshly queued ids go; set by the delivery side via `subscribe`.
    notify: Mutex<Option<mpsc::UnboundedSender<String>>>,
    heartbeat: writer::Heartbeat,
    /// The live messages of the segment log.
    index: Mutex<index::Index>,
    /// Held while a message moves from the segment log to a queue/ file,
    /// and while a delivered one leaves the log, so the two never race.
    moves: Mutex<()>,
    /// Number of the next segment a writer creates.
    next_seg: AtomicU64,
    free: free::FreeSpace,
}

/// A poisoned lock still guards consistent data here (every critical
/// section is a few map operations), so it is used anyway.
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    match m.lock() {
        Ok(g) => g,
        Err(poisoned) => poisoned.into_inner(),
    }
}

impl Shared {
    fn queued(&self, id: &str) {
        if let Some(tx) = lock(&self.notify).as_ref() {
            // A closed receiver means delivery has shut down; the file stays
            // in queue/ and is recovered on the next start.
            let _ = tx.send(id.to_string());
        }
    }
}

/// Handle to the durable queue; cheap to clone, one per daemon.
#[derive(Clone)]
pub struct Spool {
    shared: Arc<Shared>,
    writer: std::sync::mpsc::Sender<writer::WriteJob>,
    /// The flock lives on this descriptor. Not in `Shared`, because writer
    /// threads outlive the last `Spool` by a moment and must not keep a
    /// closed spool locked.
    _lock: Arc<File>,
}

impl std::fmt::Debug for Spool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Spool")
            .field("path", &self.shared.dir.root())
            .finish_non_exhaustive()
    }
}

impl Spool {
    /// Opens (creating if needed) the spool at `dir`, takes its lock, clears
    /// tmp/, gives what the segment log still holds queue/ files and starts
    /// the writer threads. Blocking; call at startup.
    pub fn open(dir: PathBuf) -> Result<Spool, SpoolError> {
        let dir = SpoolDir::new(dir);
        let lock = dir.create_and_lock()?;
        dir.clean_tmp()?;
        dir.materialize_segments()?;
        let shared = Arc::new(Shared {
            index: Mutex::new(index::Index::new(dir.seg_dir())),
            dir,
            notify: Mutex::new(None),
            heartbeat: writer::Heartbeat::new(WRITER_THREADS),
            moves: Mutex::new(()),
            free: free::FreeSpace::default(),
            // Numbers from the clock so this run's never meet those of
            // a writer thread of an earlier `Spool` in the same process
            // that is still sealing (and maybe removing) its last one.
            next_seg: AtomicU64::new(now_micros().max(1)),
        });
        let writer = writer::start(shared.clone(), WRITER_THREADS)?;
        Ok(Spool {
            shared,
            writer,
            _lock: Arc::new(lock),
        })
    }

    pub fn path(&self) -> &Path {
        self.shared.dir.root()
    }

    /// Signs of life of the writer threads (for the systemd watchdog).
    pub fn writer_progress(&self) -> WriterProgress {
        let (beats, longest_commit) = self.shared.heartbeat.progress();
        WriterProgress {
            beats,
            longest_commit,
        }
    }

    /// How often an idle writer thread bumps its heartbeat (default 1 s);
    /// the watchdog asks for a tick well inside its own interval.
    pub fn set_writer_tick(&self, tick: std::time::Duration) {
        self.shared.heartbeat.set_tick(tick);
    }

    /// Synchronous, read-only view (for the CLI and for tests).
    pub fn dir(&self) -> &SpoolDir {
        &self.shared.dir
    }

    /// Returns a receiver that gets the id of every message queued from now
    /// on. Only the latest subscriber receives ids. Subscribe *before*
    /// calling `recover` so no message falls between the two (duplicates
    /// between them are possible and must be tolerated).
    pub fn subscribe(&self) -> mpsc::UnboundedReceiver<String> {
        let (tx, rx) = mpsc::unbounded_channel();
        *lock(&self.shared.notify) = Some(tx);
        rx
    }

    /// Stores a message durably. Ok means the message and its envelope are
    /// fsync'd in the segment log and the delivery side has been told about
    /// it. `envelope.size` is set to `data`'s length. On error nothing of
    /// it is left to deliver.
    pub async fn put(
        &self,
        mut envelope: Envelope,
        data: impl AsRef<[u8]> + Send + Sync + 'static,
    ) -> Result<(), SpoolError> {
        store::check_id(&envelope.id)?;
        envelope.size = data.as_ref().len() as u64;
        let mut header = serde_json::to_vec(&envelope)?;
        header.push(b'\n');
        // Never store what `open_message` would call corrupt.
        if header.len() as u64 > store::MAX_HEADER {
            return Err(SpoolError::EnvelopeTooLarge(header.len()));
        }
        let (reply, done) = oneshot::channel();
        let job = writer::WriteJob {
            id: envelope.id,
            received_at: envelope.received_at,
            header,
            data: Box::new(data),
            reply,
        };
        self.writer.send(job).map_err(|_| SpoolError::WriterGone)?;
        done.await.map_err(|_| SpoolError::WriterGone)?
    }
}

async fn blocking<T, F>(f: F) -> Result<T, SpoolError>
where
    F: FnOnce() -> Result<T, SpoolError> + Send + 'static,
    T: Send + 'static,
{
    match tokio::task::spawn_blocking(f).await {
        Ok(result) => result,
        Err(join) => Err(SpoolError::Io {
            op: "run blocking task for",
            path: PathBuf::new(),
            source: io::Error::other(join.to_string()),
        }),
    }
}

/// Highest microsecond timestamp handed out, so ids from this process are
/// strictly increasing even when the clock stalls or steps back.
static LAST_MICROS: AtomicU64 = AtomicU64::new(0);

/// A new message id: 14 hex digits of microseconds since the epoch, then 6
/// random hex digits. Sorts by time, is safe as a file name and as SMTP
/// reply text, and is unique within a process by construction.
pub fn new_id() -> String {
    let now = now_micros();
    let prev = match LAST_MICROS.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |last| {
        Some(now.max(last.saturating_add(1)))
    }) {
        Ok(p) | Err(p) => p,
    };
    let micros = now.max(prev.saturating_add(1));
    format!("{micros:014X}{:06X}", process_salt())
}

/// Six random hex digits drawn once per process. The counter already
/// makes ids unique in-process; the salt only keeps two processes that
/// share a spool (or a node and the one adopting its spool) apart, so one
/// draw is enough and saves a getrandom per id. A failed draw is not
/// fatal: 0 is still unique within this process.
fn process_salt() -> u32 {
    static SALT: OnceLock<u32> = OnceLock::new();
    *SALT.get_or_init(|| {
        let mut rnd = [0u8; 3];
        let _ = SystemRandom::new().fill(&mut rnd);
        u32::from_be_bytes([0, rnd[0], rnd[1], rnd[2]])
    })
}

fn now_micros() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// Current wall-clock time in unix seconds.
pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}
