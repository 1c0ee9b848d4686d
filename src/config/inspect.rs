//! `[inspect]`: message checks and header repairs.
//!
//! Every key has a default that suits a relay for legacy clients (repairs
//! on, dangerous attachment types blocked), so most operators never write
//! this table; the validation here exists so a typo in a header name or an
//! extension is reported at its line instead of silently never matching.

use super::error::{ConfigError, ConfigErrors};
use super::load::{File, singleton};
use super::units::Size;
use crate::inspect::{Header8bit, MissingFrom, Settings};
use encoding_rs::Encoding;
use serde::Deserialize;
use toml::Spanned;

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawInspect {
    pub add_date: Option<bool>,
    pub add_message_id: Option<bool>,
    pub remove_bcc: Option<bool>,
    pub strip_headers: Option<Vec<Spanned<String>>>,
    pub add_received: Option<bool>,
    pub received_privacy: Option<bool>,
    pub blocked_extensions: Option<Vec<Spanned<String>>>,
    pub max_attachment_size: Option<Spanned<Size>>,
    pub max_header_count: Option<Spanned<usize>>,
    pub max_header_size: Option<Spanned<Size>>,
    pub header_8bit: Option<Header8bit>,
    pub legacy_charset: Option<Spanned<String>>,
    pub missing_from: Option<MissingFrom>,
}

pub(super) fn build(files: &[File], errors: &mut ConfigErrors) -> Settings {
    let mut out = Settings::default();
    let Some((f, raw)) = singleton(files, "inspect", |r| r.inspect.as_ref(), errors) else {
        return out;
    };
    let mut push = |s: &Spanned<String>, key: &str, msg: String| {
        errors.push(ConfigError::new(f.loc(s), format!("inspect.{key}"), msg));
    };
    out.add_date = raw.add_date.unwrap_or(out.add_date);
    out.add_message_id = raw.add_message_id.unwrap_or(out.add_message_id);
    out.remove_bcc = raw.remove_bcc.unwrap_or(out.remove_bcc);
    out.add_received = raw.add_received.unwrap_or(out.add_received);
    out.received_privacy = raw.received_privacy.unwrap_or(out.received_privacy);
    if let Some(list) = &raw.strip_headers {
        out.strip_headers.clear();
        for h in list {
            match header_name(h.get_ref()) {
                Ok(name) => out.strip_headers.push(name),
                Err(e) => push(h, "strip_headers", e),
            }
        }
    }
    if let Some(list) = &raw.blocked_extensions {
        out.blocked_extensions.clear();
        for e in list {
            match extension(e.get_ref()) {
                Ok(ext) => out.blocked_extensions.push(ext),
                Err(msg) => push(e, "blocked_extensions", msg),
            }
        }
    }
    if let Some(s) = &raw.max_attachment_size {
        if s.get_ref().0 == 0 {
            errors.push(ConfigError::new(
                f.loc(s),
                "inspect.max_attachment_size",
                "must be a positive size such as \"10MiB\"; leave it out for no limit",
            ));
        }
        out.max_attachment_size = Some(s.get_ref().0);
    }
    if let Some(n) = &raw.max_header_count {
        if *n.get_ref() == 0 {
            errors.push(ConfigError::new(
                f.loc(n),
                "inspect.max_header_count",
                "must be at least 1",
            ));
        }
        out.max_header_count = *n.get_ref();
    }
    if let Some(s) = &raw.max_header_size {
        // Below 1 KiB even a minimal From/To/Subject/Date block is refused.
        if s.get_ref().0 < 1024 {
            errors.push(ConfigError::new(
                f.loc(s),
                "inspect.max_header_size",
                "must be at least 1KiB",
            ));
        }
        out.max_header_size = usize::try_from(s.get_ref().0).unwrap_or(usize::MAX);
    }
    out.header_8bit = raw.header_8bit.unwrap_or(out.header_8bit);
    out.missing_from = raw.missing_from.unwrap_or(out.missing_from);
    if let Some(label) = &raw.legacy_charset {
        match legacy_charset(label.get_ref()) {
            Ok(enc) => out.legacy_charset = enc,
            Err(msg) => errors.push(ConfigError::new(
                f.loc(label),
                "inspect.legacy_charset",
                msg,
            )),
        }
    }
    out
}

/// A WHATWG encoding label (`"windows-1252"`, `"latin1"`, `"iso-8859-2"`,
/// `"shift_jis"`, ...) whose ASCII bytes mean ASCII, so that the structure of
/// a header (colons, brackets, `@`) reads the same before and after decoding.
fn legacy_charset(label: &str) -> Result<&'static Encoding, String> {
    match Encoding::for_label_no_replacement(label.trim().as_bytes()) {
        Some(enc) if enc.is_ascii_compatible() => Ok(enc),
        Some(enc) => Err(format!(
            "{label:?} ({}) is not ASCII-compatible, so header structure could not be read in it; use a charset such as \"windows-1252\" or \"iso-8859-2\"",
            enc.name()
        )),
        None => Err(format!(
            "{label:?} is not a known charset label (WHATWG Encoding Standard), e.g. \"windows-1252\", \"iso-8859-15\", \"koi8-r\""
        )),
    }
}

/// Lower-cased header field name (RFC 5322 `ftext`), or why it is not one.
fn header_name(raw: &str) -> Result<String, String> {
    let name = raw.trim();
    if name.is_empty() || !name.bytes().all(|b| (33..=126).contains(&b) && b != b':') {
        return Err(format!(
            "{raw:?} is not a header field name (printable ASCII without spaces or ':', e.g. \"X-Originating-IP\")"
        ));
    }
    if name.eq_ignore_ascii_case("from") {
        return Err(
            "From cannot be stripped: every message needs exactly one (and DKIM signs it)"
                .to_string(),
        );
    }
    Ok(name.to_ascii_lowercase())
}

/// Lower-cased extension without its leading dot, or why it is not one.
fn extension(raw: &str) -> Result<String, String> {
    let trimmed = raw.trim();
    let ext = trimmed.strip_prefix('.').unwrap_or(trimmed);
    let valid = !ext.is_empty()
        && !ext.starts_with('.')
        && !ext.ends_with('.')
        && ext
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_' | b'~' | b'$'));
    if valid {
        Ok(ext.to_ascii_lowercase())
    } else {
        Err(format!(
            "{raw:?} is not a file extension (letters and digits, e.g. \"exe\" or \"tar.gz\"; no wildcards)"
        ))
    }
}

#[cfg(test)]
mod tests;
