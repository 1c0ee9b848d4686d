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
mod tests {
    use super::*;
    use crate::config::test_util::{BASE, load_text};

    fn load(extra: &str) -> Result<Settings, Vec<String>> {
        load_text(&format!("{BASE}{extra}")).map(|c| c.inspect)
    }

    #[test]
    fn defaults_without_table() {
        let c = load("").unwrap();
        assert_eq!(c, Settings::default());
        assert!(c.add_date && c.add_message_id && c.remove_bcc && c.add_received);
        assert!(!c.received_privacy);
        assert_eq!(c.blocked_extensions.len(), 21);
        assert!(c.blocked_extensions.iter().any(|e| e == "exe"));
        assert_eq!(c.max_header_count, 500);
        assert_eq!(c.max_header_size, 262_144);
        assert_eq!(c.max_attachment_size, None);
        assert_eq!(c.header_8bit, Header8bit::Encode);
        assert_eq!(c.legacy_charset.name(), "windows-1252");
        assert_eq!(c.missing_from, MissingFrom::Reject);
    }

    #[test]
    fn bad_8bit_settings_are_located() {
        let e = load("[inspect]\nlegacy_charset = \"klingon\"\n").unwrap_err();
        assert_eq!(e.len(), 1, "{e:?}");
        assert!(
            e[0].starts_with("/etc/p/main.toml:20:18: error: key `inspect.legacy_charset`")
                && e[0].contains("not a known charset label"),
            "{e:?}"
        );
        let e = load("[inspect]\nlegacy_charset = \"utf-16le\"\n").unwrap_err();
        assert!(e[0].contains("not ASCII-compatible"), "{e:?}");
        let e = load("[inspect]\nheader_8bit = \"fix\"\n").unwrap_err();
        assert!(
            e.len() == 1 && e[0].contains(":20:") && e[0].contains("header_8bit"),
            "{e:?}"
        );
        let e = load("[inspect]\nmissing_from = \"add\"\n").unwrap_err();
        assert!(
            e[0].contains("missing_from") && e[0].contains("envelope"),
            "{e:?}"
        );
    }

    #[test]
    fn every_key_is_read() {
        let c = load(
            r#"
[inspect]
add_date = false
add_message_id = false
remove_bcc = false
strip_headers = ["X-Originating-IP", " X-Mailer "]
add_received = false
received_privacy = true
blocked_extensions = [".EXE", "tar.gz"]
max_attachment_size = "10MiB"
max_header_count = 50
max_header_size = "64KiB"
header_8bit = "pass"
legacy_charset = "Latin1"
missing_from = "envelope"
"#,
        )
        .unwrap();
        assert_eq!(
            c,
            Settings {
                add_date: false,
                add_message_id: false,
                remove_bcc: false,
                strip_headers: vec!["x-originating-ip".into(), "x-mailer".into()],
                add_received: false,
                received_privacy: true,
                blocked_extensions: vec!["exe".into(), "tar.gz".into()],
                max_attachment_size: Some(10 << 20),
                max_header_count: 50,
                max_header_size: 64 << 10,
                header_8bit: Header8bit::Pass,
                legacy_charset: encoding_rs::WINDOWS_1252,
                missing_from: MissingFrom::Envelope,
            }
        );
        let c =
            load("[inspect]\nheader_8bit = \"reject\"\nlegacy_charset = \"iso-8859-2\"\n").unwrap();
        assert_eq!(c.header_8bit, Header8bit::Reject);
        assert_eq!(c.legacy_charset, encoding_rs::ISO_8859_2);
        let none = load("[inspect]\nblocked_extensions = []\n").unwrap();
        assert!(none.blocked_extensions.is_empty());
    }

    #[test]
    fn bad_values_are_located() {
        let e = load(
            "[inspect]\nstrip_headers = [\"X Bad\", \"from\"]\nblocked_extensions = [\"*.exe\", \"\"]\nmax_header_count = 0\nmax_attachment_size = 0\nmax_header_size = \"100B\"\n",
        )
        .unwrap_err();
        assert_eq!(e.len(), 7, "{e:?}");
        assert!(
            e[0].starts_with("/etc/p/main.toml:20:18: error: key `inspect.strip_headers`"),
            "{e:?}"
        );
        assert!(e[1].contains("From cannot be stripped"), "{e:?}");
        assert!(
            e[2].contains(":21:23:") && e[2].contains("inspect.blocked_extensions"),
            "{e:?}"
        );
        assert!(
            e.iter()
                .any(|l| l.contains(":22:") && l.contains("max_header_count"))
        );
        assert!(
            e.iter()
                .any(|l| l.contains(":23:") && l.contains("max_attachment_size"))
        );
        assert!(
            e.iter()
                .any(|l| l.contains(":24:") && l.contains("max_header_size"))
        );
    }

    #[test]
    fn unknown_key_is_an_error() {
        let e = load("[inspect]\nblock_extensions = [\"exe\"]\n").unwrap_err();
        assert_eq!(e.len(), 1, "{e:?}");
        assert!(
            e[0].contains("inspect.block_extensions") && e[0].contains("unknown field"),
            "{e:?}"
        );
    }

    #[test]
    fn names_and_extensions() {
        assert_eq!(
            header_name("X-Originating-IP"),
            Ok("x-originating-ip".into())
        );
        assert!(header_name("X:Y").is_err());
        assert!(header_name("FROM").is_err());
        assert_eq!(extension(".Js"), Ok("js".into()));
        assert!(extension("..exe").is_err());
        assert!(extension("e x e").is_err());
    }
}
