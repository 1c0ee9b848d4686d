//! The daemon's map of the segment log (see `segment`): which record holds
//! which live message, how many live records each segment still has, the
//! done lines, and removing a sealed segment nobody needs any more.

use std::collections::{BTreeMap, HashMap};
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;
use std::sync::Arc;

use super::segment::{Loc, done_name, log_name};

/// One segment the daemon has written to.
struct Seg {
    /// Shared with the writer while it appends; readers `pread` from it.
    file: Arc<File>,
    live: usize,
    /// No more appends: deleted as soon as `live` is 0.
    sealed: bool,
    /// The done lines, opened at the first one.
    done: Option<File>,
}

/// Live messages of the segment log.
pub(super) struct Index {
    seg_dir: PathBuf,
    map: HashMap<String, Loc>,
    segs: BTreeMap<u64, Seg>,
    /// Message bytes of the live records.
    bytes: u64,
}

/// What the segment log holds, for the queue's usage.
pub(super) struct LiveUsage {
    pub messages: u64,
    pub bytes: u64,
    /// Oldest `received_at` (unix seconds).
    pub oldest: Option<u64>,
}

impl Index {
    pub(super) fn new(seg_dir: PathBuf) -> Index {
        Index {
            seg_dir,
            map: HashMap::new(),
            segs: BTreeMap::new(),
            bytes: 0,
        }
    }

    /// A segment the writer has just created.
    pub(super) fn open_segment(&mut self, seg: u64, file: Arc<File>) {
        self.segs.insert(
            seg,
            Seg {
                file,
                live: 0,
                sealed: false,
                done: None,
            },
        );
    }

    /// Message `id` is now durable at `loc`.
    pub(super) fn add(&mut self, id: String, loc: Loc) {
        if let Some(seg) = self.segs.get_mut(&loc.seg) {
            seg.live += 1;
            self.bytes += loc.data_len;
            self.map.insert(id, loc);
        }
    }

    pub(super) fn get(&self, id: &str) -> Option<(Loc, Arc<File>)> {
        let loc = *self.map.get(id)?;
        let file = self.segs.get(&loc.seg)?.file.clone();
        Some((loc, file))
    }

    pub(super) fn contains(&self, id: &str) -> bool {
        self.map.contains_key(id)
    }

    /// Every live message and where it is, oldest first.
    pub(super) fn all(&self) -> Vec<(String, Loc, Arc<File>)> {
        let mut all: Vec<_> = self
            .map
            .iter()
            .filter_map(|(id, loc)| Some((id.clone(), *loc, self.segs.get(&loc.seg)?.file.clone())))
            .collect();
        all.sort_by(|a, b| a.0.cmp(&b.0));
        all
    }

    pub(super) fn usage(&self) -> LiveUsage {
        LiveUsage {
            messages: self.map.len() as u64,
            bytes: self.bytes,
            oldest: self.map.values().map(|l| l.received_at).min(),
        }
    }

    /// Message `id` left the log (delivered, or given a queue/ file): its
    /// done line is written and a sealed segment left with no live record
    /// is removed. False when `id` was not in the log.
    pub(super) fn leave(&mut self, id: &str) -> bool {
        let Some(loc) = self.map.remove(id) else {
            return false;
        };
        self.bytes = self.bytes.saturating_sub(loc.data_len);
        let Some(seg) = self.segs.get_mut(&loc.seg) else {
            return true;
        };
        seg.live = seg.live.saturating_sub(1);
        if seg.live == 0 && seg.sealed {
            self.remove(loc.seg);
            return true;
        }
        if seg.done.is_none() {
            let path = self.seg_dir.join(done_name(loc.seg));
            match OpenOptions::new()
                .append(true)
                .create(true)
                .mode(0o600)
                .open(&path)
            {
                Ok(f) => seg.done = Some(f),
                Err(e) => {
                    // The record stays live on disk: delivered once more
                    // after a restart, never lost.
                    tracing::error!(path = %path.display(), error = %e, "spool: cannot open the segment's done file");
                    return true;
                }
            }
        }
        if let Some(done) = seg.done.as_mut() {
            let mut line = Vec::with_capacity(id.len() + 1);
            line.extend_from_slice(id.as_bytes());
            line.push(b'\n');
            if let Err(e) = done.write_all(&line) {
                tracing::error!(segment = loc.seg, error = %e, "spool: cannot record a delivered message in the segment's done file; it would be delivered again after a restart");
            }
        }
        true
    }

    /// The writer appends no more to `seg`; removed now if nothing in it
    /// is live.
    pub(super) fn seal(&mut self, seg: u64) {
        let Some(s) = self.segs.get_mut(&seg) else {
            return;
        };
        s.sealed = true;
        if s.live == 0 {
            self.remove(seg);
        }
    }

    /// Not synced, like the unlink of a delivered queue/ file: a segment
    /// that a power cut brings back has its messages delivered again
    /// (at least once, never lost).
    fn remove(&mut self, seg: u64) {
        self.segs.remove(&seg);
        for name in [log_name(seg), done_name(seg)] {
            let path = self.seg_dir.join(name);
            match fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => {
                    tracing::warn!(path = %path.display(), error = %e, "spool: cannot remove a finished segment")
                }
            }
        }
    }
}
