//! Decoder for the DATA phase: finds the end-of-data marker, undoes dot
//! stuffing and canonicalizes line endings.
//!
//! This exists instead of smtp-proto's `DataReceiver` because the end marker
//! is where SMTP smuggling happens: if we and a downstream MTA disagree on
//! where a message ends (`\n.\n`, `\r.\r\n`, `\r\n.\r\r\n`, ...), a client can
//! hide a second message inside the first. Here only the exact `CRLF . CRLF`
//! ends the data (or `. CRLF` as the very first line, because the DATA
//! command's own CRLF precedes it), and the stored message never contains a
//! bare CR or LF, so nothing we hand on can be re-split differently.
//!
//! Line starts come in two kinds:
//! - *real*: at the beginning, or after a CRLF. Only here can `.CRLF` end
//!   the data.
//! - *soft*: after a bare CR or LF (normalized to CRLF, or rejected). Dot
//!   unstuffing applies here too (as Postfix does with
//!   `smtpd_forbid_bare_newline = normalize`), because clients that send bare
//!   LF line endings generally stuff those lines as well. This is safe: the
//!   output is canonical CRLF text whatever we decide, and the end marker
//!   never depends on it.
//!
//! At either kind of line start a leading `.` is removed when another
//! character follows on the same line (RFC 5321 §4.5.2). A `.` directly
//! followed by a line ending (CRLF, bare CR, bare LF) that is not the end
//! marker is kept, so a lone-dot line survives as the content line `.`.

/// What to do with a CR or LF that is not part of a CRLF pair
/// (`[server] bare_newline`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BareNewline {
    /// Store it as CRLF.
    Normalize,
    /// Refuse the message (`550 5.5.2`), after reading it to the end marker.
    Reject,
}

/// Result of one DATA phase.
#[derive(Debug, PartialEq, Eq)]
pub enum DataOutcome {
    /// The decoded message: CRLF line endings only, ends in CRLF unless empty.
    Message(Vec<u8>),
    /// The decoded message exceeded the size limit; nothing was kept.
    TooLarge,
    /// A bare CR or LF was seen under [`BareNewline::Reject`].
    BareNewline,
    /// `finish` was called before the end-of-data marker arrived (the
    /// connection broke); never treat this as a message.
    Incomplete,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// Inside a line.
    Mid,
    /// At a line start; `real` = after CRLF or at the very beginning.
    LineStart { real: bool },
    /// A CR was read; whether it is half of a CRLF depends on the next byte.
    Cr,
    /// A `.` was read at a line start.
    Dot { real: bool },
    /// `.` and CR were read at a line start.
    DotCr { real: bool },
    /// The end-of-data marker was consumed.
    Done,
}

/// Incremental DATA decoder. Feed it whatever the socket delivered; it
/// consumes up to and including the end marker and leaves pipelined bytes
/// after it to the caller.
pub struct DataDecoder {
    state: State,
    out: Vec<u8>,
    max_size: usize,
    policy: BareNewline,
    too_large: bool,
    bare_newline: bool,
}

impl std::fmt::Debug for DataDecoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DataDecoder")
            .field("state", &self.state)
            .field("stored", &self.out.len())
            .field("max_size", &self.max_size)
            .field("too_large", &self.too_large)
            .field("bare_newline", &self.bare_newline)
            .finish()
    }
}

impl DataDecoder {
    /// A decoder positioned at the start of the first line of message data.
    pub fn new(max_size: usize, policy: BareNewline) -> Self {
        DataDecoder {
            state: State::LineStart { real: true },
            out: Vec::new(),
            max_size,
            policy,
            too_large: false,
            bare_newline: false,
        }
    }

    /// Consumes bytes up to and including the end-of-data marker; returns how
    /// many bytes of `input` were consumed. Bytes after the marker (pipelined
    /// next commands) are not consumed. Returns 0 once done.
    pub fn feed(&mut self, input: &[u8]) -> usize {
        let mut i = 0;
        while i < input.len() {
            let b = input[i];
            match self.state {
                State::Done => return i,
                State::Mid => {
                    let rest = &input[i..];
                    match find_cr_or_lf(rest) {
                        None => {
                            self.emit(rest);
                            return input.len();
                        }
                        Some(p) => {
                            self.emit(&rest[..p]);
                            i += p + 1;
                            if rest[p] == b'\r' {
                                self.state = State::Cr;
                            } else {
                                self.bare();
                                self.state = State::LineStart { real: false };
                            }
                        }
                    }
                }
                State::Cr => {
                    if b == b'\n' {
                        i += 1;
                        self.emit(b"\r\n");
                        self.state = State::LineStart { real: true };
                    } else {
                        // `b` is not consumed: it starts the next (soft) line.
                        self.bare();
                        self.state = State::LineStart { real: false };
                    }
                }
                State::LineStart { real } => {
                    if b == b'.' {
                        i += 1;
                        self.state = State::Dot { real };
                    } else {
                        self.state = State::Mid;
                    }
                }
                State::Dot { real } => match b {
                    b'\r' => {
                        i += 1;
                        self.state = State::DotCr { real };
                    }
                    b'\n' => {
                        i += 1;
                        self.emit(b".");
                        self.bare();
                        self.state = State::LineStart { real: false };
                    }
                    // Dot-stuffing: drop the dot, `b` is ordinary content.
                    _ => self.state = State::Mid,
                },
                State::DotCr { real } => {
                    if b == b'\n' {
                        i += 1;
                        if real {
                            self.state = State::Done;
                            return i;
                        }
                        self.emit(b".\r\n");
                        self.state = State::LineStart { real: true };
                    } else {
                        self.emit(b".");
                        self.bare();
                        self.state = State::LineStart { real: false };
                    }
                }
            }
        }
        i
    }

    /// True once the end-of-data marker has been consumed.
    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// Bytes of decoded message stored so far (0 once rejected).
    pub fn stored_len(&self) -> usize {
        self.out.len()
    }

    /// The outcome; [`DataOutcome::Incomplete`] if the marker never came.
    pub fn finish(self) -> DataOutcome {
        if self.state != State::Done {
            DataOutcome::Incomplete
        } else if self.bare_newline {
            DataOutcome::BareNewline
        } else if self.too_large {
            DataOutcome::TooLarge
        } else {
            DataOutcome::Message(self.out)
        }
    }

    /// Stores decoded bytes unless the message is already rejected, growing
    /// the buffer by doubling but never past `max_size`.
    fn emit(&mut self, bytes: &[u8]) {
        if self.too_large || self.bare_newline || bytes.is_empty() {
            return;
        }
        let need = self.out.len().saturating_add(bytes.len());
        if need > self.max_size {
            self.too_large = true;
            self.out = Vec::new();
            return;
        }
        if need > self.out.capacity() {
            let target = self
                .out
                .capacity()
                .saturating_mul(2)
                .max(need)
                .max(4096)
                .min(self.max_size);
            self.out.reserve_exact(target - self.out.len());
        }
        self.out.extend_from_slice(bytes);
    }

    /// A CR or LF that is not part of a CRLF pair.
    fn bare(&mut self) {
        match self.policy {
            BareNewline::Normalize => self.emit(b"\r\n"),
            BareNewline::Reject => {
                self.bare_newline = true;
                self.out = Vec::new();
            }
        }
    }
}

/// Position of the first CR or LF. Word-at-a-time (SWAR) so long lines are
/// scanned 8 bytes per step without a memchr dependency.
fn find_cr_or_lf(s: &[u8]) -> Option<usize> {
    const LO: u64 = 0x0101_0101_0101_0101;
    const HI: u64 = 0x8080_8080_8080_8080;
    const CR: u64 = LO * b'\r' as u64;
    const LF: u64 = LO * b'\n' as u64;
    let mut chunks = s.chunks_exact(8);
    let mut offset = 0;
    for chunk in &mut chunks {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        let w = u64::from_le_bytes(word);
        let (x, y) = (w ^ CR, w ^ LF);
        // Classic "has zero byte": the lowest flagged byte is always a true
        // match (borrows only create false flags above a real zero byte).
        let hits = ((x.wrapping_sub(LO) & !x) | (y.wrapping_sub(LO) & !y)) & HI;
        if hits != 0 {
            return Some(offset + (hits.trailing_zeros() / 8) as usize);
        }
        offset += 8;
    }
    chunks
        .remainder()
        .iter()
        .position(|&b| b == b'\r' || b == b'\n')
        .map(|p| offset + p)
}

#[cfg(test)]
mod tests;
