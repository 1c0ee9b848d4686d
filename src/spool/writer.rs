//! Group commit for `Spool::put`.
//!
//! fsync is the expensive part of accepting mail. A few dedicated threads
//! each take every put that is waiting, write and fsync each file, rename
//! them all into queue/, fsync queue/ once for the whole batch and only then
//! answer every waiter. Under load one directory fsync covers many messages;
//! with no load a batch is a single message and latency is one write+fsync.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;
use std::sync::mpsc::{Receiver, Sender, TryRecvError};
use std::sync::{Arc, Mutex};

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

pub(super) fn start(shared: Arc<Shared>, threads: usize) -> Result<Sender<WriteJob>, SpoolError> {
    let (tx, rx) = std::sync::mpsc::channel::<WriteJob>();
    let rx = Arc::new(Mutex::new(rx));
    for n in 0..threads.max(1) {
        let rx = rx.clone();
        let thread_shared = shared.clone();
        std::thread::Builder::new()
            .name(format!("spool-writer-{n}"))
            .spawn(move || run(&thread_shared, &rx))
            .map_err(|e| SpoolError::io("start writer thread for", shared.dir.root(), e))?;
    }
    Ok(tx)
}

/// Runs until every `Spool` (and so every Sender) is dropped.
fn run(shared: &Shared, rx: &Mutex<Receiver<WriteJob>>) {
    while let Some(batch) = next_batch(rx) {
        commit(shared, batch);
    }
}

/// Blocks for one job, then takes whatever else is already waiting. The lock
/// is held while blocked so exactly one idle thread is collecting at a time.
fn next_batch(rx: &Mutex<Receiver<WriteJob>>) -> Option<Vec<WriteJob>> {
    let rx = match rx.lock() {
        Ok(g) => g,
        Err(poisoned) => poisoned.into_inner(),
    };
    let first = rx.recv().ok()?;
    let mut batch = vec![first];
    while batch.len() < MAX_BATCH {
        match rx.try_recv() {
            Ok(job) => batch.push(job),
            Err(TryRecvError::Empty | TryRecvError::Disconnected) => break,
        }
    }
    Some(batch)
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
