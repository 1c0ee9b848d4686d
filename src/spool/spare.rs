//! Preallocated segments.
//!
//! Appending to a file makes each fdatasync write the inode (the new size)
//! and the block bitmaps as well as the data: two or three disk writes per
//! batch instead of one. A segment whose blocks are already written
//! (zeros) and synced changes no metadata when records overwrite them, so
//! its syncs write the data blocks alone.
//!
//! A background thread makes such a segment ahead of need: `seg/N.spare`,
//! `ROTATE_AT` bytes of zeros, synced. When the writer opens its next
//! segment it renames the spare to `N.log` (and syncs seg/, as for a new
//! file) and asks for the next one; with no spare ready it creates an
//! empty segment as before, so nothing ever waits for the zeros. The first
//! segment after opening the spool is always an empty one.
//!
//! A spare is only made while the file system has room for it with some
//! to spare (`worth_preparing`), so it never takes the last free space
//! from the mail itself. Reading a segment stops at an all-zero record
//! head: the unused, preallocated tail. Leftover spares (a crash, or a
//! spool closed while one was ready) are removed when the spool is opened.

use std::fs::{self, File};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::mpsc::{Receiver, Sender};
use std::sync::{Arc, Mutex};

use super::segment::{self, ROTATE_AT};
use super::{Shared, SpoolDir, SpoolError, free, lock};

pub(super) const SPARE_SUFFIX: &str = ".spare";

/// A preallocated segment file waiting under its spare name.
pub(super) struct Spare {
    pub seg: u64,
    pub file: File,
    pub path: PathBuf,
}

/// The writer's side: the spare ready (if any) and the way to ask for the
/// next one. Dropping the last handle stops the preparing thread, which
/// then removes a spare nobody took.
pub(super) struct Spares {
    ready: Arc<Mutex<Option<Spare>>>,
    wanted: Sender<()>,
}

impl Spares {
    /// Starts the thread that prepares spares for `shared`'s segment log.
    pub(super) fn start(shared: Arc<Shared>) -> Result<Spares, SpoolError> {
        let ready = Arc::new(Mutex::new(None));
        let (wanted, requests) = std::sync::mpsc::channel();
        let slot = ready.clone();
        let root = shared.dir.root().to_path_buf();
        std::thread::Builder::new()
            .name("spool-spare".to_string())
            .spawn(move || prepare_on_request(&shared, &requests, &slot))
            .map_err(|e| SpoolError::io("start the spare-segment thread for", &root, e))?;
        Ok(Spares { ready, wanted })
    }

    /// The spare that is ready, if one is; a new one is asked for either
    /// way (so the first segment, made without one, asks for the second).
    pub(super) fn take(&self) -> Option<Spare> {
        let spare = lock(&self.ready).take();
        let _ = self.wanted.send(());
        spare
    }
}

fn prepare_on_request(shared: &Shared, requests: &Receiver<()>, ready: &Mutex<Option<Spare>>) {
    let dir = shared.dir.seg_dir();
    while requests.recv().is_ok() {
        if lock(ready).is_some() || !free::available(&dir).is_some_and(worth_preparing) {
            continue;
        }
        let seg = shared.next_seg.fetch_add(1, Ordering::Relaxed);
        let path = shared.dir.spare_path(seg);
        match preallocate(&path) {
            Ok(file) => *lock(ready) = Some(Spare { seg, file, path }),
            Err(e) => {
                let _ = fs::remove_file(&path);
                tracing::debug!(spare = %path.display(), error = %e, "spool: no preallocated segment this time");
            }
        }
    }
    if let Some(spare) = lock(ready).take() {
        let _ = fs::remove_file(&spare.path);
    }
}

/// Whether a spare (`ROTATE_AT` bytes) should be made when `available`
/// bytes are free: only if at least twice as much stays free after it.
pub(super) fn worth_preparing(available: u64) -> bool {
    available >= 3 * ROTATE_AT
}

/// How much of a spare is written before waiting for it to reach the disk.
const CHUNK: usize = 256 << 10;
const _: () = assert!(
    ROTATE_AT.is_multiple_of(CHUNK as u64),
    "a spare is whole chunks"
);

/// `path`, created with `ROTATE_AT` bytes of zeros, data and size synced.
///
/// The zeros go to the disk one `CHUNK` at a time, each waited for
/// (`sync_file_range`) before the next is written. Written all at once and
/// then synced, the 8 MiB would sit in the disk queue ahead of the
/// writer's next fdatasync, which then waits for all of it: a 10-50 ms
/// stall of every session at each rotation. This way a sync waits for one
/// chunk at most.
fn preallocate(path: &Path) -> io::Result<File> {
    let file = segment::create_file(path)?;
    let zeros = vec![0u8; CHUNK];
    let mut at = 0;
    while at < ROTATE_AT {
        file.write_all_at(&zeros, at)?;
        write_out(&file, at, CHUNK as u64)?;
        at += CHUNK as u64;
    }
    file.sync_all()?;
    Ok(file)
}

/// Starts the writeback of `len` bytes of `file` at `at` and waits for it.
/// Data only, and no cache flush: the `sync_all` at the end makes the
/// whole file durable.
fn write_out(file: &File, at: u64, len: u64) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    let flags = libc::SYNC_FILE_RANGE_WAIT_BEFORE
        | libc::SYNC_FILE_RANGE_WRITE
        | libc::SYNC_FILE_RANGE_WAIT_AFTER;
    let (at, len) = (at as libc::off64_t, len as libc::off64_t);
    // SAFETY: sync_file_range reads no memory of ours; the descriptor is
    // open for as long as `file` is borrowed.
    if unsafe { libc::sync_file_range(file.as_raw_fd(), at, len, flags) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

impl SpoolDir {
    pub(super) fn spare_path(&self, seg: u64) -> PathBuf {
        self.seg_dir().join(format!("{seg:016}{SPARE_SUFFIX}"))
    }

    /// Removes spares left in seg/ (never holding a record: a spare is
    /// renamed before the first write to it).
    pub(super) fn remove_spares(&self) -> Result<(), SpoolError> {
        let dir = self.seg_dir();
        let entries = match fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(SpoolError::io("read", &dir, e)),
        };
        for entry in entries.filter_map(Result::ok) {
            if entry.file_name().to_string_lossy().ends_with(SPARE_SUFFIX) {
                let path = entry.path();
                match fs::remove_file(&path) {
                    Ok(()) => {}
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                    Err(e) => return Err(SpoolError::io("remove", &path, e)),
                }
            }
        }
        Ok(())
    }
}
