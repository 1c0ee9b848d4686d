//! The top-level header section as raw byte ranges, and its sanity checks.
//!
//! Repairs must leave every byte they do not touch exactly as the client
//! sent it (and as a DKIM signature will cover it), so they work on byte
//! ranges of the original header block, never on a re-serialized message.
//! The same single pass enforces the limits that keep a hostile header
//! block from reaching the parser or a downstream system: NUL, overlong
//! lines, too many or too large headers, 8-bit text the `header_8bit`
//! setting does not allow, and lines that are not header fields at all
//! (which parsers disagree about, the classic way to smuggle a second From
//! past a filter). Fields with 8-bit text that [`super::eightbit`] must
//! repair or vet are marked, so a message without any costs nothing more.

use crate::inspect::Header8bit;
use std::ops::Range;

/// RFC 5322 2.1.1: a line is at most 998 octets, excluding the CRLF.
pub const MAX_LINE: usize = 998;

/// Why a header section is refused (`554 5.6.0`). Line numbers are 1-based
/// message lines, so an operator can find them in the client's output.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HeaderError {
    #[error("Header line {line} contains a NUL byte")]
    Nul { line: usize },
    #[error("Header line {line} is {len} octets long; the limit is 998 (RFC 5322)")]
    LineTooLong { line: usize, len: usize },
    #[error("Too many header fields (more than {max})")]
    TooMany { max: usize },
    #[error("Header section is larger than {max} octets")]
    TooLarge { max: usize },
    #[error("Header line {line} contains 8-bit characters; use SMTPUTF8 or encode them (RFC 2047)")]
    EightBit { line: usize },
    #[error("Header line {line} is not valid UTF-8")]
    NotUtf8 { line: usize },
    /// Only SMTPUTF8 can carry an address with 8-bit characters.
    #[error(
        "Header {name} (line {line}) contains an 8-bit address; use SMTPUTF8 or an ASCII address"
    )]
    EightBitAddress { name: String, line: usize },
    /// 8-bit text in a field that has no encoding for it (Message-ID,
    /// Date, Received, ...).
    #[error(
        "Header {name} (line {line}) contains 8-bit characters, which this header cannot carry without SMTPUTF8"
    )]
    EightBitStructured { name: String, line: usize },
    /// 8-bit text that is neither UTF-8 nor valid in `legacy_charset`.
    #[error("Header {name} (line {line}) is neither UTF-8 nor valid {charset}")]
    Undecodable {
        name: String,
        line: usize,
        charset: String,
    },
    #[error("Header line {line} has a bare CR or LF")]
    BareNewline { line: usize },
    #[error("Header line {line} is not a header field (no name and colon)")]
    NotAField { line: usize },
    #[error("Header line {line} has an invalid field name")]
    BadName { line: usize },
    /// The raw scan and mail-parser disagree on where the body starts.
    #[error("Header section cannot be parsed unambiguously")]
    Ambiguous,
}

/// ScanLimits applied while scanning.
#[derive(Debug, Clone, Copy)]
pub struct ScanLimits {
    pub max_count: usize,
    pub max_size: usize,
    /// The client announced SMTPUTF8, so UTF-8 header text is allowed.
    pub smtputf8: bool,
    /// What 8-bit text is allowed otherwise (`[inspect] header_8bit`).
    pub eight_bit: Header8bit,
}

/// One header field: its (trimmed) name and its whole extent including
/// continuation lines and the final CRLF.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Field {
    pub name: Range<usize>,
    pub range: Range<usize>,
    /// Has 8-bit text that `header_8bit` repairs (`encode`) or vets
    /// (`pass`); text that SMTPUTF8 allows is not marked.
    pub eight_bit: bool,
}

/// The header section of a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Section {
    pub fields: Vec<Field>,
    /// Offset of the empty line that ends the section (or the message length
    /// when there is none): the body, with its separator, starts here.
    pub end: usize,
}

impl Section {
    pub fn name<'a>(&self, data: &'a [u8], f: &Field) -> &'a [u8] {
        data.get(f.name.clone()).unwrap_or_default()
    }

    /// How many fields are called `name` (ASCII case-insensitive).
    pub fn count(&self, data: &[u8], name: &str) -> usize {
        self.fields
            .iter()
            .filter(|f| self.name(data, f).eq_ignore_ascii_case(name.as_bytes()))
            .count()
    }
}

/// Splits and checks the header section of `data` (CRLF line endings).
pub fn scan(data: &[u8], limits: ScanLimits) -> Result<Section, HeaderError> {
    let mut fields: Vec<Field> = Vec::new();
    let mut pos = 0;
    let mut line = 0;
    loop {
        if pos >= data.len() {
            return Ok(Section {
                fields,
                end: data.len(),
            });
        }
        let rest = &data[pos..];
        let (content_len, next) = match rest.iter().position(|&b| b == b'\n') {
            Some(nl) => (nl, pos + nl + 1),
            None => (rest.len(), data.len()),
        };
        line += 1;
        let mut content = &rest[..content_len];
        if content_len < rest.len() {
            // A line ended by LF must have its CR; anything else is a bare LF.
            match content.split_last() {
                Some((b'\r', c)) => content = c,
                _ => return Err(HeaderError::BareNewline { line }),
            }
        }
        if content.is_empty() {
            return Ok(Section { fields, end: pos });
        }
        if next > limits.max_size {
            return Err(HeaderError::TooLarge {
                max: limits.max_size,
            });
        }
        let eight_bit = check_line(content, line, limits)?;
        if matches!(content[0], b' ' | b'\t') {
            match fields.last_mut() {
                Some(f) => {
                    f.range.end = next;
                    f.eight_bit |= eight_bit;
                }
                None => return Err(HeaderError::NotAField { line }),
            }
        } else {
            let colon = content
                .iter()
                .position(|&b| b == b':')
                .ok_or(HeaderError::NotAField { line })?;
            let name = trim_end_wsp(&content[..colon]);
            if name.is_empty() || !name.iter().all(|&b| (33..=126).contains(&b)) {
                return Err(HeaderError::BadName { line });
            }
            if fields.len() >= limits.max_count {
                return Err(HeaderError::TooMany {
                    max: limits.max_count,
                });
            }
            fields.push(Field {
                name: pos..pos + name.len(),
                range: pos..next,
                eight_bit,
            });
        }
        pos = next;
    }
}

/// Checks one line; `Ok(true)` when its 8-bit text is for
/// [`super::eightbit`] to repair or vet.
fn check_line(content: &[u8], line: usize, limits: ScanLimits) -> Result<bool, HeaderError> {
    if content.len() > MAX_LINE {
        return Err(HeaderError::LineTooLong {
            line,
            len: content.len(),
        });
    }
    if content.contains(&0) {
        return Err(HeaderError::Nul { line });
    }
    if content.contains(&b'\r') {
        return Err(HeaderError::BareNewline { line });
    }
    if content.is_ascii() {
        return Ok(false);
    }
    let utf8 = std::str::from_utf8(content).is_ok();
    match (limits.smtputf8, limits.eight_bit) {
        // RFC 6532 with SMTPUTF8: forwarded as it is.
        (true, _) if utf8 => Ok(false),
        (false, Header8bit::Pass) if utf8 => Ok(true),
        // Latin-1 and friends: decoded and encoded, SMTPUTF8 or not.
        (_, Header8bit::Encode) => Ok(true),
        (false, Header8bit::Reject) => Err(HeaderError::EightBit { line }),
        _ => Err(HeaderError::NotUtf8 { line }),
    }
}

fn trim_end_wsp(b: &[u8]) -> &[u8] {
    let keep = b
        .iter()
        .rposition(|&c| c != b' ' && c != b'\t')
        .map_or(0, |i| i + 1);
    &b[..keep]
}

#[cfg(test)]
mod tests;
