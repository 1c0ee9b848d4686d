//! Group commit for `Spool::put`.
//!
//! fsync is the expensive part of accepting mail. A few dedicated threads
//! each take every put that is waiting, write and fsync each file, rename
//! them all into queue/, fsync queue/ once for the whole batch and only then
//! answer every waiter. Under load one directory fsync covers many messages;
//! with no load a batch is a single message and latency is one write+fsync.
//!
//! The threads also keep a heartbeat for the systemd watchdog: an idle
//! thread wakes every tick to bump it, and a thread inside a commit notes
//! when that commit began, so a writer stuck in `fsync` (a hung disk) is
//! visible from outside even while its siblings idle along.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender, TryRecvError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::oneshot;

use super::{Shared, SpoolError};

/// Upper bound on one batch so a flood cannot delay the first waiter forever.
const MAX_BATCH: usize = 256;

/// One pending `put`.
pub(super) struct WriteJob {
    pub id: String,
    /// Envelope JSON plus the terminating newline.
    pub header: Vec<u8>,
    pub data: Box<dyn AsRef<[u8]> + Send + Sync>,
    pub reply: oneshot::Sender<Result<(), SpoolError>>,
}

/// How long an idle writer waits for work before it bumps the heartbeat
/// anyway, unless the daemon asks for a shorter tick (`set_tick`).
const DEFAULT_TICK: Duration = Duration::from_secs(1);

/// Signs of life of the writer threads, read by the watchdog.
pub(super) struct Heartbeat {
    /// Bumped after every commit and every idle tick.
    beats: AtomicU64,
    tick_ms: AtomicU64,
    /// Per thread: when its current commit began, as milliseconds since
    /// `base` plus one; 0 while the thread is not committing.
    busy_since: Vec<AtomicU64>,
    base: Instant,
}

impl Heartbeat {
    pub(super) fn new(threads: usize) -> Heartbeat {
        Heartbeat {
            beats: AtomicU64::new(0),
            tick_ms: AtomicU64::new(millis(DEFAULT_TICK)),
            busy_since: (0..threads.max(1)).map(|_| AtomicU64::new(0)).collect(),
            base: Instant::now(),
        }
    }

    pub(super) fn set_tick(&self, tick: Duration) {
        self.tick_ms.store(millis(tick).max(1), Ordering::Relaxed);
    }

    fn tick(&self) -> Duration {
        Duration::from_millis(self.tick_ms.load(Ordering::Relaxed))
    }

    fn beat(&self) {
        self.beats.fetch_add(1, Ordering::Relaxed);
    }

    fn now(&self) -> u64 {
        millis(self.base.elapsed()).saturating_add(1)
    }

    /// The heartbeat count and how long the oldest commit still running
    /// has been at it (zero when no thread is committing).
    pub(super) fn progress(&self) -> (u64, Duration) {
        let now = self.now();
        let longest = self
            .busy_since
            .iter()
            .map(|b| b.load(Ordering::Relaxed))
            .filter(|&since| since != 0)
            .map(|since| now.saturating_sub(since))
            .max()
            .unwrap_or(0);
        (
            self.beats.load(Ordering::Relaxed),
            Duration::from_millis(longest),
        )
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

pub(super) fn start(shared: Arc<Shared>, threads: usize) -> Result<Sender<WriteJob>, SpoolError> {
    let (tx, rx) = std::sync::mpsc::channel::<WriteJob>();
    let rx = Arc::new(Mutex::new(rx));
    for n in 0..threads.max(1) {
        let rx = rx.clone();
        let thread_shared = shared.clone();
        std::thread::Builder::new()
            .name(format!("spool-writer-{n}"))
            .spawn(move || run(&thread_shared, &rx, n))
            .map_err(|e| SpoolError::io("start writer thread for", shared.dir.root(), e))?;
    }
    Ok(tx)
}

/// Runs until every `Spool` (and so every Sender) is dropped. `n` is this
/// thread's slot in the heartbeat.
fn run(shared: &Shared, rx: &Mutex<Receiver<WriteJob>>, n: usize) {
    let heartbeat = &shared.heartbeat;
    let slot = &heartbeat.busy_since[n % heartbeat.busy_since.len()];
    loop {
        match next_batch(rx, heartbeat.tick()) {
            Next::Batch(batch) => {
                slot.store(heartbeat.now(), Ordering::Relaxed);
                commit(shared, batch);
                slot.store(0, Ordering::Relaxed);
            }
            Next::Idle => {}
            Next::Closed => return,
        }
        heartbeat.beat();
    }
}

enum Next {
    Batch(Vec<WriteJob>),
    /// Nothing arrived within one tick.
    Idle,
    Closed,
}

/// Waits (up to `tick`) for one job, then takes whatever else is already
/// waiting. The lock is held while waiting so exactly one idle thread is
/// collecting at a time.
fn next_batch(rx: &Mutex<Receiver<WriteJob>>, tick: Duration) -> Next {
    let rx = match rx.lock() {
        Ok(g) => g,
        Err(poisoned) => poisoned.into_inner(),
    };
    let first = match rx.recv_timeout(tick) {
        Ok(job) => job,
        Err(RecvTimeoutError::Timeout) => return Next::Idle,
        Err(RecvTimeoutError::Disconnected) => return Next::Closed,
    };
    let mut batch = vec![first];
    while batch.len() < MAX_BATCH {
        match rx.try_recv() {
            Ok(job) => batch.push(job),
            Err(TryRecvError::Empty | TryRecvError::Disconnected) => break,
        }
    }
    Next::Batch(batch)
}

fn commit(shared: &Shared, batch: Vec<WriteJob>) {
    let dir = &shared.dir;
    let mut renamed: Vec<(WriteJob, PathBuf)> = Vec::with_capacity(batch.len());
    for job in batch {
        let tmp = dir.tmp_path(&job.id);
        let dest = dir.queue_path(&job.id);
        let result = write_synced(&tmp, &job.header, job.data.as_ref().as_ref())
            .map_err(|e| SpoolError::io("write", &tmp, e))
            .and_then(|()| fs::rename(&tmp, &dest).map_err(|e| SpoolError::io("rename", &dest, e)));
        match result {
            Ok(()) => renamed.push((job, dest)),
            Err(err) => {
                let _ = fs::remove_file(&tmp);
                let _ = job.reply.send(Err(err));
            }
        }
    }
    if renamed.is_empty() {
        return;
    }
    let queue = dir.queue_dir();
    if let Err(e) = File::open(&queue).and_then(|d| d.sync_all()) {
        // The renames may or may not survive a crash; undo them so a 4xx
        // answer never coexists with a queued copy (the client will retry).
        let reason = e.to_string();
        for (job, dest) in renamed {
            let _ = fs::remove_file(&dest);
            let err = io::Error::new(e.kind(), reason.clone());
            let _ = job.reply.send(Err(SpoolError::io("fsync", &queue, err)));
        }
        return;
    }
    for (job, _) in renamed {
        // Notify before replying so delivery knows even if the waiting
        // session has gone away.
        shared.queued(&job.id);
        let _ = job.reply.send(Ok(()));
    }
}

fn write_synced(path: &std::path::Path, header: &[u8], data: &[u8]) -> io::Result<()> {
    let mut file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(header)?;
    file.write_all(data)?;
    file.sync_data()
}
