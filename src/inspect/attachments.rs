//! Attachment policy: blocked file-name extensions and a size cap.
//!
//! Legacy applications get compromised too; a relay that signs and forwards
//! whatever they send would lend its reputation to malware. The check looks
//! at every MIME part at any depth (nested multiparts and attached
//! messages), at every name a part carries (Content-Type `name` and
//! Content-Disposition `filename`, all occurrences, after RFC 2231 / RFC 2047
//! decoding by mail-parser), and at the name the way a desktop would see it:
//! whitespace, control and invisible formatting characters removed, trailing
//! dots dropped, and cut at a NUL.

use mail_parser::{HeaderName, HeaderValue, Message, MessagePart, PartType};

/// Attached messages nested deeper than this are refused: nothing
/// legitimate nests that far, and downstream parsers may recurse.
pub const MAX_NESTING: usize = 32;

/// Why the attachments of a message are refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AttachmentError {
    /// `554 5.7.1`
    #[error("Attachment \"{name}\" blocked (extension .{ext})")]
    Blocked { name: String, ext: String },
    /// `552 5.7.1`
    #[error("Attachment {shown} is {size} bytes; the limit is {max} bytes")]
    TooLarge { shown: String, size: u64, max: u64 },
    /// `554 5.6.0`: postern cannot see inside, so it cannot vouch for it.
    #[error("Attached message (part {part}) cannot be inspected (encoded or nested too deeply)")]
    Uninspectable { part: usize },
    /// `554 5.6.0`
    #[error("Attached messages are nested more than {MAX_NESTING} levels deep")]
    TooDeep,
}

/// What the check enforces.
#[derive(Debug, Clone, Copy)]
pub struct AttachmentRules<'a> {
    /// Lower-cased, without the leading dot.
    pub blocked_extensions: &'a [String],
    pub max_size: Option<u64>,
}

/// Takes the nested messages out of `msg` into a flat list (with their
/// depth), outermost first. mail-parser builds attached messages as a tree
/// without depth limit, and dropping (or walking) a deep tree recursively
/// overflows the stack: a few MiB of nested `message/rfc822` headers would
/// abort the daemon. After this, every `Message` is shallow.
pub fn flatten(msg: Message<'_>) -> Vec<(usize, Message<'_>)> {
    let mut out = Vec::new();
    let mut todo = vec![(0, msg)];
    while let Some((depth, mut m)) = todo.pop() {
        for part in &mut m.parts {
            if matches!(part.body, PartType::Message(_))
                && let PartType::Message(inner) = std::mem::take(&mut part.body)
            {
                todo.push((depth + 1, inner));
            }
        }
        out.push((depth, m));
    }
    out
}

/// Checks every part of every (flattened) message.
pub fn check(
    messages: &[(usize, Message<'_>)],
    policy: AttachmentRules<'_>,
) -> Result<(), AttachmentError> {
    if messages.iter().any(|(depth, _)| *depth > MAX_NESTING) {
        return Err(AttachmentError::TooDeep);
    }
    for (_, msg) in messages {
        for (idx, part) in msg.parts.iter().enumerate() {
            let names = names(part);
            for name in &names {
                if let Some(ext) = blocked_extension(name, policy.blocked_extensions) {
                    return Err(AttachmentError::Blocked {
                        name: name.trim().to_string(),
                        ext: ext.to_string(),
                    });
                }
            }
            // mail-parser leaves an attached message it could not parse
            // (base64-wrapped beyond its depth limit, or garbage) as opaque
            // binary with this flag; only message parts end up that way.
            if part.is_encoding_problem && matches!(part.body, PartType::Binary(_)) {
                return Err(AttachmentError::Uninspectable { part: idx });
            }
            let is_attachment =
                !names.is_empty() || u32::try_from(idx).is_ok_and(|i| msg.attachments.contains(&i));
            if let (Some(max), true) = (policy.max_size, is_attachment) {
                let size = decoded_size(part);
                if size > max {
                    let shown = match names.first() {
                        Some(n) => format!("\"{}\"", n.trim()),
                        None => format!("(unnamed, part {idx})"),
                    };
                    return Err(AttachmentError::TooLarge { shown, size, max });
                }
            }
        }
    }
    Ok(())
}

/// Every file name a part carries, decoded.
fn names<'a>(part: &'a MessagePart<'_>) -> Vec<&'a str> {
    let mut out = Vec::new();
    for h in &part.headers {
        if !matches!(
            h.name,
            HeaderName::ContentType | HeaderName::ContentDisposition
        ) {
            continue;
        }
        if let HeaderValue::ContentType(ct) = &h.value {
            // Either parameter in either header: clients mix them up, and
            // mail readers fall back from one to the other.
            for a in ct.attributes().unwrap_or_default() {
                if a.name == "name" || a.name == "filename" {
                    out.push(a.value.as_ref());
                }
            }
        }
    }
    out
}

/// Leaf size after transfer decoding; containers count as nothing (their
/// parts are checked on their own).
fn decoded_size(part: &MessagePart<'_>) -> u64 {
    let len = match &part.body {
        PartType::Text(t) | PartType::Html(t) => t.len(),
        PartType::Binary(b) | PartType::InlineBinary(b) => b.len(),
        PartType::Message(_) | PartType::Multipart(_) => 0,
    };
    u64::try_from(len).unwrap_or(u64::MAX)
}

/// The blocked extension `name` ends in, if any.
pub fn blocked_extension<'e>(name: &str, blocked: &'e [String]) -> Option<&'e str> {
    if blocked.is_empty() {
        return None;
    }
    // What a system that stops at NUL (or any control character) sees, and
    // what one that drops them sees.
    let cut = name.split(|c: char| c.is_control()).next().unwrap_or("");
    [normalize(cut), normalize(name)].into_iter().find_map(|n| {
        blocked
            .iter()
            .find(|ext| {
                n.len() > ext.len()
                    && n.ends_with(ext.as_str())
                    && n.as_bytes().get(n.len() - ext.len() - 1) == Some(&b'.')
            })
            .map(String::as_str)
    })
}

/// Lower-cased, without whitespace, control and invisible formatting
/// characters (zero-width, bidi overrides), trailing dots and slashes:
/// `"Invoice.e xe. "` and `"invoice.ex\u{200b}e"` both end in `.exe`.
fn normalize(name: &str) -> String {
    let kept: String = name
        .chars()
        .filter(|&c| !c.is_whitespace() && !c.is_control() && !is_invisible(c))
        .collect();
    kept.trim_end_matches(['.', '/', '\\']).to_lowercase()
}

fn is_invisible(c: char) -> bool {
    matches!(c,
        '\u{00AD}' | '\u{034F}' | '\u{061C}' | '\u{115F}' | '\u{1160}' | '\u{17B4}' | '\u{17B5}'
        | '\u{180E}' | '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2060}'..='\u{206F}'
        | '\u{3164}' | '\u{FE00}'..='\u{FE0F}' | '\u{FEFF}' | '\u{FFA0}' | '\u{FFF0}'..='\u{FFF8}')
}

#[cfg(test)]
mod tests;
