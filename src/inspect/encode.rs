//! RFC 2047 encoded-words, and the writer that lays a repaired header field
//! out in folded lines.
//!
//! Legacy clients write raw UTF-8 or Latin-1 into headers. Forwarding those
//! bytes needs RFC 6532 support everywhere downstream, which the HTTPS APIs
//! do not promise; rewriting the 8-bit words as encoded-words makes the field
//! plain ASCII that every mail reader decodes back to the same text.
//!
//! Always the `B` encoding of UTF-8: its alphabet contains nothing that is
//! special in any of the three places RFC 2047 allows encoded-words
//! (unstructured text, phrase words, comments), where `Q` needs a different
//! escape set in each; its length is exact (4 characters per 3 bytes), so the
//! 75-character limit is kept by arithmetic; and it is what Thunderbird and
//! Python's `email` write for UTF-8. `Q` would keep mostly-ASCII words
//! readable in the raw source, but only ASCII-free words are encoded here
//! anyway: the ASCII words around them stay as they were.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use std::borrow::Cow;

/// Longest encoded-word (RFC 2047 §2).
pub const MAX_WORD: usize = 75;

/// Lines of a repaired field are kept to this length where a break is
/// possible (RFC 5322 2.1.1 "SHOULD be no more than 78 characters").
pub const FOLD_AT: usize = 78;

const PREFIX: &str = "=?UTF-8?B?";
const SUFFIX: &str = "?=";

/// Most UTF-8 bytes one encoded-word carries: 75 - 12 leaves 63 base64
/// characters, of which 60 make whole groups of 4, i.e. 45 bytes.
pub const MAX_BYTES: usize = (MAX_WORD - PREFIX.len() - SUFFIX.len()) / 4 * 3;

/// A first chunk smaller than this is not squeezed onto the end of a line;
/// the run starts on the next line instead.
const MIN_CHUNK: usize = 9;

/// One piece of a repaired field value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Item<'a> {
    /// Whitespace as the client sent it (folds included); a line may be
    /// broken in front of it.
    Ws(&'a str),
    /// ASCII text written exactly as it is and never broken.
    Text(Cow<'a, str>),
    /// Text (unfolded, unescaped) to write as one or more encoded-words.
    Encode(String),
}

/// `=?UTF-8?B?...?=` for `text`, which must fit ([`MAX_BYTES`]).
pub fn encoded_word(text: &str) -> String {
    debug_assert!(text.len() <= MAX_BYTES);
    let mut w = String::with_capacity(MAX_WORD);
    w.push_str(PREFIX);
    STANDARD.encode_string(text.as_bytes(), &mut w);
    w.push_str(SUFFIX);
    w
}

/// How many bytes of `text` (ending on a character boundary) fit in one
/// encoded-word of at most `room` characters.
pub fn fit(text: &str, room: usize) -> usize {
    let Some(b64) = room.checked_sub(PREFIX.len() + SUFFIX.len()) else {
        return 0;
    };
    let mut n = (b64 / 4 * 3).min(MAX_BYTES).min(text.len());
    while n > 0 && !text.is_char_boundary(n) {
        n -= 1;
    }
    n
}

/// Whether an ASCII word would itself be decoded as an encoded-word.
pub fn looks_encoded(word: &str) -> bool {
    word.len() > 4 && word.starts_with("=?") && word.ends_with("?=")
}

/// Removes the CRLFs of folds: what a reader sees after unfolding.
pub fn unfold(s: &str) -> Cow<'_, str> {
    if s.contains(['\r', '\n']) {
        Cow::Owned(s.replace(['\r', '\n'], ""))
    } else {
        Cow::Borrowed(s)
    }
}

/// Items for unstructured text (`Subject`, `Comments`, unknown fields),
/// or for the inside of a comment when `comment` is set, where unescaped
/// parentheses also end a word. Runs of words with 8-bit characters become
/// one [`Item::Encode`] with the whitespace between them (RFC 2047 §6.2:
/// whitespace between two encoded-words is dropped when decoding, so it
/// must travel inside them); ASCII words stay as they are.
pub fn text_items(value: &str, comment: bool) -> Vec<Item<'_>> {
    let mut pieces: Vec<(bool, &str)> = Vec::new(); // (is whitespace, text)
    let bytes = value.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let start = i;
        let ws = is_wsp(bytes[i]);
        if ws {
            while i < bytes.len() && is_wsp(bytes[i]) {
                i += 1;
            }
        } else if comment && matches!(bytes[i], b'(' | b')') {
            i += 1;
        } else {
            while i < bytes.len() && !is_wsp(bytes[i]) {
                if comment && matches!(bytes[i], b'(' | b')') {
                    break;
                }
                i += if comment && quoted_pair(bytes, i) {
                    2
                } else {
                    1
                };
            }
            i = i.min(bytes.len());
            while !value.is_char_boundary(i) {
                i += 1;
            }
        }
        pieces.push((ws, &value[start..i]));
    }
    let word_text = |w: &str| -> String { if comment { unescape(w) } else { w.to_string() } };
    let mut items = Vec::new();
    let mut k = 0;
    while k < pieces.len() {
        let (ws, text) = pieces[k];
        if ws {
            items.push(Item::Ws(text));
            k += 1;
            continue;
        }
        if text.is_ascii() {
            items.push(Item::Text(Cow::Borrowed(text)));
            k += 1;
            continue;
        }
        // A run: this 8-bit word and any further 8-bit words separated
        // from it only by whitespace.
        let mut run = String::new();
        if k >= 2 && pieces[k - 1].0 && looks_encoded(pieces[k - 2].1) {
            run.push_str(&unfold(pieces[k - 1].1));
        }
        run.push_str(&word_text(text));
        let mut end = k + 1;
        while end + 1 < pieces.len() && pieces[end].0 && !pieces[end + 1].1.is_ascii() {
            run.push_str(&unfold(pieces[end].1));
            run.push_str(&word_text(pieces[end + 1].1));
            end += 2;
        }
        if end + 1 < pieces.len() && pieces[end].0 && looks_encoded(pieces[end + 1].1) {
            run.push_str(&unfold(pieces[end].1));
        }
        items.push(Item::Encode(run));
        k = end;
    }
    items
}

/// `\x` → `x` (quoted-pairs of comments and quoted-strings).
pub fn unescape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            if let Some(next) = chars.next() {
                out.push(next);
            }
        } else {
            out.push(c);
        }
    }
    out
}

fn is_wsp(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\r' | b'\n')
}

/// A backslash at `i` that escapes the next character. Never a CR or LF
/// (RFC 5322 `quoted-pair`): taking the CR of a fold would split its CRLF.
pub fn quoted_pair(b: &[u8], i: usize) -> bool {
    b.get(i) == Some(&b'\\') && !matches!(b.get(i + 1), None | Some(b'\r' | b'\n'))
}

/// Writes `head` (the field name and colon, as sent), then `items`, then
/// CRLF, into `out`. Lines are broken only in front of whitespace (or
/// between encoded-words) so that unfolding gives back exactly the value
/// the items describe; a line grows past [`FOLD_AT`] only where a single
/// ASCII token is longer than that, and never past 998 octets.
pub fn write_field(head: &[u8], items: &[Item<'_>], out: &mut Vec<u8>) {
    out.extend_from_slice(head);
    let mut w = Writer {
        out,
        col: head.len() - head.iter().rposition(|&b| b == b'\n').map_or(0, |p| p + 1),
        has_token: false,
        after_encoded: false,
        pending: Cow::Borrowed(""),
    };
    // How far each text token reaches on its line together with the text
    // tokens glued to it (`<`, `b`, `@`, ...): a break must come before all.
    let mut glued = vec![0; items.len() + 1];
    for (k, item) in items.iter().enumerate().rev() {
        if let Item::Text(t) = item {
            glued[k] = match t.find(['\r', '\n']) {
                Some(first_line) => first_line,
                None => t.len() + glued[k + 1],
            };
        }
    }
    for (k, item) in items.iter().enumerate() {
        match item {
            Item::Ws(s) => {
                let joined = format!("{}{s}", w.pending);
                w.pending = Cow::Owned(joined);
            }
            Item::Text(t) => w.text(t, glued[k]),
            Item::Encode(t) => {
                // A closing parenthesis is glued to the encoded-word.
                let tail = match items.get(k + 1) {
                    Some(Item::Text(next)) if next.starts_with(')') => glued[k + 1],
                    _ => 0,
                };
                w.encode(t, tail);
            }
        }
    }
    let trailing = std::mem::take(&mut w.pending);
    w.raw(&trailing);
    out.extend_from_slice(b"\r\n");
}

struct Writer<'o> {
    out: &'o mut Vec<u8>,
    /// Length of the current line so far.
    col: usize,
    /// The current line holds a token, so breaking it leaves no empty line.
    has_token: bool,
    /// The last token was an encoded-word: the next needs whitespace first.
    after_encoded: bool,
    /// Whitespace not yet written: the line may break in front of it.
    pending: Cow<'static, str>,
}

impl Writer<'_> {
    fn raw(&mut self, s: &str) {
        self.out.extend_from_slice(s.as_bytes());
        match s.rfind('\n') {
            Some(p) => {
                self.col = s.len() - p - 1;
                self.has_token = false;
            }
            None => self.col += s.len(),
        }
    }

    /// Writes the pending whitespace, broken onto a new line when `next`
    /// characters would not fit after it.
    fn space(&mut self, next: usize) {
        let ws = std::mem::take(&mut self.pending);
        if ws.contains('\n') {
            self.raw(&ws);
        } else if !ws.is_empty() && self.has_token && self.col + ws.len() + next > FOLD_AT {
            self.raw("\r\n");
            self.raw(&ws);
        } else {
            self.raw(&ws);
        }
    }

    /// Writes `t`; `reach` is how much text follows before the next place
    /// a line can break (`t` and the text glued to it).
    fn text(&mut self, t: &str, reach: usize) {
        if t.is_empty() {
            return;
        }
        if self.after_encoded && self.pending.is_empty() && !t.starts_with(')') {
            self.pending = Cow::Borrowed(" ");
        }
        self.space(reach);
        self.raw(t);
        self.has_token = true;
        self.after_encoded = false;
    }

    /// Writes `text` as encoded-words; `tail` is the length of the text
    /// glued to the last one.
    fn encode(&mut self, text: &str, tail: usize) {
        let last = self.out.last().copied();
        if self.pending.is_empty() && !matches!(last, Some(b' ' | b'\t' | b'(')) {
            self.pending = Cow::Borrowed(" ");
        }
        let mut rest = text;
        // The most of `rest` that fits in `room`, leaving room for the
        // tail if it is the last chunk.
        let take = |rest: &str, room: usize| {
            let n = fit(rest, room);
            if n == rest.len() && tail > 0 {
                fit(rest, room.saturating_sub(tail))
            } else {
                n
            }
        };
        while !rest.is_empty() {
            let mut ws = std::mem::take(&mut self.pending);
            if ws.contains('\n') {
                self.raw(&ws);
                ws = Cow::Borrowed("");
            }
            let mut n = take(rest, FOLD_AT.saturating_sub(self.col + ws.len()));
            let small = n < rest.len() && n < MIN_CHUNK;
            if n == 0 || (small && self.has_token) {
                self.raw("\r\n");
                self.raw(if ws.is_empty() { " " } else { &ws });
                n = take(rest, FOLD_AT.saturating_sub(self.col));
            } else {
                self.raw(&ws);
            }
            if n == 0 {
                n = fit(rest, MAX_WORD);
            }
            self.raw(&encoded_word(&rest[..n]));
            self.has_token = true;
            rest = &rest[n..];
            self.pending = Cow::Borrowed(" ");
        }
        self.pending = Cow::Borrowed("");
        self.after_encoded = true;
    }
}

#[cfg(test)]
mod tests;
