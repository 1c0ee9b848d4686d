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
mod tests {
    use super::super::headers::{ScanLimits, scan};
    use super::*;

    fn edit(data: &[u8], plan: &Plan) -> Vec<u8> {
        let limits = ScanLimits {
            max_count: 100,
            max_size: 1 << 20,
            smtputf8: false,
            eight_bit: crate::inspect::Header8bit::Reject,
        };
        apply(data, &scan(data, limits).unwrap(), plan)
    }

    const MSG: &[u8] = b"From: a@x\r\nBcc: secret@y,\r\n  other@z\r\nSubject: s\r\nbCC: again@y\r\nX-Originating-IP: [10.0.0.1]\r\n\r\nBcc: in the body stays\r\n";

    #[test]
    fn removes_fields_with_their_continuations() {
        let plan = Plan {
            remove: vec!["bcc".into(), "x-originating-ip".into()],
            ..Plan::default()
        };
        assert_eq!(
            edit(MSG, &plan),
            b"From: a@x\r\nSubject: s\r\n\r\nBcc: in the body stays\r\n"
        );
    }

    #[test]
    fn prefix_patterns_remove_every_field_they_start() {
        let msg = b"From: a@x\r\nX-SES-CONFIGURATION-SET: evil\r\nX-Ses-Source-Arn: arn\r\n\tmore\r\nX-SESAME: keep\r\nX-SMTPAPI: {}\r\nX-SMTPAPI-Not: keep\r\n\r\nX-SES-X: body\r\n";
        let plan = Plan {
            remove: vec!["x-ses-*".into(), "x-smtpapi".into()],
            ..Plan::default()
        };
        assert_eq!(
            edit(msg, &plan),
            b"From: a@x\r\nX-SESAME: keep\r\nX-SMTPAPI-Not: keep\r\n\r\nX-SES-X: body\r\n"
        );
    }

    #[test]
    fn prepends_and_appends_without_touching_the_rest() {
        let plan = Plan {
            prepend: Some("Received: by r;\r\n\tdate\r\n".into()),
            remove: vec![],
            append: vec!["Date: d\r\n".into(), "Message-ID: <m@h>\r\n".into()],
        };
        let mut want = b"Received: by r;\r\n\tdate\r\n".to_vec();
        want.extend_from_slice(
            b"From: a@x\r\nBcc: secret@y,\r\n  other@z\r\nSubject: s\r\nbCC: again@y\r\nX-Originating-IP: [10.0.0.1]\r\nDate: d\r\nMessage-ID: <m@h>\r\n\r\nBcc: in the body stays\r\n",
        );
        assert_eq!(edit(MSG, &plan), want);
        assert_eq!(edit(MSG, &Plan::default()), MSG);
    }

    #[test]
    fn header_only_message() {
        let plan = Plan {
            append: vec!["Date: d\r\n".into()],
            ..Plan::default()
        };
        assert_eq!(edit(b"From: a@x\r\n", &plan), b"From: a@x\r\nDate: d\r\n");
        assert_eq!(edit(b"From: a@x", &plan), b"From: a@x\r\nDate: d\r\n");
    }

    #[test]
    fn message_ids_are_unique_and_well_formed() {
        let a = new_message_id("relay.test", "Q1");
        let b = new_message_id("relay.test", "Q1");
        assert_ne!(a, b);
        assert!(
            a.starts_with('<') && a.ends_with("@relay.test>") && a.len() == 45,
            "{a}"
        );
        assert!(new_message_id("bad host<>", "Q").ends_with("@badhost>"));
        assert!(new_message_id("", "Q").ends_with("@localhost>"));
    }
}
