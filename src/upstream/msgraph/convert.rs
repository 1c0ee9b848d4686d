//! Reshaping a message for Microsoft Graph's request limits and options.
//!
//! Graph takes at most 4 MB per request, and its MIME send cannot skip
//! saving to Sent Items. Two conversions follow from that:
//!
//! - [`split_for_draft`]: cuts the largest attachments out of the raw MIME
//!   (byte ranges from mail-parser, so everything else stays byte for byte)
//!   until the rest fits one request; the cut attachments are then added
//!   to the draft one by one.
//! - [`json_message`]: the Graph JSON message resource, used when
//!   `save_to_sent_items = false` (only the JSON send has that switch).

use std::collections::HashMap;

use base64::Engine as _;
use mail_parser::{Address, Message, MimeHeaders, PartType};
use serde_json::{Value, json};

/// An attachment cut out of the draft, to be uploaded separately.
pub struct Offloaded {
    pub name: String,
    pub content_type: String,
    pub content_id: Option<String>,
    pub is_inline: bool,
    /// Decoded content.
    pub bytes: Vec<u8>,
}

impl std::fmt::Debug for Offloaded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Offloaded")
            .field("name", &self.name)
            .field("content_type", &self.content_type)
            .field("size", &self.bytes.len())
            .finish_non_exhaustive()
    }
}

/// Keeps a multipart valid when every child of it is cut out.
const PLACEHOLDER: &[u8] = b"Content-Type: text/plain; charset=us-ascii\r\n\r\n";

/// Length of `n` bytes in base64.
pub fn base64_len(n: usize) -> usize {
    n.div_ceil(3) * 4
}

/// Where a leaf part's removal starts: the CRLF before its delimiter line,
/// unless that CRLF ends the parent's header block.
fn cut_start(raw: &[u8], offset_header: usize, parent_body: usize) -> Option<usize> {
    let before = raw.get(..offset_header)?;
    if !before.ends_with(b"\n") {
        return None;
    }
    let line_start = before[..before.len() - 1]
        .iter()
        .rposition(|&c| c == b'\n')
        .map_or(0, |i| i + 1);
    if !raw.get(line_start..)?.starts_with(b"--") {
        return None;
    }
    if line_start >= parent_body + 2 && raw.get(line_start - 2..line_start) == Some(b"\r\n") {
        Some(line_start - 2)
    } else {
        Some(line_start)
    }
}

fn part_content_type(part: &mail_parser::MessagePart<'_>) -> String {
    match part.content_type() {
        Some(ct) => match ct.subtype() {
            Some(sub) => format!("{}/{}", ct.ctype(), sub).to_ascii_lowercase(),
            None => ct.ctype().to_ascii_lowercase(),
        },
        None => "application/octet-stream".to_string(),
    }
}

fn part_content_id(part: &mail_parser::MessagePart<'_>) -> Option<String> {
    part.content_id()
        .map(|id| {
            id.trim()
                .trim_start_matches('<')
                .trim_end_matches('>')
                .to_string()
        })
        .filter(|id| !id.is_empty())
}

fn part_is_inline(part: &mail_parser::MessagePart<'_>) -> bool {
    match part.content_disposition() {
        Some(d) => d.is_inline(),
        None => part.content_id().is_some(),
    }
}

fn offloaded(part: &mail_parser::MessagePart<'_>, index: usize) -> Offloaded {
    Offloaded {
        name: part
            .attachment_name()
            .map(str::to_string)
            .unwrap_or_else(|| format!("attachment-{index}")),
        content_type: part_content_type(part),
        content_id: part_content_id(part),
        is_inline: part_is_inline(part),
        bytes: part.contents().to_vec(),
    }
}

struct Candidate {
    id: usize,
    start: usize,
    end: usize,
    parent: usize,
}

/// The message with its largest attachments cut out so that its base64
/// form is at most `max_base64` bytes, and the cut attachments. Errors
/// name why no such split exists (they are permanent: the message will
/// not change).
pub fn split_for_draft(
    raw: &[u8],
    parsed: &Message<'_>,
    max_base64: usize,
) -> Result<(Vec<u8>, Vec<Offloaded>), String> {
    let mut parent = HashMap::new();
    let mut children = HashMap::new();
    for (i, part) in parsed.parts.iter().enumerate() {
        if let PartType::Multipart(ch) = &part.body {
            children.insert(i, ch.len());
            for c in ch {
                parent.insert(*c as usize, i);
            }
        }
    }
    let mut candidates: Vec<Candidate> = parsed
        .attachments
        .iter()
        .map(|&id| id as usize)
        .filter_map(|id| {
            let part = parsed.parts.get(id)?;
            let par = *parent.get(&id)?;
            if matches!(part.body, PartType::Multipart(_)) {
                return None;
            }
            let parent_body = parsed.parts.get(par)?.offset_body as usize;
            let end = part.offset_end as usize;
            if !raw.get(end..)?.starts_with(b"\r\n--") {
                return None;
            }
            let start = cut_start(raw, part.offset_header as usize, parent_body)?;
            (start < end).then_some(Candidate {
                id,
                start,
                end,
                parent: par,
            })
        })
        .collect();
    candidates.sort_by_key(|c| std::cmp::Reverse(c.end - c.start));

    let mut remaining = raw.len();
    let mut chosen = Vec::new();
    for c in candidates {
        if base64_len(remaining) <= max_base64 {
            break;
        }
        remaining = remaining - (c.end - c.start) + PLACEHOLDER.len();
        chosen.push(c);
    }
    if base64_len(remaining) > max_base64 {
        return Err(format!(
            "message is {} KiB without the attachments that can be uploaded separately; Graph takes at most {} KiB (base64) per request",
            remaining / 1024,
            max_base64 / 1024
        ));
    }

    let mut removed: HashMap<usize, usize> = HashMap::new();
    let mut edits: Vec<(usize, usize, &[u8])> = Vec::new();
    let mut out_parts = Vec::new();
    for (n, c) in chosen.iter().enumerate() {
        let count = removed.entry(c.parent).or_insert(0);
        *count += 1;
        let part = &parsed.parts[c.id];
        if Some(&*count) == children.get(&c.parent) {
            edits.push((part.offset_header as usize, c.end, PLACEHOLDER));
        } else {
            edits.push((c.start, c.end, b""));
        }
        out_parts.push(offloaded(part, n + 1));
    }
    edits.sort_by_key(|e| e.0);
    let mut out = Vec::with_capacity(remaining);
    let mut pos = 0;
    for (start, end, replacement) in edits {
        out.extend_from_slice(raw.get(pos..start).unwrap_or_default());
        out.extend_from_slice(replacement);
        pos = end;
    }
    out.extend_from_slice(raw.get(pos..).unwrap_or_default());
    if base64_len(out.len()) > max_base64 {
        return Err(format!(
            "message is {} KiB without its separately uploadable attachments; Graph takes at most {} KiB (base64) per request",
            out.len() / 1024,
            max_base64 / 1024
        ));
    }
    Ok((out, out_parts))
}

fn email_address(name: Option<&str>, address: &str) -> Value {
    match name.map(str::trim).filter(|n| !n.is_empty()) {
        Some(n) => json!({"emailAddress": {"name": n, "address": address}}),
        None => json!({"emailAddress": {"address": address}}),
    }
}

fn find_name<'a>(header: Option<&'a Address<'a>>, address: &str) -> Option<Option<&'a str>> {
    header?
        .iter()
        .find(|a| {
            a.address()
                .is_some_and(|x| x.trim().eq_ignore_ascii_case(address))
        })
        .map(|a| a.name())
}

fn list(header: Option<&Address<'_>>) -> Vec<Value> {
    header
        .map(|h| {
            h.iter()
                .filter_map(|a| Some(email_address(a.name(), a.address()?)))
                .collect()
        })
        .unwrap_or_default()
}

/// The Graph `message` resource for `parsed`, addressed to exactly the
/// envelope recipients: those named in To or Cc keep their place and
/// display name, the rest go as Bcc. What the JSON form cannot carry:
/// other headers (Message-ID, References, custom ones) and the MIME
/// structure itself.
pub fn json_message(parsed: &Message<'_>, rcpt_to: &[String]) -> Value {
    let (mut to, mut cc, mut bcc) = (Vec::new(), Vec::new(), Vec::new());
    for r in rcpt_to {
        if let Some(name) = find_name(parsed.to(), r) {
            to.push(email_address(name, r));
        } else if let Some(name) = find_name(parsed.cc(), r) {
            cc.push(email_address(name, r));
        } else {
            bcc.push(email_address(None, r));
        }
    }
    let is_html = parsed
        .html_body
        .first()
        .and_then(|&id| parsed.part(id))
        .is_some_and(|p| matches!(p.body, PartType::Html(_)));
    let body = if is_html {
        json!({"contentType": "HTML", "content": parsed.body_html(0).unwrap_or_default()})
    } else {
        json!({"contentType": "Text", "content": parsed.body_text(0).unwrap_or_default()})
    };
    let attachments: Vec<Value> = parsed
        .attachments()
        .enumerate()
        .map(|(i, part)| {
            let a = offloaded(part, i + 1);
            let mut v = json!({
                "@odata.type": "#microsoft.graph.fileAttachment",
                "name": a.name,
                "contentType": a.content_type,
                "contentBytes": base64::engine::general_purpose::STANDARD.encode(&a.bytes),
                "isInline": a.is_inline,
            });
            if let Some(id) = a.content_id {
                v["contentId"] = Value::from(id);
            }
            v
        })
        .collect();
    let mut message = json!({
        "subject": parsed.subject().unwrap_or_default(),
        "body": body,
        "toRecipients": to,
        "ccRecipients": cc,
        "bccRecipients": bcc,
    });
    if let Some(from) = list(parsed.from()).into_iter().next() {
        message["from"] = from;
    }
    let reply_to = list(parsed.reply_to());
    if !reply_to.is_empty() {
        message["replyTo"] = Value::from(reply_to);
    }
    if !attachments.is_empty() {
        message["attachments"] = Value::from(attachments);
    }
    message
}

#[cfg(test)]
mod tests;
