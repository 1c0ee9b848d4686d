//! The MIME → JSON conversions of the providers that take JSON. Whatever
//! the headers say, a conversion names exactly the envelope recipients:
//! never one the envelope does not hold (a header-only recipient would be
//! a relay the client was not granted).

use std::collections::BTreeSet;

use serde_json::Value;

use crate::upstream::OutboundMessage;
use crate::upstream::convert::{Recipients, parse};

/// First line: the envelope recipients, comma separated; the rest: the
/// message.
pub fn provider_conversion(input: &[u8]) {
    let (first, data) = match input.iter().position(|&b| b == b'\n') {
        Some(i) => (&input[..i], &input[i + 1..]),
        None => (input, &[][..]),
    };
    let rcpt_to: Vec<String> = String::from_utf8_lossy(first)
        .split(',')
        .map(|r| r.trim().to_string())
        .filter(|r| !r.is_empty())
        .take(5)
        .collect();
    let envelope: BTreeSet<&str> = rcpt_to.iter().map(String::as_str).collect();
    let msg = OutboundMessage {
        id: "FUZZ1",
        mail_from: "app@example.com",
        rcpt_to: &rcpt_to,
        data,
    };
    if let Ok(mail) = parse(data) {
        let r = Recipients::from_envelope(&mail, &rcpt_to);
        let named: Vec<&str> =
            r.to.iter()
                .chain(&r.cc)
                .chain(&r.bcc)
                .map(|m| m.address.as_str())
                .collect();
        for a in &named {
            assert!(envelope.contains(a), "{a:?} is not an envelope recipient");
        }
        assert!(named.len() <= envelope.len(), "a recipient named twice");
        if let Ok(body) = crate::upstream::sendgrid::request_body(&mail, &msg, &[]) {
            // A fuzz invariant: a panic here is the finding.
            let v: Value = serde_json::from_slice(&body).expect("SendGrid body is JSON");
            for p in v["personalizations"].as_array().into_iter().flatten() {
                for list in ["to", "cc", "bcc"] {
                    for e in p[list].as_array().into_iter().flatten() {
                        let a = e["email"].as_str().unwrap_or_default();
                        assert!(envelope.contains(a), "SendGrid {list}: {a:?}");
                    }
                }
            }
        }
        for body in [
            crate::upstream::postmark::request_body(&mail, &msg, None, None),
            crate::upstream::resend::request_body(&mail, &msg),
        ]
        .into_iter()
        .flatten()
        {
            // A fuzz invariant: a panic here is the finding.
            serde_json::from_slice::<Value>(&body).expect("request body is JSON");
        }
    }
    if let Some(parsed) = mail_parser::MessageParser::new().parse(data) {
        let v = crate::upstream::msgraph::convert::json_message(&parsed, &rcpt_to);
        for list in ["toRecipients", "ccRecipients", "bccRecipients"] {
            for e in v[list].as_array().into_iter().flatten() {
                let a = e["emailAddress"]["address"].as_str().unwrap_or_default();
                assert!(envelope.contains(a), "Graph {list}: {a:?}");
            }
        }
    }
}
