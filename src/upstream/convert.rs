//! MIME message → the parts a JSON email API asks for.
//!
//! SendGrid, Postmark and Resend (and Graph's draft path) do not take a raw
//! message: they want sender, recipients, subject, bodies and attachments as
//! separate fields and build the MIME themselves. This module parses the
//! spooled message once (mail-parser) into a provider-neutral
//! [`ParsedMail`]; each provider only maps fields to its JSON names.
//!
//! The envelope decides who receives the message, never the headers: an
//! application may write `To: all-staff@example.com` and hand postern one
//! envelope recipient. [`Recipients::from_envelope`] therefore lists only
//! envelope recipients: those also named in the To (Cc) header stay
//! visible as To (Cc), the others go as Bcc, and header addresses that are
//! not envelope recipients are dropped, because every address a JSON API
//! is given receives a copy.

use mail_parser::{Address, Encoding, Message, MessageParser, MessagePart, MimeHeaders, PartType};

/// One address with its display name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mailbox {
    pub name: Option<String>,
    pub address: String,
}

impl Mailbox {
    pub fn new(name: Option<&str>, address: &str) -> Mailbox {
        let name = name
            .map(|n| n.chars().filter(|c| !c.is_control()).collect::<String>())
            .map(|n| n.trim().to_string())
            .filter(|n| !n.is_empty());
        Mailbox {
            name,
            address: address.trim().to_string(),
        }
    }

    /// `"Name" <addr>`, or the bare address when there is no name.
    pub fn display(&self) -> String {
        match &self.name {
            Some(n) => {
                let quoted = n.replace('\\', "\\\\").replace('"', "\\\"");
                format!("\"{quoted}\" <{}>", self.address)
            }
            None => self.address.clone(),
        }
    }

    /// Comparison key: addresses differing only in case are one mailbox.
    fn key(&self) -> String {
        self.address.to_lowercase()
    }
}

/// One attachment or inline part, decoded to its original bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attachment {
    pub filename: String,
    /// `type/subtype`, lower case, without parameters.
    pub content_type: String,
    pub content: Vec<u8>,
    /// Content-ID without angle brackets (what `cid:` URLs refer to).
    pub content_id: Option<String>,
    /// Shown in the body (an image the HTML refers to), not as a file.
    pub inline: bool,
}

/// A message split into the fields JSON email APIs use.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ParsedMail {
    pub from: Option<Mailbox>,
    pub reply_to: Vec<Mailbox>,
    /// Header To and Cc exactly as written (not who receives the message).
    pub to: Vec<Mailbox>,
    pub cc: Vec<Mailbox>,
    pub subject: Option<String>,
    pub text: Option<String>,
    pub html: Option<String>,
    pub attachments: Vec<Attachment>,
    /// Top-level headers that no structured field carries (Message-ID,
    /// In-Reply-To, References, List-*, X-*), unfolded, in message order.
    pub headers: Vec<(String, String)>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConvertError {
    #[error("message cannot be parsed as MIME")]
    Unparsable,
    #[error("message has no From address and the envelope sender is empty")]
    NoFrom,
    #[error(
        "{provider} needs at least one visible recipient, but none of the {hidden} envelope \
         recipients appears in the To or Cc header; sending them as Bcc would need a To \
         address that is not a recipient"
    )]
    OnlyHidden {
        provider: &'static str,
        hidden: usize,
    },
}

/// Headers that structured fields carry or that the provider writes itself;
/// passing them as custom headers would duplicate or contradict those.
fn is_structural(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    matches!(
        n.as_str(),
        "from"
            | "sender"
            | "to"
            | "cc"
            | "bcc"
            | "reply-to"
            | "subject"
            | "date"
            | "mime-version"
            | "received"
            | "return-path"
            | "dkim-signature"
            | "authentication-results"
            | "received-spf"
            | "delivered-to"
    ) || n.starts_with("content-")
        || n.starts_with("arc-")
}

/// Parses `data` (the spooled message).
pub fn parse(data: &[u8]) -> Result<ParsedMail, ConvertError> {
    let msg = MessageParser::default()
        .parse(data)
        .ok_or(ConvertError::Unparsable)?;
    let list = |a: Option<&Address<'_>>| -> Vec<Mailbox> {
        a.map(|a| {
            a.iter()
                .filter_map(|x| Some(Mailbox::new(x.name(), x.address()?)))
                .filter(|m| !m.address.is_empty())
                .collect()
        })
        .unwrap_or_default()
    };
    let text = join_bodies(&msg, &msg.text_body, false);
    let html = join_bodies(&msg, &msg.html_body, true);
    let mut attachments = Vec::new();
    for (n, part) in msg.attachments().enumerate() {
        if let Some(a) = attachment(&msg, part, n + 1) {
            attachments.push(a);
        }
    }
    let headers = msg
        .headers_raw()
        .filter(|(name, _)| !is_structural(name))
        .map(|(name, value)| (name.to_string(), unfold(value)))
        .collect();
    Ok(ParsedMail {
        from: list(msg.from()).into_iter().next(),
        reply_to: list(msg.reply_to()),
        to: list(msg.to()),
        cc: list(msg.cc()),
        subject: msg.subject().map(str::to_string),
        text,
        html,
        attachments,
        headers,
    })
}

impl ParsedMail {
    /// The From mailbox, or the envelope sender for a message without one.
    pub fn sender(&self, mail_from: &str) -> Result<Mailbox, ConvertError> {
        match &self.from {
            Some(m) => Ok(m.clone()),
            None if !mail_from.is_empty() => Ok(Mailbox::new(None, mail_from)),
            None => Err(ConvertError::NoFrom),
        }
    }

    /// (text, html) for APIs that require a body: a message without one
    /// (a scanner's attachment-only mail) gets a one-space text body.
    pub fn bodies(&self) -> (Option<&str>, Option<&str>) {
        let text = self.text.as_deref().filter(|t| !t.is_empty());
        let html = self.html.as_deref().filter(|h| !h.is_empty());
        match (text, html) {
            (None, None) => (Some(" "), None),
            other => other,
        }
    }

    /// Custom headers minus `deny` (lower-case names), first of duplicates
    /// kept: for APIs that take headers as a JSON object.
    pub fn unique_headers(&self, deny: &[&str]) -> Vec<(&str, &str)> {
        let mut seen: Vec<String> = Vec::new();
        let mut out = Vec::new();
        for (name, value) in &self.headers {
            let lower = name.to_ascii_lowercase();
            if deny.contains(&lower.as_str()) || seen.contains(&lower) {
                continue;
            }
            seen.push(lower);
            out.push((name.as_str(), value.as_str()));
        }
        out
    }
}

/// Who gets the message and how each recipient is shown (module doc).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Recipients {
    pub to: Vec<Mailbox>,
    pub cc: Vec<Mailbox>,
    pub bcc: Vec<Mailbox>,
}

impl Recipients {
    /// Envelope recipients, each placed as To, Cc or Bcc by the headers.
    pub fn from_envelope(mail: &ParsedMail, rcpt_to: &[String]) -> Recipients {
        let mut r = Recipients::default();
        let mut seen: Vec<String> = Vec::new();
        for rcpt in rcpt_to {
            let env = Mailbox::new(None, rcpt);
            if env.address.is_empty() || seen.contains(&env.key()) {
                continue;
            }
            seen.push(env.key());
            let named = |list: &[Mailbox]| list.iter().find(|m| m.key() == env.key()).cloned();
            if let Some(m) = named(&mail.to) {
                r.to.push(Mailbox {
                    address: env.address.clone(),
                    ..m
                });
            } else if let Some(m) = named(&mail.cc) {
                r.cc.push(Mailbox {
                    address: env.address.clone(),
                    ..m
                });
            } else {
                r.bcc.push(env);
            }
        }
        r
    }

    /// For APIs that insist on a To address: Cc recipients move to To when
    /// To is empty; a single hidden recipient becomes the To. Several hidden
    /// recipients and nobody visible cannot be expressed without either a
    /// fake To or showing them to each other, so that is an error.
    pub fn with_visible_to(mut self, provider: &'static str) -> Result<Recipients, ConvertError> {
        if self.to.is_empty() {
            self.to = std::mem::take(&mut self.cc);
        }
        if self.to.is_empty() {
            match self.bcc.len() {
                0 => {}
                1 => self.to = std::mem::take(&mut self.bcc),
                hidden => return Err(ConvertError::OnlyHidden { provider, hidden }),
            }
        }
        Ok(self)
    }
}

/// Concatenated text (or HTML) body parts; mail-parser lists the other
/// kind when one is missing, which would mean a made-up alternative.
fn join_bodies(msg: &Message<'_>, ids: &[u32], html: bool) -> Option<String> {
    let mut out = String::new();
    let mut any = false;
    for id in ids {
        match (msg.part(*id).map(|p| &p.body), html) {
            (Some(PartType::Text(t)), false) | (Some(PartType::Html(t)), true) => {
                out.push_str(t);
                any = true;
            }
            _ => {}
        }
    }
    any.then_some(out)
}

fn attachment(msg: &Message<'_>, part: &MessagePart<'_>, n: usize) -> Option<Attachment> {
    let content = match &part.body {
        PartType::Binary(b) | PartType::InlineBinary(b) => b.to_vec(),
        PartType::Message(m) => m.raw_message().to_vec(),
        // Text was converted to UTF-8; the file's own bytes (a Latin-1 CSV)
        // are what the recipient must get.
        PartType::Text(t) | PartType::Html(t) => {
            original_bytes(msg, part).unwrap_or_else(|| t.as_bytes().to_vec())
        }
        PartType::Multipart(_) => return None,
    };
    let content_type = match part.content_type() {
        Some(ct) => match &ct.c_subtype {
            Some(sub) => format!("{}/{}", ct.c_type, sub),
            None => ct.c_type.to_string(),
        },
        None => match &part.body {
            PartType::Text(_) => "text/plain".into(),
            PartType::Html(_) => "text/html".into(),
            PartType::Message(_) => "message/rfc822".into(),
            _ => "application/octet-stream".into(),
        },
    }
    .to_ascii_lowercase();
    let content_id = part
        .content_id()
        .map(|id| {
            id.trim()
                .trim_start_matches('<')
                .trim_end_matches('>')
                .to_string()
        })
        .filter(|id| !id.is_empty());
    let inline = match part.content_disposition() {
        Some(d) => d.is_inline(),
        None => content_id.is_some(),
    };
    let filename = part
        .attachment_name()
        .map(|f| f.chars().filter(|c| !c.is_control()).collect::<String>())
        .filter(|f| !f.trim().is_empty())
        .unwrap_or_else(|| format!("attachment-{n}{}", extension(&content_type)));
    Some(Attachment {
        filename,
        content_type,
        content,
        content_id,
        inline,
    })
}

/// The part's body bytes with only the transfer encoding undone.
fn original_bytes(msg: &Message<'_>, part: &MessagePart<'_>) -> Option<Vec<u8>> {
    let raw = msg
        .raw_message()
        .get(part.raw_body_offset() as usize..part.raw_end_offset() as usize)?;
    match part.encoding {
        Encoding::Base64 => mail_parser::decoders::base64::base64_decode(raw),
        Encoding::QuotedPrintable => {
            mail_parser::decoders::quoted_printable::quoted_printable_decode(raw)
        }
        Encoding::None => Some(raw.to_vec()),
    }
}

/// A file name extension for unnamed parts, so the recipient's mail client
/// can open them.
fn extension(content_type: &str) -> &'static str {
    match content_type {
        "application/pdf" => ".pdf",
        "image/png" => ".png",
        "image/jpeg" => ".jpg",
        "image/gif" => ".gif",
        "text/plain" => ".txt",
        "text/html" => ".html",
        "text/csv" => ".csv",
        "text/calendar" => ".ics",
        "message/rfc822" => ".eml",
        _ => "",
    }
}

/// RFC 5322 unfolding: the line breaks go, the whitespace stays.
fn unfold(value: &str) -> String {
    value
        .replace("\r\n", "")
        .replace('\n', "")
        .trim()
        .to_string()
}

#[cfg(test)]
pub(crate) mod tests;
