//! Who a message's own headers address, measured against its envelope.
//!
//! The envelope (`RCPT TO`) is the only authority for who receives a
//! message: every recipient control (scopes, `[validation]`, the DNS check,
//! the hook, `max_recipients`, recipient quotas) judged the envelope. Some
//! providers (Microsoft Graph's MIME send, the Gmail API) ignore it and
//! deliver to whatever To/Cc/Bcc say, so an address that only the headers
//! name would bypass every one of those controls.
//!
//! [`header_only`] finds such addresses. It reads each recipient field
//! twice, and an address either reading finds counts: mail-parser's view
//! (groups, comments, encoded display names, unqualified names such as
//! `root`) and a plain scan of the raw field for anything shaped like
//! `local@domain`, so that a field a provider's parser reads differently
//! from mail-parser cannot smuggle an address past the check.
//! [`keep_envelope_only`] rewrites those fields for `header_recipients =
//! "drop"`. Both are pure, so the acceptance stage (at the final dot) and
//! the header-reading upstreams (again, at send time) share them.

use std::collections::HashSet;
use std::fmt;

use mail_parser::{Address, HeaderName, HeaderValue, MessageParser};

use super::headers;

/// `[upstreams.NAME] header_recipients`: what a header-reading upstream
/// does about addresses that only the headers name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum HeaderRecipients {
    /// `550 5.7.1` at the final dot; dead letter if one slips through.
    #[default]
    Refuse,
    /// Remove them from the copy sent to that provider, and log each.
    Drop,
}

/// The fields providers read recipients from, with their usual spelling.
const FIELDS: [(HeaderName<'static>, &str); 6] = [
    (HeaderName::To, "To"),
    (HeaderName::Cc, "Cc"),
    (HeaderName::Bcc, "Bcc"),
    (HeaderName::ResentTo, "Resent-To"),
    (HeaderName::ResentCc, "Resent-Cc"),
    (HeaderName::ResentBcc, "Resent-Bcc"),
];

fn field_of(name: &HeaderName<'_>) -> Option<&'static str> {
    FIELDS.iter().find(|(n, _)| n == name).map(|(_, s)| *s)
}

/// An address a recipient field names that is not an envelope recipient.
/// Display is the text of the `550 5.7.1` reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeaderOnly {
    /// `To`, `Cc`, `Bcc`, `Resent-To`, ...
    pub field: &'static str,
    pub address: String,
}

impl fmt::Display for HeaderOnly {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Recipient <{}> in {}: is not an envelope recipient",
            self.address, self.field
        )
    }
}

impl std::error::Error for HeaderOnly {}

/// Comparison form of an address: quotes and quoted-pairs of the local
/// part removed, lower case, the domain as A-labels when it is an IDN.
fn key(address: &str) -> String {
    let address = address.trim().trim_end_matches('.');
    let (local, domain) = match address.rsplit_once('@') {
        Some((l, d)) => (l, Some(d)),
        None => (address, None),
    };
    let mut out = String::with_capacity(address.len());
    let mut escaped = false;
    for c in local.chars() {
        match c {
            _ if escaped => {
                out.push(c);
                escaped = false;
            }
            '\\' => escaped = true,
            '"' => {}
            c => out.push(c),
        }
    }
    let mut out = out.to_lowercase();
    if let Some(d) = domain {
        out.push('@');
        match crate::validate::address::normalize_domain(d) {
            Ok(n) => out.push_str(&n),
            Err(_) => out.push_str(&d.to_lowercase()),
        }
    }
    out
}

fn envelope_keys(rcpt_to: &[String]) -> HashSet<String> {
    rcpt_to.iter().map(|r| key(r)).collect()
}

/// Every address a To/Cc/Bcc/Resent-To/Resent-Cc/Resent-Bcc field of the
/// top-level header names that is not one of `rcpt_to`, in header order,
/// each once. A message mail-parser cannot read at all is judged by the
/// raw scan alone.
pub fn header_only(data: &[u8], rcpt_to: &[String]) -> Vec<HeaderOnly> {
    let envelope = envelope_keys(rcpt_to);
    let mut out: Vec<HeaderOnly> = Vec::new();
    let mut seen = HashSet::new();
    let mut report = |field: &'static str, address: &str| {
        let k = key(address);
        if !k.is_empty() && !envelope.contains(&k) && seen.insert(k) {
            out.push(HeaderOnly {
                field,
                address: shown(address),
            });
        }
    };
    let parsed = MessageParser::default().parse_headers(data);
    for h in parsed.iter().flat_map(|m| m.headers()) {
        let Some(field) = field_of(&h.name) else {
            continue;
        };
        if let HeaderValue::Address(a) = &h.value {
            for address in named(a) {
                report(field, &address);
            }
        }
    }
    for (field, value) in raw_fields(data) {
        for token in address_tokens(&value) {
            report(field, token);
        }
    }
    out
}

/// What mail-parser sees in an address field.
fn named(a: &Address<'_>) -> Vec<String> {
    a.iter().filter_map(mailbox_address).collect()
}

/// The address of one mailbox as mail-parser read it. A mailbox without
/// an address is an unqualified name (`To: root`), which a provider would
/// try to deliver to as well.
fn mailbox_address(m: &mail_parser::Addr<'_>) -> Option<String> {
    match (m.address(), m.name()) {
        // mail-parser reads `"john.doe"@x` as name `john.doe`, address `@x`.
        (Some(addr), Some(name)) if addr.trim().starts_with('@') => {
            Some(format!("\"{name}\"{}", addr.trim()))
        }
        (Some(addr), _) if !addr.trim().is_empty() => Some(addr.trim().to_string()),
        (_, Some(name)) if !name.trim().is_empty() => Some(name.trim().to_string()),
        _ => None,
    }
}

/// Addresses in replies and logs: no control characters, bounded.
fn shown(address: &str) -> String {
    address
        .chars()
        .filter(|c| !c.is_control())
        .take(256)
        .collect()
}

/// The unfolded values of the top-level recipient fields, from the raw
/// bytes (no decoding of any kind).
fn raw_fields(data: &[u8]) -> Vec<(&'static str, String)> {
    let end = header_end(data);
    let mut out = Vec::new();
    let mut current: Option<(&'static str, String)> = None;
    for line in data[..end].split(|&b| b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.first().is_some_and(|&b| b == b' ' || b == b'\t') {
            if let Some((_, v)) = current.as_mut() {
                v.push(' ');
                v.push_str(&String::from_utf8_lossy(line));
            }
            continue;
        }
        out.extend(current.take());
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            continue;
        };
        let name = String::from_utf8_lossy(&line[..colon]);
        let name = name.trim();
        if let Some((_, field)) = FIELDS.iter().find(|(_, f)| f.eq_ignore_ascii_case(name)) {
            current = Some((
                field,
                String::from_utf8_lossy(&line[colon + 1..]).into_owned(),
            ));
        }
    }
    out.extend(current);
    out
}

/// Offset of the empty line ending the header section (or the length).
fn header_end(data: &[u8]) -> usize {
    let mut pos = 0;
    while pos < data.len() {
        let next = data[pos..]
            .iter()
            .position(|&b| b == b'\n')
            .map_or(data.len(), |i| pos + i + 1);
        let line = &data[pos..next];
        if line == b"\r\n" || line == b"\n" {
            return pos;
        }
        pos = next;
    }
    data.len()
}

/// Every maximal run of characters that no address list gives meaning to
/// and that holds an `@` with text on both sides.
fn address_tokens(value: &str) -> impl Iterator<Item = &str> {
    value
        .split(|c: char| {
            c.is_whitespace()
                || matches!(
                    c,
                    ',' | ';' | '<' | '>' | '(' | ')' | '"' | '\'' | '[' | ']'
                )
        })
        .map(|t| t.trim_matches(|c: char| c == ':' || c == '.'))
        .filter(|t| {
            t.rsplit_once('@')
                .is_some_and(|(l, d)| !l.is_empty() && !d.is_empty())
        })
        .map(|t| t.rsplit_once(':').map_or(t, |(_, a)| a))
}

/// A message rewritten by [`keep_envelope_only`], and what it dropped.
pub type Rewritten = (Vec<u8>, Vec<HeaderOnly>);

/// For `header_recipients = "drop"`: the message with every recipient
/// field rewritten to name only envelope recipients (a field left with
/// none is removed), and what was dropped. `None` when nothing needs
/// dropping. Fields are rebuilt from the envelope's own spelling of each
/// address, so what the provider reads is exactly what RCPT TO accepted.
pub fn keep_envelope_only(data: &[u8], rcpt_to: &[String]) -> Result<Option<Rewritten>, String> {
    let dropped = header_only(data, rcpt_to);
    if dropped.is_empty() {
        return Ok(None);
    }
    let section = headers::scan(
        data,
        headers::ScanLimits {
            max_count: usize::MAX,
            max_size: usize::MAX,
            smtputf8: true,
            // Already inspected: whatever 8-bit text is left was let through.
            eight_bit: crate::inspect::Header8bit::Pass,
        },
    )
    .map_err(|e| format!("cannot rewrite the recipient headers: {e}"))?;
    let parsed = MessageParser::default()
        .parse_headers(data)
        .ok_or("cannot rewrite the recipient headers: message cannot be parsed")?;
    let by_key: Vec<(String, &String)> = rcpt_to.iter().map(|r| (key(r), r)).collect();
    let mut out = Vec::with_capacity(data.len());
    let mut pos = 0;
    for f in &section.fields {
        let Some(field) = FIELDS
            .iter()
            .find(|(_, n)| section.name(data, f).eq_ignore_ascii_case(n.as_bytes()))
            .map(|(_, n)| *n)
        else {
            continue;
        };
        out.extend_from_slice(&data[pos..f.range.start]);
        pos = f.range.end;
        let value = parsed
            .headers()
            .iter()
            .find(|h| h.offset_field as usize == f.name.start)
            .map(|h| &h.value);
        let kept: Vec<String> = match value {
            Some(HeaderValue::Address(a)) => a
                .iter()
                .filter_map(|m| {
                    let k = key(&mailbox_address(m)?);
                    let (_, addr) = by_key.iter().find(|(e, _)| *e == k)?;
                    Some(mailbox(m.name(), addr))
                })
                .collect(),
            _ => Vec::new(),
        };
        if !kept.is_empty() {
            out.extend_from_slice(format!("{field}: {}\r\n", kept.join(",\r\n ")).as_bytes());
        }
    }
    out.extend_from_slice(&data[pos..]);
    let left = header_only(&out, rcpt_to);
    if !left.is_empty() {
        return Err(format!(
            "recipient headers still name {} after the rewrite",
            left[0].address
        ));
    }
    Ok(Some((out, dropped)))
}

/// `"Name" <addr>` (RFC 2047 for a non-ASCII name) or `<addr>`.
fn mailbox(name: Option<&str>, address: &str) -> String {
    let name = name
        .map(|n| n.chars().filter(|c| !c.is_control()).collect::<String>())
        .filter(|n| !n.trim().is_empty());
    match name {
        None => format!("<{address}>"),
        Some(n) if n.is_ascii() => {
            let quoted = n.trim().replace('\\', "\\\\").replace('"', "\\\"");
            format!("\"{quoted}\" <{address}>")
        }
        Some(n) => format!("{} <{address}>", encoded_words(n.trim())),
    }
}

/// RFC 2047 B encoding of `text` in UTF-8: encoded-words of at most 75
/// characters (45 bytes of text each, never splitting a character),
/// folded onto their own lines.
fn encoded_words(text: &str) -> String {
    use base64::Engine as _;
    const MAX_BYTES: usize = 45;
    let mut words = Vec::new();
    let mut start = 0;
    while start < text.len() {
        let mut end = (start + MAX_BYTES).min(text.len());
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        let chunk = &text.as_bytes()[start..end];
        words.push(format!(
            "=?utf-8?b?{}?=",
            base64::engine::general_purpose::STANDARD.encode(chunk)
        ));
        start = end;
    }
    words.join("\r\n ")
}

#[cfg(test)]
mod tests;
