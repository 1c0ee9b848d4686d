//! Where encoded-words may go in structured header fields.
//!
//! RFC 2047 §5 allows encoded-words in a display name (a `phrase`) and in a
//! comment, never inside an address or a quoted-string: `"Müller, Hans"
//! <a@x>` must become one encoded-word in place of the whole quoted-string,
//! or its comma would split the mailbox in two. So address fields are cut
//! into RFC 5322 lexical tokens (§3.2), each token gets a role from its place
//! in the address list, and only phrase words and comment text are
//! rewritten; an 8-bit address is refused, since only SMTPUTF8 can carry it.
//! MIME parameters (`Content-Type: ...; name="März.pdf"`) get RFC 2231
//! instead, the one encoding defined for them.

use super::encode::{FOLD_AT, Item, looks_encoded, quoted_pair, text_items, unescape, unfold};
use std::borrow::Cow;

/// Lexical token kinds of a structured field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenKind {
    /// Whitespace, folds included.
    Ws,
    /// `( ... )` with nesting and quoted-pairs.
    Comment,
    /// `" ... "` with quoted-pairs.
    Quoted,
    /// `[ ... ]`
    Literal,
    /// Anything else up to a special or whitespace; dots included, so
    /// `Hans M. Müller` and `a.b@c.d` are whole words.
    Atom,
    /// One of `<>:;@\,` or a stray closing bracket.
    Special,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Token<'a> {
    pub kind: TokenKind,
    pub text: &'a str,
}

/// What an 8-bit token may become.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// A display name or group name: encoded-words allowed.
    Phrase,
    /// Part of an address: must stay as it is.
    Addr,
}

fn is_wsp(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\r' | b'\n')
}

/// Splits a structured field value into tokens. Unterminated quoted
/// strings, comments and literals run to the end of the value.
pub fn tokens(value: &str) -> Vec<Token<'_>> {
    let b = value.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let start = i;
        let kind = match b[i] {
            c if is_wsp(c) => {
                while i < b.len() && is_wsp(b[i]) {
                    i += 1;
                }
                TokenKind::Ws
            }
            b'"' => {
                i = closing(b, i + 1, b'"', None);
                TokenKind::Quoted
            }
            b'(' => {
                i = closing(b, i + 1, b')', Some(b'('));
                TokenKind::Comment
            }
            b'[' => {
                i = closing(b, i + 1, b']', None);
                TokenKind::Literal
            }
            b'<' | b'>' | b':' | b';' | b'@' | b'\\' | b',' | b')' | b']' => {
                i += 1;
                TokenKind::Special
            }
            _ => {
                while i < b.len()
                    && !is_wsp(b[i])
                    && !matches!(
                        b[i],
                        b'"' | b'('
                            | b'['
                            | b'<'
                            | b'>'
                            | b':'
                            | b';'
                            | b'@'
                            | b'\\'
                            | b','
                            | b')'
                            | b']'
                    )
                {
                    i += 1;
                }
                TokenKind::Atom
            }
        };
        // Every boundary above is an ASCII byte, so `i` is a char boundary.
        out.push(Token {
            kind,
            text: &value[start..i],
        });
    }
    out
}

/// The index just past the `close` byte matching an opening one before
/// `i`, honouring quoted-pairs and (for comments) nesting.
fn closing(b: &[u8], mut i: usize, close: u8, nest: Option<u8>) -> usize {
    let mut depth = 1;
    while i < b.len() {
        match b[i] {
            b'\\' if quoted_pair(b, i) => i += 1,
            c if Some(c) == nest => depth += 1,
            c if c == close => {
                depth -= 1;
                if depth == 0 {
                    return i + 1;
                }
            }
            _ => {}
        }
        i += 1;
    }
    b.len()
}

fn special(t: &Token<'_>, c: &str) -> bool {
    t.kind == TokenKind::Special && t.text == c
}

/// Roles in an address list (`From`, `To`, ...). Each mailbox is the run
/// of tokens between `,` `:` `;` outside angle brackets: before a `:` it is
/// a group name; with `<` the words before it are the display name and the
/// rest the address; otherwise, with an `@`, it is a bare address, and
/// without one it is not an address at all and is treated like a name
/// (the ASCII equivalent, such as the unquoted `Mueller, Hans <a@x>`, is
/// forwarded as it is, so the 8-bit one is too, encoded).
pub fn address_roles(tokens: &[Token<'_>]) -> Vec<Role> {
    let mut roles = vec![Role::Addr; tokens.len()];
    let mut start = 0;
    let mut in_angle = false;
    for (i, t) in tokens.iter().enumerate() {
        if t.kind != TokenKind::Special {
            continue;
        }
        match t.text {
            "<" => in_angle = true,
            ">" => in_angle = false,
            ":" if !in_angle => {
                roles[start..i].fill(Role::Phrase);
                start = i + 1;
            }
            "," | ";" if !in_angle => {
                classify(&tokens[start..i], &mut roles[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    classify(&tokens[start..], &mut roles[start..]);
    roles
}

fn classify(seg: &[Token<'_>], roles: &mut [Role]) {
    if let Some(lt) = seg.iter().position(|t| special(t, "<")) {
        roles[..lt].fill(Role::Phrase);
    } else if !seg.iter().any(|t| special(t, "@")) {
        roles.fill(Role::Phrase);
    }
}

/// Why a structured field cannot be repaired.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unrepairable {
    /// 8-bit characters inside an address.
    Address,
    /// 8-bit characters where no encoding is defined.
    Structure,
}

/// Items for a field whose tokens have `roles`: 8-bit phrase words become
/// encoded-words (runs of them joined with their whitespace), 8-bit comment
/// text is encoded inside its parentheses, everything else is kept.
pub fn items<'a>(tokens: &[Token<'a>], roles: &[Role]) -> Result<Vec<Item<'a>>, Unrepairable> {
    let is_word = |t: &Token<'_>| {
        matches!(
            t.kind,
            TokenKind::Atom | TokenKind::Quoted | TokenKind::Literal
        )
    };
    let eight_bit_word = |k: usize| {
        tokens
            .get(k)
            .is_some_and(|t| is_word(t) && !t.text.is_ascii())
    };
    let phrase = |k: usize| roles.get(k) == Some(&Role::Phrase);
    let mut out = Vec::new();
    let mut i = 0;
    while i < tokens.len() {
        let t = tokens[i];
        if t.text.is_ascii() {
            out.push(match t.kind {
                TokenKind::Ws => Item::Ws(t.text),
                _ => Item::Text(Cow::Borrowed(t.text)),
            });
            i += 1;
            continue;
        }
        if t.kind == TokenKind::Comment {
            comment(t.text, &mut out);
            i += 1;
            continue;
        }
        if roles[i] == Role::Addr {
            return Err(Unrepairable::Address);
        }
        if !is_word(&t) {
            return Err(Unrepairable::Structure);
        }
        let mut run = String::new();
        if i >= 2 && tokens[i - 1].kind == TokenKind::Ws && looks_encoded(tokens[i - 2].text) {
            run.push_str(&unfold(tokens[i - 1].text));
        }
        run.push_str(&word_text(&t));
        let mut j = i + 1;
        loop {
            if eight_bit_word(j) && phrase(j) {
                run.push_str(&word_text(&tokens[j]));
                j += 1;
            } else if tokens.get(j).is_some_and(|t| t.kind == TokenKind::Ws)
                && eight_bit_word(j + 1)
                && phrase(j + 1)
            {
                run.push_str(&unfold(tokens[j].text));
                run.push_str(&word_text(&tokens[j + 1]));
                j += 2;
            } else {
                break;
            }
        }
        if tokens.get(j).is_some_and(|t| t.kind == TokenKind::Ws)
            && tokens.get(j + 1).is_some_and(|t| looks_encoded(t.text))
        {
            run.push_str(&unfold(tokens[j].text));
        }
        out.push(Item::Encode(run));
        i = j;
    }
    Ok(out)
}

/// What a phrase word says: a quoted-string without its quotes, escapes
/// and folds.
fn word_text(t: &Token<'_>) -> String {
    match t.kind {
        TokenKind::Quoted => {
            let inner = t.text.strip_prefix('"').unwrap_or(t.text);
            let inner = inner.strip_suffix('"').unwrap_or(inner);
            unescape(&unfold(inner))
        }
        _ => t.text.to_string(),
    }
}

fn comment<'a>(text: &'a str, out: &mut Vec<Item<'a>>) {
    let inner = text.strip_prefix('(').unwrap_or(text);
    let (inner, closed) = match inner.strip_suffix(')') {
        Some(i) if !i.ends_with('\\') || i.ends_with("\\\\") => (i, true),
        _ => (inner, false),
    };
    out.push(Item::Text(Cow::Borrowed("(")));
    out.extend(text_items(inner, true));
    if closed {
        out.push(Item::Text(Cow::Borrowed(")")));
    }
}

/// RFC 2231 extended values are percent-encoded; these pass as they are
/// (`attribute-char`: no space, CTL, `*'%` or tspecial).
fn attribute_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$&+-.^_`|~".contains(&b)
}

/// Items for `Content-Type` / `Content-Disposition`: a parameter whose
/// value has 8-bit characters is rewritten as `attr*=UTF-8''%C3%A4...`
/// (RFC 2231), split into `attr*0*=`, `attr*1*=`, ... when long, never
/// inside a character. 8-bit text anywhere else (the type, a parameter
/// name, a comment) has no defined encoding.
pub fn mime_param_items(value: &str) -> Result<Vec<Item<'_>>, Unrepairable> {
    let toks = tokens(value);
    let mut out = Vec::new();
    for (n, seg) in toks.split(|t| special(t, ";")).enumerate() {
        if n > 0 {
            out.push(Item::Text(Cow::Borrowed(";")));
        }
        if seg.iter().all(|t| t.text.is_ascii()) || n == 0 {
            if seg.iter().any(|t| !t.text.is_ascii()) {
                return Err(Unrepairable::Structure);
            }
            for t in seg {
                out.push(match t.kind {
                    TokenKind::Ws => Item::Ws(t.text),
                    _ => Item::Text(Cow::Borrowed(t.text)),
                });
            }
            continue;
        }
        let first = seg
            .iter()
            .position(|t| t.kind != TokenKind::Ws)
            .unwrap_or(0);
        let last = seg
            .iter()
            .rposition(|t| t.kind != TokenKind::Ws)
            .unwrap_or(0);
        let body = &seg[first..=last];
        if body.iter().any(|t| t.kind == TokenKind::Comment) {
            return Err(Unrepairable::Structure);
        }
        let joined: String = body
            .iter()
            .filter(|t| t.kind != TokenKind::Ws)
            .map(|t| t.text)
            .collect();
        let Some((attr, raw)) = joined.split_once('=') else {
            return Err(Unrepairable::Structure);
        };
        let attr = attr.trim();
        if attr.is_empty() || attr.ends_with('*') || !attr.bytes().all(attribute_char) {
            return Err(Unrepairable::Structure);
        }
        let value = match raw.strip_prefix('"') {
            Some(q) => unescape(&unfold(q.strip_suffix('"').unwrap_or(q))),
            None => raw.to_string(),
        };
        out.extend(seg[..first].iter().map(|t| Item::Ws(t.text)));
        out.extend(rfc2231(attr, &value));
        out.extend(seg[last + 1..].iter().map(|t| Item::Ws(t.text)));
    }
    Ok(out)
}

fn rfc2231<'a>(attr: &str, value: &str) -> Vec<Item<'a>> {
    // Room on a continuation line: the leading space, `attr*N*=`, the
    // charset prefix on the first, and the `;` after it.
    let room = |prefix: usize| FOLD_AT.saturating_sub(2 + attr.len() + prefix).max(12);
    let per_char: Vec<String> = value
        .chars()
        .map(|c| {
            let mut buf = [0; 4];
            c.encode_utf8(&mut buf)
                .bytes()
                .map(|b| {
                    if attribute_char(b) {
                        char::from(b).to_string()
                    } else {
                        format!("%{b:02X}")
                    }
                })
                .collect()
        })
        .collect();
    let total: usize = per_char.iter().map(String::len).sum();
    if total <= room("*=UTF-8''".len()) {
        return vec![Item::Text(Cow::Owned(format!(
            "{attr}*=UTF-8''{}",
            per_char.concat()
        )))];
    }
    let mut out = Vec::new();
    let mut chunk = String::new();
    let mut i = 0;
    let flush = |chunk: &mut String, i: &mut usize, out: &mut Vec<Item<'a>>| {
        if *i > 0 {
            out.push(Item::Text(Cow::Borrowed(";")));
            out.push(Item::Ws(" "));
        }
        let charset = if *i == 0 { "UTF-8''" } else { "" };
        out.push(Item::Text(Cow::Owned(format!(
            "{attr}*{i}*={charset}{chunk}"
        ))));
        chunk.clear();
        *i += 1;
    };
    for enc in &per_char {
        let prefix = format!("*{i}*=").len() + if i == 0 { "UTF-8''".len() } else { 0 };
        if !chunk.is_empty() && chunk.len() + enc.len() > room(prefix) {
            flush(&mut chunk, &mut i, &mut out);
        }
        chunk.push_str(enc);
    }
    flush(&mut chunk, &mut i, &mut out);
    out
}

#[cfg(test)]
mod tests;
