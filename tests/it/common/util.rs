//! Byte-level helpers for checking what postern forwarded and stored. They
//! exist so every test compares messages the same strict way: the one
//! `Received:` header postern prepends is removed, and the rest must equal the
//! client's bytes exactly, with readable diagnostics when it does not.

use std::path::Path;
use std::time::{Duration, Instant};

/// Polls `f` every 50 ms until it is true or `timeout` passes; returns the last result.
pub fn wait_until(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if f() {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Sorted file names in `dir`; empty when it does not exist.
pub fn list_dir(dir: &Path) -> Vec<String> {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut v: Vec<String> = rd
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

/// Escapes bytes for readable assertion messages (CR, LF, NUL visible).
pub fn show(b: &[u8]) -> String {
    let mut s = String::new();
    for &c in b {
        match c {
            b'\r' => s.push_str("\\r"),
            b'\n' => s.push_str("\\n\n"),
            b'\t' => s.push_str("\\t"),
            0x20..=0x7e => s.push(c as char),
            _ => s.push_str(&format!("\\x{c:02x}")),
        }
    }
    s
}

/// Asserts `got == want`, printing the first difference with context.
pub fn assert_bytes_eq(got: &[u8], want: &[u8], what: &str) {
    if got == want {
        return;
    }
    let at = got
        .iter()
        .zip(want)
        .position(|(a, b)| a != b)
        .unwrap_or(got.len().min(want.len()));
    let from = at.saturating_sub(60);
    panic!(
        "{what}: bytes differ at offset {at} (got {} bytes, want {} bytes)\n--- got[{from}..]:\n{}\n--- want[{from}..]:\n{}",
        got.len(),
        want.len(),
        show(&got[from..(at + 60).min(got.len())]),
        show(&want[from..(at + 60).min(want.len())]),
    );
}

/// Splits the single prepended `Received:` header (possibly folded) off a
/// forwarded message; returns (header, rest). Panics if it is not there.
pub fn split_received(msg: &[u8]) -> (&[u8], &[u8]) {
    assert!(
        msg.starts_with(b"Received: from "),
        "forwarded message does not start with `Received: from `:\n{}",
        show(&msg[..msg.len().min(300)])
    );
    let mut pos = 0;
    loop {
        let Some(nl) = msg[pos..].iter().position(|&c| c == b'\n') else {
            panic!("Received header never ends:\n{}", show(msg));
        };
        let end = pos + nl + 1;
        assert!(
            end >= 2 && msg[end - 2] == b'\r',
            "Received header line not ended by CRLF:\n{}",
            show(&msg[..end])
        );
        pos = end;
        // A continuation line starts with whitespace (RFC 5322 folding).
        if pos < msg.len() && (msg[pos] == b' ' || msg[pos] == b'\t') {
            continue;
        }
        return (&msg[..pos], &msg[pos..]);
    }
}

/// Asserts `forwarded` is exactly one `Received:` header followed by `sent`.
pub fn assert_forwarded(forwarded: &[u8], sent: &[u8]) {
    let (_, rest) = split_received(forwarded);
    assert_bytes_eq(rest, sent, "forwarded message minus Received header");
}

/// First bare CR or bare LF (offset) in `b`, if any.
pub fn bare_newline(b: &[u8]) -> Option<usize> {
    for (i, &c) in b.iter().enumerate() {
        if c == b'\r' && b.get(i + 1) != Some(&b'\n') {
            return Some(i);
        }
        if c == b'\n' && (i == 0 || b[i - 1] != b'\r') {
            return Some(i);
        }
    }
    None
}

/// Dot-stuffs message content for the SMTP DATA phase (RFC 5321 4.5.2).
pub fn dot_stuff(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len() + 16);
    let mut at_line_start = true;
    for &c in data {
        if at_line_start && c == b'.' {
            out.push(b'.');
        }
        out.push(c);
        at_line_start = c == b'\n';
    }
    out
}

/// `contains` for byte slices.
pub fn contains(hay: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && hay.windows(needle.len()).any(|w| w == needle)
}

/// A simple well-formed test message (CRLF line endings, ends with CRLF).
pub fn simple_message(from: &str, to: &str, subject: &str) -> Vec<u8> {
    format!(
        "From: <{from}>\r\nTo: <{to}>\r\nSubject: {subject}\r\nDate: Mon, 2 Mar 2026 10:00:00 +0000\r\nMessage-ID: <{}@example.com>\r\n\r\nHello.\r\n.A line that starts with a dot.\r\nBye.\r\n",
        subject.replace(' ', "-")
    )
    .into_bytes()
}

/// Everything queued on disk in the spool at `spool`: the file names in
/// its queue/ and the ids of the messages that so far live only in its
/// segment log.
pub fn queued_on_disk(spool: &Path) -> Vec<String> {
    let mut all = list_dir(&spool.join("queue"));
    all.extend(live_segment_ids(spool));
    all.sort();
    all
}

/// Ids of the messages that live only in the spool's segment log at
/// `spool` (accepted, not yet attempted; see src/spool/segment.rs): every
/// complete record of seg/N.log whose id is neither in seg/N.done nor has
/// a queue/ or dead/ file. Read independently of postern's own code.
pub fn live_segment_ids(spool: &Path) -> Vec<String> {
    let mut ids = Vec::new();
    for name in list_dir(&spool.join("seg")) {
        let Some(seg) = name.strip_suffix(".log") else {
            continue;
        };
        let Ok(log) = std::fs::read(spool.join("seg").join(&name)) else {
            continue;
        };
        let done = std::fs::read_to_string(spool.join("seg").join(format!("{seg}.done")))
            .unwrap_or_default();
        let done: std::collections::HashSet<&str> = done.lines().collect();
        let mut at = 0usize;
        while log.len() >= at + 20 && &log[at..at + 4] == b"PSG1" {
            let header_len = u32::from_le_bytes(log[at + 4..at + 8].try_into().unwrap()) as usize;
            let data_len = u64::from_le_bytes(log[at + 8..at + 16].try_into().unwrap()) as usize;
            let end = at + 20 + header_len + data_len;
            if end > log.len() {
                break;
            }
            let env: serde_json::Value =
                serde_json::from_slice(&log[at + 20..at + 20 + header_len]).unwrap_or_else(|e| {
                    panic!("segment {name}: envelope at {at} is not JSON: {e}")
                });
            let id = env["id"].as_str().expect("envelope id").to_string();
            if !done.contains(id.as_str())
                && !spool.join("queue").join(&id).exists()
                && !spool.join("dead").join(&id).exists()
            {
                ids.push(id);
            }
            at = end;
        }
    }
    ids.sort();
    ids
}

/// Reads a spool file: (JSON envelope line, raw message after it).
pub fn read_spool_file(path: &Path) -> (serde_json::Value, Vec<u8>) {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    let nl = bytes
        .iter()
        .position(|&c| c == b'\n')
        .unwrap_or_else(|| panic!("spool file {} has no envelope line", path.display()));
    let env: serde_json::Value = serde_json::from_slice(&bytes[..nl])
        .unwrap_or_else(|e| panic!("envelope line of {} is not JSON: {e}", path.display()));
    (env, bytes[nl + 1..].to_vec())
}

/// A one-thread tokio runtime serving a test's loopback helper (a proxy, a
/// mock), with its listener; everything on it stops when it is dropped.
pub struct Background {
    rt: Option<tokio::runtime::Runtime>,
}

impl Background {
    /// The runtime and a listener on a free 127.0.0.1 port (and that port).
    pub fn bind() -> (Background, tokio::net::TcpListener, u16) {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("helper runtime");
        let listener = rt
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .expect("bind helper");
        let port = listener.local_addr().expect("helper addr").port();
        (Background { rt: Some(rt) }, listener, port)
    }

    pub fn spawn(&self, f: impl std::future::Future<Output = ()> + Send + 'static) {
        if let Some(rt) = &self.rt {
            rt.spawn(f);
        }
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        if let Some(rt) = self.rt.take() {
            rt.shutdown_background();
        }
    }
}
