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
pub struct Policy<'a> {
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
pub fn check(messages: &[(usize, Message<'_>)], policy: Policy<'_>) -> Result<(), AttachmentError> {
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
mod tests {
    use super::*;
    use mail_parser::MessageParser;

    fn exts() -> Vec<String> {
        crate::inspect::DEFAULT_BLOCKED_EXTENSIONS
            .iter()
            .map(|s| s.to_string())
            .collect()
    }

    fn run(raw: &[u8], max_size: Option<u64>) -> Result<(), AttachmentError> {
        let blocked = exts();
        let msg = MessageParser::new().parse(raw).expect("parses");
        check(
            &flatten(msg),
            Policy {
                blocked_extensions: &blocked,
                max_size,
            },
        )
    }

    fn blocked(name: &str, ext: &str) -> Result<(), AttachmentError> {
        Err(AttachmentError::Blocked {
            name: name.into(),
            ext: ext.into(),
        })
    }

    #[test]
    fn extension_matching() {
        let b = exts();
        assert_eq!(blocked_extension("Invoice.EXE", &b), Some("exe"));
        assert_eq!(blocked_extension("invoice.exe. ", &b), Some("exe"));
        assert_eq!(blocked_extension("invoic e.e xe", &b), Some("exe"));
        assert_eq!(blocked_extension("invoice.ex\u{200b}e", &b), Some("exe"));
        assert_eq!(blocked_extension("invoice.exe\0.pdf", &b), Some("exe"));
        assert_eq!(blocked_extension("report\u{202e}fdp.js", &b), Some("js"));
        assert_eq!(blocked_extension("invoice.exe.pdf", &b), None);
        assert_eq!(blocked_extension("exe", &b), None);
        assert_eq!(blocked_extension("notes.json", &b), None);
        assert_eq!(blocked_extension("a.exe", &[]), None);
        assert_eq!(
            blocked_extension("x.tar.gz", &["tar.gz".to_string()]),
            Some("tar.gz")
        );
    }

    const NESTED: &[u8] = b"From: a@x\r\nContent-Type: multipart/mixed; boundary=b1\r\n\r\n\
--b1\r\nContent-Type: text/plain\r\n\r\nhello\r\n\
--b1\r\nContent-Type: multipart/mixed; boundary=b2\r\n\r\n\
--b2\r\nContent-Type: application/pdf; name=ok.pdf\r\n\r\npdf\r\n\
--b2\r\nContent-Type: application/octet-stream\r\nContent-Disposition: attachment; NAMEPARAM\r\n\r\nMZ\r\n\
--b2--\r\n--b1--\r\n";

    fn nested_with(param: &str) -> Vec<u8> {
        String::from_utf8_lossy(NESTED)
            .replace("NAMEPARAM", param)
            .into_bytes()
    }

    #[test]
    fn names_in_nested_multiparts_and_encodings() {
        assert_eq!(run(&nested_with("filename=report.pdf"), None), Ok(()));
        assert_eq!(
            run(&nested_with("filename=\"Invoice.EXE\""), None),
            blocked("Invoice.EXE", "exe")
        );
        assert_eq!(
            run(&nested_with("filename*=UTF-8''invoice.%65xe"), None),
            blocked("invoice.exe", "exe")
        );
        assert_eq!(
            run(
                &nested_with("filename=\"=?UTF-8?B?aW52b2ljZS5leGU=?=\""),
                None
            ),
            blocked("invoice.exe", "exe")
        );
        assert_eq!(
            run(
                &nested_with("filename*0*=UTF-8''inv; filename*1=oice.s; filename*2=cr"),
                None
            ),
            blocked("invoice.scr", "scr")
        );
        // An innocent first name does not hide a second one.
        assert_eq!(
            run(&nested_with("filename=x.pdf; filename*=UTF-8''y.vbs"), None),
            blocked("y.vbs", "vbs")
        );
        // Split encoded words decode with a space; the extension is still seen.
        assert!(matches!(
            run(&nested_with("filename=\"=?UTF-8?B?aW52b2ljZS5l?= =?UTF-8?B?eGU=?=\""), None),
            Err(AttachmentError::Blocked { ext, .. }) if ext == "exe"
        ));
    }

    #[test]
    fn names_inside_attached_messages() {
        let raw = b"From: a@x\r\nContent-Type: multipart/mixed; boundary=b1\r\n\r\n\
--b1\r\nContent-Type: text/plain\r\n\r\nsee attached\r\n\
--b1\r\nContent-Type: message/rfc822\r\n\r\n\
From: inner@x\r\nContent-Type: multipart/mixed; boundary=b3\r\n\r\n\
--b3\r\nContent-Type: text/plain; name=inner.js\r\n\r\nalert(1)\r\n--b3--\r\n\
--b1--\r\n";
        assert_eq!(run(raw, None), blocked("inner.js", "js"));
    }

    #[test]
    fn base64_wrapped_messages_beyond_parser_depth_are_refused() {
        use base64::Engine;
        let mut inner = b"From: a@x\r\nContent-Type: text/plain; name=x.txt\r\n\r\nhi\r\n".to_vec();
        for _ in 0..5 {
            let mut w = b"From: a@x\r\nContent-Type: message/rfc822\r\nContent-Transfer-Encoding: base64\r\n\r\n".to_vec();
            w.extend_from_slice(
                base64::engine::general_purpose::STANDARD
                    .encode(&inner)
                    .as_bytes(),
            );
            w.extend_from_slice(b"\r\n");
            inner = w;
        }
        assert!(matches!(
            run(&inner, None),
            Err(AttachmentError::Uninspectable { .. })
        ));
    }

    #[test]
    fn deep_nesting_neither_overflows_nor_passes() {
        let mut raw = b"From: a@x\r\n".to_vec();
        for _ in 0..100_000 {
            raw.extend_from_slice(b"Content-Type: message/rfc822\r\n\r\n");
        }
        raw.extend_from_slice(b"Subject: end\r\n\r\nhi\r\n");
        // A small stack, as on the blocking pool: a recursive drop would abort.
        let result = std::thread::Builder::new()
            .stack_size(512 << 10)
            .spawn(move || run(&raw, None))
            .unwrap()
            .join()
            .unwrap();
        assert_eq!(result, Err(AttachmentError::TooDeep));
    }

    #[test]
    fn decoded_size_limit() {
        let raw = b"From: a@x\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n\
--b\r\nContent-Type: text/plain\r\n\r\nbody text that is not an attachment at all\r\n\
--b\r\nContent-Type: application/octet-stream; name=data.bin\r\nContent-Transfer-Encoding: base64\r\n\r\nAAAAAAAAAAAAAAAA\r\n\
--b--\r\n";
        // 16 base64 characters decode to 12 bytes.
        assert_eq!(run(raw, Some(12)), Ok(()));
        assert_eq!(
            run(raw, Some(11)),
            Err(AttachmentError::TooLarge {
                shown: "\"data.bin\"".into(),
                size: 12,
                max: 11
            })
        );
    }
}
