//! What `[inspect]` configures, as inspection uses it: built by `config`,
//! owned here.

use encoding_rs::Encoding;
use serde::Deserialize;

/// Attachment extensions refused unless `blocked_extensions` says otherwise:
/// executables, scripts, installers, shortcuts and disk images that mail
/// clients open with one click.
pub const DEFAULT_BLOCKED_EXTENSIONS: &[&str] = &[
    "exe", "scr", "com", "pif", "bat", "cmd", "js", "jse", "vbs", "vbe", "wsf", "hta", "msi",
    "msp", "lnk", "ps1", "jar", "cpl", "reg", "iso", "img",
];

/// Default cap on the number of header fields of one message.
pub const DEFAULT_MAX_HEADER_COUNT: usize = 500;

/// Default cap on the size of the header section (256 KiB).
pub const DEFAULT_MAX_HEADER_SIZE: usize = 256 << 10;

/// What to do with 8-bit bytes in the header of a message sent without
/// SMTPUTF8 (old PHP `mail()`, ERPs and Windows tools write raw UTF-8 or
/// Latin-1 there).
#[derive(Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum Header8bit {
    /// Rewrite the text as RFC 2047 encoded-words (RFC 2231 for MIME
    /// parameters); refuse what cannot be encoded (an 8-bit address).
    #[default]
    Encode,
    /// Forward raw UTF-8 (RFC 6532) unchanged; refuse anything else.
    Pass,
    /// `554 5.6.0`, as postern did before `header_8bit` existed.
    Reject,
}

/// What to do with a message that has no `From:` header.
#[derive(Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum MissingFrom {
    /// `554 5.6.0 Message has no From header`.
    #[default]
    Reject,
    /// Add `From: <envelope sender>` (held to the From policy like a From
    /// the client wrote); a null sender `<>` is still refused.
    Envelope,
}

/// The default `legacy_charset`: the WHATWG superset of Latin-1 that
/// Windows software actually writes.
pub const DEFAULT_LEGACY_CHARSET: &Encoding = encoding_rs::WINDOWS_1252;

/// The validated `[inspect]` settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// Add a `Date:` header when the client sent none.
    pub add_date: bool,
    /// Add a `Message-ID:` header when the client sent none.
    pub add_message_id: bool,
    /// Remove `Bcc:` and `Resent-Bcc:` headers.
    pub remove_bcc: bool,
    /// Header field names to remove, lower-cased.
    pub strip_headers: Vec<String>,
    /// Prepend a `Received:` trace header.
    pub add_received: bool,
    /// Leave the client's address and HELO name out of `Received:`.
    pub received_privacy: bool,
    /// Refused attachment extensions, lower-cased, without the leading dot.
    pub blocked_extensions: Vec<String>,
    /// Largest decoded size of one attachment; `None` for no limit.
    pub max_attachment_size: Option<u64>,
    pub max_header_count: usize,
    pub max_header_size: usize,
    pub header_8bit: Header8bit,
    /// How 8-bit header text that is not valid UTF-8 is decoded.
    pub legacy_charset: &'static Encoding,
    pub missing_from: MissingFrom,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            add_date: true,
            add_message_id: true,
            remove_bcc: true,
            strip_headers: Vec::new(),
            add_received: true,
            received_privacy: false,
            blocked_extensions: DEFAULT_BLOCKED_EXTENSIONS
                .iter()
                .map(|e| e.to_string())
                .collect(),
            max_attachment_size: None,
            max_header_count: DEFAULT_MAX_HEADER_COUNT,
            max_header_size: DEFAULT_MAX_HEADER_SIZE,
            header_8bit: Header8bit::default(),
            legacy_charset: DEFAULT_LEGACY_CHARSET,
            missing_from: MissingFrom::default(),
        }
    }
}
