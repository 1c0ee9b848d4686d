//! The segment log: where a freshly accepted message lives until it is
//! delivered or needs a file of its own.
//!
//! ```text
//! seg/N.log   records appended by the writer thread, one fdatasync per batch
//! seg/N.done  ids of records that left the log, one per line (not synced)
//! ```
//!
//! A record is a 20-byte head (magic `PSG1`, the envelope line's length as
//! u32 LE, the message's length as u64 LE, CRC-32 of both as u32 LE), the
//! envelope line (the same JSON line a queue/ file starts with) and the
//! message bytes. A record whose head, lengths or checksum do not hold is a
//! write that never finished (a crash or a full disk during the batch,
//! never answered 250): reading a segment stops there. It also stops,
//! quietly, at an all-zero head: the unused tail of a preallocated segment
//! (see `spare`).
//!
//! A record leaves the log when its message is delivered or when it is
//! moved into queue/ as a file ("materialised": before a failed attempt is
//! recorded, before an operator holds, purges or dead-letters it, and for
//! every live record when the spool is opened or adopted). Its id is then
//! appended to N.done; a record whose id is in N.done, or already has a
//! file in queue/ or dead/, is not live. A sealed segment with no live
//! record is deleted. The done lines are not synced, the same
//! at-least-once window as the unsynced unlink of a delivered queue/ file:
//! a power cut can bring delivered messages back, never lose one.

use std::collections::HashSet;
use std::fs::{self, File};
use std::io::{self, BufReader, Read};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use super::store::{MAX_HEADER, check_id, sync_dir, write_synced};
use super::{Envelope, SpoolDir, SpoolError, StoredMessage};

pub(super) const SEG_DIR: &str = "seg";
const MAGIC: [u8; 4] = *b"PSG1";
pub(super) const HEAD_LEN: usize = 20;
const LOG_SUFFIX: &str = ".log";
const DONE_SUFFIX: &str = ".done";

/// A segment is sealed (no more appends) once it is this long, so a
/// delivered segment's space comes back soon.
pub(super) const ROTATE_AT: u64 = 8 << 20;

/// The record head for `header` (the envelope line) and `data`.
pub(super) fn head(header: &[u8], data: &[u8]) -> [u8; HEAD_LEN] {
    let mut crc = crc32fast::Hasher::new();
    crc.update(header);
    crc.update(data);
    let mut h = [0u8; HEAD_LEN];
    h[..4].copy_from_slice(&MAGIC);
    // `put` refuses envelope lines longer than MAX_HEADER, far below u32.
    h[4..8].copy_from_slice(
        &u32::try_from(header.len())
            .unwrap_or(u32::MAX)
            .to_le_bytes(),
    );
    h[8..16].copy_from_slice(&(data.len() as u64).to_le_bytes());
    h[16..20].copy_from_slice(&crc.finalize().to_le_bytes());
    h
}

/// Where one record is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Loc {
    pub seg: u64,
    /// Of the record's head.
    pub offset: u64,
    pub header_len: u32,
    pub data_len: u64,
    /// The envelope's `received_at`, for the queue's age without a read.
    pub received_at: u64,
}

impl Loc {
    pub(super) fn end(&self) -> u64 {
        self.offset + HEAD_LEN as u64 + u64::from(self.header_len) + self.data_len
    }
}

struct Head {
    header_len: u32,
    data_len: u64,
    crc: u32,
}

fn parse_head(h: &[u8; HEAD_LEN]) -> Option<Head> {
    if h[..4] != MAGIC {
        return None;
    }
    let header_len = u32::from_le_bytes(h[4..8].try_into().ok()?);
    let data_len = u64::from_le_bytes(h[8..16].try_into().ok()?);
    let crc = u32::from_le_bytes(h[16..20].try_into().ok()?);
    (header_len > 0 && u64::from(header_len) <= MAX_HEADER).then_some(Head {
        header_len,
        data_len,
        crc,
    })
}

/// The envelope in a record's header, checked against the record.
fn envelope_of(header: &[u8], data_len: u64) -> Option<Envelope> {
    if header.last() != Some(&b'\n') {
        return None;
    }
    let env: Envelope = serde_json::from_slice(header).ok()?;
    (check_id(&env.id).is_ok() && env.size == data_len).then_some(env)
}

/// Creates segment (or spare) file `path`, which must not exist yet:
/// readable and writable, mode 0600.
pub(super) fn create_file(path: &Path) -> io::Result<File> {
    fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
}

/// Reads and checks the record at `loc`, which must be message `id`'s:
/// one read of the whole record, the message then moved to the front of
/// the same buffer.
pub(super) fn read_record(file: &File, loc: &Loc, id: &str) -> Result<StoredMessage, String> {
    let prefix = HEAD_LEN + loc.header_len as usize;
    let len = usize::try_from(loc.data_len)
        .ok()
        .and_then(|d| d.checked_add(prefix))
        .ok_or("message too large")?;
    let mut buf = vec![0u8; len];
    file.read_exact_at(&mut buf, loc.offset)
        .map_err(|e| format!("cannot read the record: {e}"))?;
    let mut h = [0u8; HEAD_LEN];
    h.copy_from_slice(&buf[..HEAD_LEN]);
    let head = parse_head(&h).ok_or("bad record head")?;
    if head.header_len != loc.header_len || head.data_len != loc.data_len {
        return Err("record head does not match the index".to_string());
    }
    if crc32fast::hash(&buf[HEAD_LEN..]) != head.crc {
        return Err("checksum mismatch".to_string());
    }
    let envelope = envelope_of(&buf[HEAD_LEN..prefix], head.data_len).ok_or("bad envelope line")?;
    if envelope.id != id {
        return Err("record belongs to another message".to_string());
    }
    buf.drain(..prefix);
    Ok(StoredMessage {
        envelope,
        data: buf,
    })
}

/// Reads the envelope of the record at `loc` (not the message).
pub(super) fn read_envelope(file: &File, loc: &Loc) -> Result<Envelope, String> {
    let mut header = vec![0u8; loc.header_len as usize];
    file.read_exact_at(&mut header, loc.offset + HEAD_LEN as u64)
        .map_err(|e| format!("cannot read the envelope: {e}"))?;
    envelope_of(&header, loc.data_len).ok_or_else(|| "bad envelope line".to_string())
}

/// One complete record found by `scan`.
pub(super) struct Scanned<'a> {
    pub envelope: Envelope,
    pub loc: Loc,
    pub header: &'a [u8],
    pub data: &'a [u8],
}

/// Reads segment `seg` at `path` from the start, calling `each` for every
/// complete record until the first one that is not (a torn tail).
/// Returns the length of the good prefix.
pub(super) fn scan(
    path: &Path,
    seg: u64,
    mut each: impl FnMut(Scanned<'_>) -> Result<(), SpoolError>,
) -> Result<u64, SpoolError> {
    let file = File::open(path).map_err(|e| SpoolError::io("open", path, e))?;
    let total = file
        .metadata()
        .map_err(|e| SpoolError::io("stat", path, e))?
        .len();
    let mut reader = BufReader::with_capacity(256 * 1024, file);
    let mut offset = 0u64;
    let (mut header, mut data) = (Vec::new(), Vec::new());
    loop {
        let mut h = [0u8; HEAD_LEN];
        if read_full(&mut reader, &mut h).map_err(|e| SpoolError::io("read", path, e))? {
            return Ok(offset);
        }
        if h == [0u8; HEAD_LEN] {
            // The unused tail of a preallocated segment (see `spare`).
            return Ok(offset);
        }
        let Some(head) = parse_head(&h) else {
            return Ok(torn(path, offset, total));
        };
        let end = offset + HEAD_LEN as u64 + u64::from(head.header_len) + head.data_len;
        if end > total {
            return Ok(torn(path, offset, total));
        }
        header.resize(head.header_len as usize, 0);
        data.resize(usize::try_from(head.data_len).unwrap_or(usize::MAX), 0);
        if read_full(&mut reader, &mut header).map_err(|e| SpoolError::io("read", path, e))?
            || read_full(&mut reader, &mut data).map_err(|e| SpoolError::io("read", path, e))?
        {
            return Ok(torn(path, offset, total));
        }
        let mut crc = crc32fast::Hasher::new();
        crc.update(&header);
        crc.update(&data);
        let envelope = match envelope_of(&header, head.data_len) {
            Some(env) if crc.finalize() == head.crc => env,
            _ => return Ok(torn(path, offset, total)),
        };
        let loc = Loc {
            seg,
            offset,
            header_len: head.header_len,
            data_len: head.data_len,
            received_at: envelope.received_at,
        };
        each(Scanned {
            envelope,
            loc,
            header: &header,
            data: &data,
        })?;
        offset = end;
    }
}

fn torn(path: &Path, offset: u64, total: u64) -> u64 {
    tracing::warn!(segment = %path.display(), offset, length = total, "spool segment ends in an incomplete record (a write that was never acknowledged); ignored");
    offset
}

/// Fills `buf`; true when the stream ended before the first byte or in
/// the middle (both mean: no complete record here).
fn read_full(r: &mut impl Read, buf: &mut [u8]) -> io::Result<bool> {
    let mut filled = 0;
    while filled < buf.len() {
        match r.read(&mut buf[filled..]) {
            Ok(0) => return Ok(true),
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(false)
}

pub(super) fn log_name(seg: u64) -> String {
    format!("{seg:016}{LOG_SUFFIX}")
}

pub(super) fn done_name(seg: u64) -> String {
    format!("{seg:016}{DONE_SUFFIX}")
}

/// A live record read back by `live_records`.
pub(super) struct Live {
    pub envelope: Envelope,
    pub loc: Loc,
}

impl SpoolDir {
    pub(super) fn seg_dir(&self) -> PathBuf {
        self.root().join(SEG_DIR)
    }

    pub(super) fn seg_path(&self, seg: u64) -> PathBuf {
        self.seg_dir().join(log_name(seg))
    }

    pub(super) fn done_path(&self, seg: u64) -> PathBuf {
        self.seg_dir().join(done_name(seg))
    }

    /// Numbers of the segments on disk, oldest first (none when seg/ does
    /// not exist: a spool from before segments).
    pub(super) fn segments(&self) -> Result<Vec<u64>, SpoolError> {
        let dir = self.seg_dir();
        let mut segs = match fs::read_dir(&dir) {
            Ok(entries) => entries
                .filter_map(|e| e.ok())
                .filter_map(|e| {
                    let name = e.file_name();
                    name.to_str()?.strip_suffix(LOG_SUFFIX)?.parse::<u64>().ok()
                })
                .collect::<Vec<_>>(),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(SpoolError::io("read", &dir, e)),
        };
        segs.sort_unstable();
        Ok(segs)
    }

    /// Ids recorded as having left segment `seg`.
    fn done_ids(&self, seg: u64) -> HashSet<String> {
        let Ok(bytes) = fs::read(self.done_path(seg)) else {
            return HashSet::new();
        };
        bytes
            .split(|&b| b == b'\n')
            .filter_map(|line| std::str::from_utf8(line).ok())
            .filter(|id| check_id(id).is_ok())
            .map(str::to_string)
            .collect()
    }

    /// Whether message `id` has a file in queue/ or dead/ (then its record,
    /// if any, is not live).
    fn has_file(&self, id: &str) -> bool {
        self.queue_path(id).exists() || self.dead_path(id).exists()
    }

    /// Calls `each` for every live record of every segment, oldest first.
    fn each_live(
        &self,
        mut each: impl FnMut(Scanned<'_>) -> Result<(), SpoolError>,
    ) -> Result<(), SpoolError> {
        for seg in self.segments()? {
            let done = self.done_ids(seg);
            let path = self.seg_path(seg);
            let scanned = scan(&path, seg, |rec| {
                if done.contains(&rec.envelope.id) || self.has_file(&rec.envelope.id) {
                    return Ok(());
                }
                each(rec)
            });
            match scanned {
                Ok(_) => {}
                // Deleted by the daemon since the listing: nothing live.
                Err(SpoolError::Io { source, .. }) if source.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Every live record's envelope and place (read-only: for listing a
    /// spool, with or without the daemon running).
    pub(super) fn live_records(&self) -> Result<Vec<Live>, SpoolError> {
        let mut out = Vec::new();
        self.each_live(|rec| {
            out.push(Live {
                envelope: rec.envelope,
                loc: rec.loc,
            });
            Ok(())
        })?;
        Ok(out)
    }

    /// Reads live message `id` from the segments, if it is there.
    pub(super) fn read_live(&self, id: &str) -> Result<Option<StoredMessage>, SpoolError> {
        let Some(live) = self
            .live_records()?
            .into_iter()
            .find(|l| l.envelope.id == id)
        else {
            return Ok(None);
        };
        let path = self.seg_path(live.loc.seg);
        let file = File::open(&path).map_err(|e| SpoolError::io("open", &path, e))?;
        read_record(&file, &live.loc, id)
            .map(Some)
            .map_err(|reason| SpoolError::Corrupt {
                id: id.to_string(),
                reason,
            })
    }

    /// Gives every live record a queue/ file and removes the segments
    /// (and any spare, see `spare`):
    /// run when the spool is opened (nothing else is writing to it) and on
    /// a spool being adopted. Each file is written via tmp/ and synced,
    /// queue/ synced, and only then are the segments removed, so a crash
    /// part way leaves every message in a segment, a file, or both (a
    /// record whose id has a file is not live, so it is not done twice).
    pub(super) fn materialize_segments(&self) -> Result<usize, SpoolError> {
        self.remove_spares()?;
        let segs = self.segments()?;
        if segs.is_empty() {
            return Ok(0);
        }
        let mut moved = 0;
        self.each_live(|rec| {
            self.write_message_file(&rec.envelope.id, rec.header, rec.data)?;
            moved += 1;
            Ok(())
        })?;
        sync_dir(&self.queue_dir())?;
        for seg in segs {
            for path in [self.seg_path(seg), self.done_path(seg)] {
                match fs::remove_file(&path) {
                    Ok(()) => {}
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                    Err(e) => return Err(SpoolError::io("remove", &path, e)),
                }
            }
        }
        sync_dir(&self.seg_dir())?;
        if moved > 0 {
            tracing::info!(
                messages = moved,
                "spool: messages from the segment log given queue files"
            );
        }
        Ok(moved)
    }

    /// Writes queue/`id` (envelope line, then the message) via tmp/,
    /// synced; the caller syncs queue/.
    pub(super) fn write_message_file(
        &self,
        id: &str,
        header: &[u8],
        data: &[u8],
    ) -> Result<(), SpoolError> {
        let tmp = self.tmp_path(id);
        let dest = self.queue_path(id);
        write_synced(&tmp, header, data).map_err(|e| SpoolError::io("write", &tmp, e))?;
        fs::rename(&tmp, &dest).map_err(|e| {
            let _ = fs::remove_file(&tmp);
            SpoolError::io("rename", &dest, e)
        })
    }
}
