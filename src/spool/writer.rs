//! Group commit for `Spool::put`.
//!
//! fsync is the expensive part of accepting mail. A dedicated thread takes
//! every put that is waiting, appends them all to its segment of the log
//! (see `segment`), fdatasyncs once for the whole batch and only then
//! answers every waiter. Under load one sync covers many messages, and no
//! file is created, renamed or removed per message; with no load a batch is
//! a single message and latency is one write + fdatasync.
//!
//! The threads also keep a heartbeat for the systemd watchdog: an idle
//! thread wakes every tick to bump it, and a thread inside a commit notes
//! when that commit began, so a writer stuck in `fsync` (a hung disk) is
//! visible from outside even while its siblings idle along.

use std::fs::{self, File};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender, TryRecvError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::oneshot;

use super::segment::{self, Loc, ROTATE_AT};
use super::spare::Spares;
use super::{Shared, SpoolError, lock};

/// Upper bound on one batch so a flood cannot delay the first waiter forever.
const MAX_BATCH: usize = 256;

/// One pending `put`.
pub(super) struct WriteJob {
    pub id: String,
    /// Envelope JSON plus the terminating newline.
    pub header: Vec<u8>,
    /// The envelope's `received_at`.
    pub received_at: u64,
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
    let spares = Arc::new(Spares::start(shared.clone())?);
    for n in 0..threads.max(1) {
        let rx = rx.clone();
        let spares = spares.clone();
        let thread_shared = shared.clone();
        std::thread::Builder::new()
            .name(format!("spool-writer-{n}"))
            .spawn(move || run(&thread_shared, &rx, &spares, n))
            .map_err(|e| SpoolError::io("start writer thread for", shared.dir.root(), e))?;
    }
    Ok(tx)
}

/// Runs until every `Spool` (and so every Sender) is dropped. `n` is this
/// thread's slot in the heartbeat.
fn run(shared: &Shared, rx: &Mutex<Receiver<WriteJob>>, spares: &Spares, n: usize) {
    let heartbeat = &shared.heartbeat;
    let slot = &heartbeat.busy_since[n % heartbeat.busy_since.len()];
    let mut active = None;
    loop {
        match next_batch(rx, heartbeat.tick()) {
            Next::Batch(batch) => {
                slot.store(heartbeat.now(), Ordering::Relaxed);
                commit(shared, spares, &mut active, batch);
                slot.store(0, Ordering::Relaxed);
            }
            Next::Idle => {}
            Next::Closed => break,
        }
        heartbeat.beat();
    }
    if let Some(a) = active {
        lock(&shared.index).seal(a.seg);
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

/// The segment one writer thread appends to.
struct Active {
    seg: u64,
    file: Arc<File>,
    path: PathBuf,
    /// Bytes written and synced so far.
    len: u64,
}

/// Messages larger than this are written straight from their buffer
/// rather than copied into the batch's.
const COPY_LIMIT: usize = 64 * 1024;

/// Appends the batch to this thread's segment (opening a new one first if
/// needed), syncs it once and only then makes the messages known and
/// answers every waiter.
fn commit(shared: &Shared, spares: &Spares, active: &mut Option<Active>, batch: Vec<WriteJob>) {
    let a = match active {
        Some(a) => a,
        None => match open_segment(shared, spares) {
            Ok(a) => active.insert(a),
            Err(e) => return fail(batch, "create", &shared.dir.seg_dir(), &e),
        },
    };
    let start = a.len;
    let mut locs = Vec::with_capacity(batch.len());
    let written = append(a, &batch, &mut locs).and_then(|()| a.file.sync_data());
    if let Err(e) = written {
        // Whatever part of the batch reached the disk was never
        // acknowledged: cut it off, and append no more to a file whose
        // state after a failed write or sync is uncertain.
        let _ = a.file.set_len(start);
        let (seg, path) = (a.seg, a.path.clone());
        *active = None;
        lock(&shared.index).seal(seg);
        return fail(batch, "write", &path, &e);
    }
    a.len = locs.last().map_or(start, Loc::end);
    {
        let mut index = lock(&shared.index);
        for (job, loc) in batch.iter().zip(&locs) {
            index.add(job.id.clone(), *loc);
        }
        if a.len >= ROTATE_AT {
            index.seal(a.seg);
            *active = None;
        }
    }
    for job in batch {
        // Notify before replying so delivery knows even if the waiting
        // session has gone away.
        shared.queued(&job.id);
        let _ = job.reply.send(Ok(()));
    }
}

/// Writes every job's record after `a.len`, small ones gathered into one
/// write; `locs` gets each record's place.
fn append(a: &Active, batch: &[WriteJob], locs: &mut Vec<Loc>) -> io::Result<()> {
    let mut buf = Vec::with_capacity(64 * 1024);
    let mut buf_at = a.len;
    let mut offset = a.len;
    for job in batch {
        let data = job.data.as_ref().as_ref();
        let loc = Loc {
            seg: a.seg,
            offset,
            header_len: u32::try_from(job.header.len()).map_err(io::Error::other)?,
            data_len: data.len() as u64,
            received_at: job.received_at,
        };
        buf.extend_from_slice(&segment::head(&job.header, data));
        buf.extend_from_slice(&job.header);
        if data.len() > COPY_LIMIT {
            a.file.write_all_at(&buf, buf_at)?;
            a.file.write_all_at(data, buf_at + buf.len() as u64)?;
            buf.clear();
            buf_at = loc.end();
        } else {
            buf.extend_from_slice(data);
        }
        offset = loc.end();
        locs.push(loc);
    }
    a.file.write_all_at(&buf, buf_at)
}

/// The next segment: the preallocated spare if one is ready, else a new
/// empty file; either way its directory entry is synced before any record
/// in it is acknowledged.
fn open_segment(shared: &Shared, spares: &Spares) -> io::Result<Active> {
    let (seg, file, path) = match spares.take() {
        Some(spare) => {
            let path = shared.dir.seg_path(spare.seg);
            match fs::rename(&spare.path, &path) {
                Ok(()) => (spare.seg, spare.file, path),
                Err(e) => {
                    tracing::warn!(spare = %spare.path.display(), error = %e, "spool: cannot use the preallocated segment; creating one");
                    let _ = fs::remove_file(&spare.path);
                    create_segment(shared)?
                }
            }
        }
        None => create_segment(shared)?,
    };
    File::open(shared.dir.seg_dir())?.sync_all()?;
    let file = Arc::new(file);
    lock(&shared.index).open_segment(seg, file.clone());
    Ok(Active {
        seg,
        file,
        path,
        len: 0,
    })
}

/// A new, empty segment file.
fn create_segment(shared: &Shared) -> io::Result<(u64, File, PathBuf)> {
    let seg = shared.next_seg.fetch_add(1, Ordering::Relaxed);
    let path = shared.dir.seg_path(seg);
    let file = segment::create_file(&path)?;
    Ok((seg, file, path))
}

/// Answers every job with `e` (the io error's own text is the useful part
/// for an operator: "No space left on device").
fn fail(batch: Vec<WriteJob>, op: &'static str, path: &std::path::Path, e: &io::Error) {
    for job in batch {
        let err = io::Error::new(e.kind(), e.to_string());
        let _ = job.reply.send(Err(SpoolError::io(op, path, err)));
    }
}
