//! `[inspect] header_8bit`: 8-bit header text from clients that did not
//! announce SMTPUTF8.
//!
//! Old PHP `mail()`, ERPs and Windows tools write `Subject: Rechnung für
//! März` in raw UTF-8 or Latin-1; Postfix and the other relays accept it, so
//! a relay that refuses it breaks mail that used to work. Under `encode`
//! (the default) each marked field is decoded (as UTF-8 when it is valid
//! UTF-8, else with `legacy_charset`) and rewritten as RFC 2047
//! encoded-words where RFC 2047 allows them, RFC 2231 for MIME parameters;
//! what no encoding can express (an 8-bit address, a Message-ID) is refused,
//! naming the header. Under `pass` the bytes stay, but an 8-bit address is
//! still refused. This runs before everything else looks at the header, so
//! the From policy, the attachment names and the DKIM signature all see the
//! repaired fields.

use super::encode::{self, Item};
use super::headers::{HeaderError, Section};
use super::structured::{self, Role, Unrepairable};
use encoding_rs::Encoding;
use std::borrow::Cow;

/// What a field's value is, for the purpose of encoding 8-bit text in it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Shape {
    /// `Subject`, `Comments`, and every field postern does not know (as
    /// most MTAs treat them): encoded-words for any 8-bit word.
    Unstructured,
    /// Mailbox and address lists: display names and comments only.
    Addresses,
    /// `Keywords`: a list of phrases.
    Phrases,
    /// `Content-Type`, `Content-Disposition`: RFC 2231 parameters.
    MimeParams,
    /// Structured fields with no place for encoded text.
    Fixed,
}

fn shape(name: &[u8]) -> Shape {
    const ADDRESSES: &[&str] = &[
        "from",
        "sender",
        "reply-to",
        "to",
        "cc",
        "bcc",
        "resent-from",
        "resent-sender",
        "resent-reply-to",
        "resent-to",
        "resent-cc",
        "resent-bcc",
        "disposition-notification-to",
        "return-receipt-to",
        "errors-to",
        "mail-followup-to",
        "mail-reply-to",
        "apparently-to",
    ];
    const FIXED: &[&str] = &[
        "date",
        "resent-date",
        "message-id",
        "resent-message-id",
        "in-reply-to",
        "references",
        "received",
        "return-path",
        "mime-version",
        "content-transfer-encoding",
        "content-id",
        "content-location",
        "content-language",
        "content-md5",
        "dkim-signature",
        "domainkey-signature",
        "arc-seal",
        "arc-message-signature",
        "arc-authentication-results",
        "authentication-results",
        "received-spf",
        "list-id",
        "list-unsubscribe",
        "list-unsubscribe-post",
        "list-subscribe",
        "list-post",
        "list-help",
        "list-owner",
        "list-archive",
        "auto-submitted",
        "original-recipient",
        "importance",
        "priority",
        "sensitivity",
    ];
    let is = |list: &[&str]| list.iter().any(|n| name.eq_ignore_ascii_case(n.as_bytes()));
    if is(ADDRESSES) {
        Shape::Addresses
    } else if name.eq_ignore_ascii_case(b"keywords") {
        Shape::Phrases
    } else if name.eq_ignore_ascii_case(b"content-type")
        || name.eq_ignore_ascii_case(b"content-disposition")
    {
        Shape::MimeParams
    } else if is(FIXED) {
        Shape::Fixed
    } else {
        Shape::Unstructured
    }
}

/// What the repair needs besides the message.
#[derive(Debug, Clone, Copy)]
pub struct Options<'a> {
    /// Decodes 8-bit text that is not valid UTF-8.
    pub charset: &'static Encoding,
    /// Lower-cased names of fields that will be removed anyway
    /// (`remove_bcc`, `strip_headers`): left alone, never refused.
    pub removed: &'a [String],
}

/// One marked field, split up.
struct Marked<'d> {
    name: &'d [u8],
    /// The name and colon, as sent.
    head: &'d [u8],
    /// The value after the colon, without the final CRLF.
    value: &'d [u8],
    line: usize,
}

fn marked<'d>(
    data: &'d [u8],
    section: &Section,
    removed: &[String],
) -> impl Iterator<Item = (std::ops::Range<usize>, Marked<'d>)> {
    let fields: Vec<_> = section
        .fields
        .iter()
        .filter(|f| f.eight_bit)
        .filter(|f| {
            let name = section.name(data, f);
            !removed.iter().any(|r| super::repair::name_matches(r, name))
        })
        .map(|f| (f.range.clone(), f.name.clone()))
        .collect();
    fields.into_iter().filter_map(move |(range, name)| {
        let raw = data.get(range.clone())?;
        let colon = raw.iter().position(|&b| b == b':')?;
        let value = &raw[colon + 1..];
        let value = value.strip_suffix(b"\r\n").unwrap_or(value);
        let line = 1 + data[..range.start].iter().filter(|&&b| b == b'\n').count();
        let m = Marked {
            name: data.get(name)?,
            head: &raw[..=colon],
            value,
            line,
        };
        Some((range, m))
    })
}

impl Marked<'_> {
    fn name(&self) -> String {
        String::from_utf8_lossy(self.name).into_owned()
    }

    fn error(&self, why: Unrepairable) -> HeaderError {
        let (name, line) = (self.name(), self.line);
        match why {
            Unrepairable::Address => HeaderError::EightBitAddress { name, line },
            Unrepairable::Structure => HeaderError::EightBitStructured { name, line },
        }
    }
}

/// `header_8bit = "encode"`: the message with every marked field rewritten
/// in ASCII; all other bytes are copied unchanged.
pub fn repair(data: &[u8], section: &Section, opts: Options<'_>) -> Result<Vec<u8>, HeaderError> {
    let mut out = Vec::with_capacity(data.len() + 512);
    let mut copied = 0;
    for (range, m) in marked(data, section, opts.removed) {
        let value = decode(m.value, opts.charset).ok_or_else(|| HeaderError::Undecodable {
            name: m.name(),
            line: m.line,
            charset: opts.charset.name().to_string(),
        })?;
        let items: Vec<Item<'_>> = match shape(m.name) {
            Shape::Unstructured => encode::text_items(&value, false),
            Shape::Addresses => {
                let toks = structured::tokens(&value);
                structured::items(&toks, &structured::address_roles(&toks))
                    .map_err(|e| m.error(e))?
            }
            Shape::Phrases => {
                let toks = structured::tokens(&value);
                structured::items(&toks, &vec![Role::Phrase; toks.len()]).map_err(|e| m.error(e))?
            }
            Shape::MimeParams => structured::mime_param_items(&value).map_err(|e| m.error(e))?,
            Shape::Fixed => return Err(m.error(Unrepairable::Structure)),
        };
        out.extend_from_slice(data.get(copied..range.start).unwrap_or_default());
        encode::write_field(m.head, &items, &mut out);
        copied = range.end;
    }
    out.extend_from_slice(data.get(copied..).unwrap_or_default());
    Ok(out)
}

/// `header_8bit = "pass"`: the (UTF-8, as the scan made sure) fields stay
/// as they are, but an address with 8-bit characters still needs SMTPUTF8.
pub fn vet(data: &[u8], section: &Section, removed: &[String]) -> Result<(), HeaderError> {
    for (_, m) in marked(data, section, removed) {
        if shape(m.name) != Shape::Addresses {
            continue;
        }
        let value = String::from_utf8_lossy(m.value);
        let toks = structured::tokens(&value);
        let roles = structured::address_roles(&toks);
        if toks.iter().zip(&roles).any(|(t, r)| {
            *r == Role::Addr && !t.text.is_ascii() && t.kind != structured::TokenKind::Comment
        }) {
            return Err(m.error(Unrepairable::Address));
        }
    }
    Ok(())
}

/// The text of an 8-bit value: UTF-8 when it is valid UTF-8 (a Latin-1
/// value almost never is), else `charset`; `None` when it is neither.
fn decode<'a>(raw: &'a [u8], charset: &'static Encoding) -> Option<Cow<'a, str>> {
    if let Ok(s) = std::str::from_utf8(raw) {
        return Some(Cow::Borrowed(s));
    }
    let (text, had_errors) = charset.decode_without_bom_handling(raw);
    (!had_errors).then_some(text)
}

#[cfg(test)]
mod tests;
