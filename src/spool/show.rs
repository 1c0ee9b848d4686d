//! `postern spool show`: one message's envelope, header block and history,
//! read without loading (or ever returning) the body.

use std::io::{BufRead, BufReader, Read};

use super::manage::Place;
use super::store::{check_id, open_message};
use super::{
    DeadReason, Envelope, Hold, RetryState, Spool, SpoolDir, SpoolError, StoredMessage, blocking,
};

/// Most header bytes shown; a longer header block is cut (and says so).
pub const MAX_SHOWN_HEADERS: usize = 256 * 1024;

/// What `spool show` tells about one message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageDetail {
    pub envelope: Envelope,
    pub place: Place,
    /// The header block up to (not including) the blank line, as stored
    /// (after postern's own additions: Received, DKIM-Signature, ...);
    /// bytes that are not UTF-8 are shown as U+FFFD.
    pub headers: String,
    /// The header block was longer than [`MAX_SHOWN_HEADERS`].
    pub headers_truncated: bool,
    pub retry: Option<RetryState>,
    pub dead_reason: Option<DeadReason>,
    pub held: Option<Hold>,
}

impl SpoolDir {
    /// Reads `id` from queue/ or dead/; the body is never read past the
    /// header block.
    pub fn show(&self, id: &str) -> Result<MessageDetail, SpoolError> {
        check_id(id)?;
        let place = match self.locate(id) {
            Err(SpoolError::NotFound(_)) => {
                return match self.read_live(id)? {
                    Some(msg) => live_detail(msg),
                    None => Err(SpoolError::NotFound(id.to_string())),
                };
            }
            other => other?,
        };
        let path = match place {
            Place::Queue => self.queue_path(id),
            Place::Dead => self.dead_path(id),
        };
        let (envelope, body) = open_message(&path, id)?;
        let (headers, headers_truncated) =
            header_block(body.take(envelope.size)).map_err(|e| SpoolError::io("read", &path, e))?;
        let (retry, dead_reason, held) = match place {
            Place::Queue => (self.read_retry(id), None, self.read_hold(id)),
            Place::Dead => (None, self.read_reason(id), None),
        };
        Ok(MessageDetail {
            envelope,
            place,
            headers,
            headers_truncated,
            retry,
            dead_reason,
            held,
        })
    }
}

/// A live record of the segment log: queued, never attempted.
fn live_detail(msg: StoredMessage) -> Result<MessageDetail, SpoolError> {
    let (headers, headers_truncated) = header_block(&msg.data[..])
        .map_err(|e| SpoolError::io("read", std::path::Path::new(&msg.envelope.id), e))?;
    Ok(MessageDetail {
        envelope: msg.envelope,
        place: Place::Queue,
        headers,
        headers_truncated,
        retry: None,
        dead_reason: None,
        held: None,
    })
}

/// The lines before the first empty line, at most [`MAX_SHOWN_HEADERS`]
/// bytes; whether it was cut.
fn header_block(body: impl Read) -> std::io::Result<(String, bool)> {
    let mut reader = BufReader::new(body);
    let mut out = Vec::new();
    let mut line = Vec::new();
    loop {
        line.clear();
        let limit = (MAX_SHOWN_HEADERS + 1).saturating_sub(out.len());
        let n = (&mut reader)
            .take(limit as u64)
            .read_until(b'\n', &mut line)?;
        if n == 0 || line == b"\r\n" || line == b"\n" {
            break;
        }
        if out.len() + line.len() > MAX_SHOWN_HEADERS {
            let room = MAX_SHOWN_HEADERS - out.len();
            out.extend_from_slice(&line[..room]);
            return Ok((String::from_utf8_lossy(&out).into_owned(), true));
        }
        out.extend_from_slice(&line);
    }
    while out.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
        out.pop();
    }
    Ok((String::from_utf8_lossy(&out).into_owned(), false))
}

impl Spool {
    /// See [`SpoolDir::show`].
    pub async fn show(&self, id: &str) -> Result<MessageDetail, SpoolError> {
        let shared = self.shared.clone();
        let id = id.to_string();
        blocking(move || match shared.read_live(&id) {
            Some(msg) => live_detail(msg?),
            None => shared.dir.show(&id),
        })
        .await
    }
}
