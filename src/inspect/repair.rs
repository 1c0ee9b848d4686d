//! Header repairs as edits of the raw header block.
//!
//! The message is never re-serialized: removed fields are cut out by byte
//! range, added fields are written before the empty line that ends the
//! header section, and the trace header goes on top. Every other byte
//! (other headers with their folding and case, the separator, the body) is
//! copied unchanged, so what the client sent is what leaves, plus the
//! documented repairs.

use super::headers::Section;
use ring::rand::{SecureRandom, SystemRandom};

/// The edits for one message.
#[derive(Debug, Default)]
pub struct Plan {
    /// Written before the first header (the `Received:` trace header).
    pub prepend: Option<String>,
    /// Lower-cased names of the fields to remove; a trailing `*` matches
    /// every name with that prefix (`x-mailgun-*`).
    pub remove: Vec<String>,
    /// Complete header lines (CRLF-terminated) added at the end of the
    /// header section, in this order.
    pub append: Vec<String>,
}

/// Applies `plan` to `data`, whose header section is `section`.
pub fn apply(data: &[u8], section: &Section, plan: &Plan) -> Vec<u8> {
    let extra = plan.prepend.as_ref().map_or(0, String::len)
        + plan.append.iter().map(String::len).sum::<usize>()
        + 2;
    let mut out = Vec::with_capacity(data.len() + extra);
    if let Some(p) = &plan.prepend {
        out.extend_from_slice(p.as_bytes());
    }
    let mut copied = 0;
    for f in &section.fields {
        let name = section.name(data, f);
        if plan.remove.iter().any(|r| name_matches(r, name)) {
            out.extend_from_slice(data.get(copied..f.range.start).unwrap_or_default());
            copied = f.range.end;
        }
    }
    let end = section.end.min(data.len());
    out.extend_from_slice(data.get(copied..end).unwrap_or_default());
    if !plan.append.is_empty() {
        // Only a header block without any line ending (impossible after
        // DATA, which always ends in CRLF) lacks the CRLF to build on.
        if end > 0 && !data[..end].ends_with(b"\r\n") {
            out.extend_from_slice(b"\r\n");
        }
        for line in &plan.append {
            out.extend_from_slice(line.as_bytes());
        }
    }
    out.extend_from_slice(data.get(end..).unwrap_or_default());
    out
}

/// `pattern` is a lower-cased field name, or a prefix followed by `*`.
pub fn name_matches(pattern: &str, name: &[u8]) -> bool {
    match pattern.strip_suffix('*') {
        Some(prefix) => name
            .get(..prefix.len())
            .is_some_and(|p| p.eq_ignore_ascii_case(prefix.as_bytes())),
        None => name.eq_ignore_ascii_case(pattern.as_bytes()),
    }
}

/// A fresh `<random@hostname>` message identifier (128 random bits).
pub fn new_message_id(hostname: &str, fallback: &str) -> String {
    let mut bytes = [0u8; 16];
    let random = match SystemRandom::new().fill(&mut bytes) {
        Ok(()) => bytes.iter().map(|b| format!("{b:02x}")).collect::<String>(),
        // The queue id is unique too; it only lacks the unpredictability.
        Err(_) => format!("{fallback}.{}", std::process::id()),
    };
    let host: String = hostname
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))
        .collect();
    let host = if host.is_empty() {
        "localhost".to_string()
    } else {
        host
    };
    format!("<{random}@{host}>")
}

#[cfg(test)]
mod tests;
