//! Tests for the Graph message conversions: cutting attachments out of the
//! raw MIME must leave a valid message with everything else intact, and the
//! JSON form must carry body, recipients and attachments.

use super::*;
use mail_parser::MessageParser;

fn b64_lines(data: &[u8]) -> String {
    let text = base64::engine::general_purpose::STANDARD.encode(data);
    text.as_bytes()
        .chunks(76)
        .map(|c| String::from_utf8_lossy(c).into_owned())
        .collect::<Vec<_>>()
        .join("\r\n")
}

/// multipart/mixed: alternative(text, html) + pdf (big) + png (inline, small).
fn sample(big: usize) -> (Vec<u8>, Vec<u8>) {
    let pdf: Vec<u8> = (0..big).map(|i| (i % 251) as u8).collect();
    let msg = format!(
        "From: App <app@example.com>\r\nTo: Bob <bob@dest.test>\r\nSubject: report\r\nMessage-ID: <m1@example.com>\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"XX\"\r\n\r\n--XX\r\nContent-Type: multipart/alternative; boundary=YY\r\n\r\n--YY\r\nContent-Type: text/plain\r\n\r\nhello\r\n--YY\r\nContent-Type: text/html\r\n\r\n<p>hello <img src=\"cid:logo\"></p>\r\n--YY--\r\n\r\n--XX\r\nContent-Type: application/pdf; name=\"r.pdf\"\r\nContent-Disposition: attachment; filename=\"r.pdf\"\r\nContent-Transfer-Encoding: base64\r\n\r\n{}\r\n--XX\r\nContent-Type: image/png\r\nContent-ID: <logo>\r\nContent-Disposition: inline; filename=\"logo.png\"\r\nContent-Transfer-Encoding: base64\r\n\r\niVBORw0KGgo=\r\n--XX--\r\n",
        b64_lines(&pdf)
    );
    (msg.into_bytes(), pdf)
}

#[test]
fn cuts_the_big_attachment_and_keeps_the_rest_byte_exact() {
    let (raw, pdf) = sample(100_000);
    let parsed = MessageParser::default().parse(&raw[..]).unwrap();
    let (draft, cut) = split_for_draft(&raw, &parsed, 20_000).unwrap();
    assert_eq!(cut.len(), 1);
    assert_eq!(cut[0].name, "r.pdf");
    assert_eq!(cut[0].content_type, "application/pdf");
    assert!(!cut[0].is_inline);
    assert_eq!(cut[0].bytes, pdf);
    // Exactly the delimiter line and the part are gone.
    let start = find(&raw, b"\r\n--XX\r\nContent-Type: application/pdf");
    let end = find(&raw, b"\r\n--XX\r\nContent-Type: image/png");
    let mut want = raw[..start].to_vec();
    want.extend_from_slice(&raw[end..]);
    assert_eq!(draft, want);
    let reparsed = MessageParser::default().parse(&draft[..]).unwrap();
    assert_eq!(reparsed.subject(), Some("report"));
    assert_eq!(reparsed.body_text(0).as_deref(), Some("hello"));
    assert_eq!(reparsed.attachments().count(), 1);
    assert_eq!(
        reparsed.attachment(0).unwrap().attachment_name(),
        Some("logo.png")
    );
}

#[test]
fn small_messages_are_left_alone_and_impossible_ones_refused() {
    let (raw, _) = sample(1000);
    let parsed = MessageParser::default().parse(&raw[..]).unwrap();
    let (draft, cut) = split_for_draft(&raw, &parsed, 1 << 20).unwrap();
    assert_eq!(draft, raw);
    assert!(cut.is_empty());
    // Even without attachments the message is over 100 bytes.
    let e = split_for_draft(&raw, &parsed, 100).unwrap_err();
    assert!(e.contains("Graph takes at most"), "{e}");
}

#[test]
fn a_multipart_left_without_children_gets_a_placeholder() {
    let data = vec![7u8; 30_000];
    let raw = format!(
        "From: a@example.com\r\nTo: b@dest.test\r\nSubject: scan\r\nContent-Type: multipart/mixed; boundary=\"B\"\r\n\r\n--B\r\nContent-Type: application/pdf\r\nContent-Disposition: attachment; filename=scan.pdf\r\nContent-Transfer-Encoding: base64\r\n\r\n{}\r\n--B--\r\n",
        b64_lines(&data)
    )
    .into_bytes();
    let parsed = MessageParser::default().parse(&raw[..]).unwrap();
    let (draft, cut) = split_for_draft(&raw, &parsed, 4000).unwrap();
    assert_eq!(cut.len(), 1);
    assert_eq!(cut[0].bytes, data);
    let text = String::from_utf8(draft).unwrap();
    assert_eq!(
        text,
        "From: a@example.com\r\nTo: b@dest.test\r\nSubject: scan\r\nContent-Type: multipart/mixed; boundary=\"B\"\r\n\r\n--B\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n\r\n--B--\r\n"
    );
}

#[test]
fn json_message_uses_envelope_recipients() {
    let (raw, pdf) = sample(10);
    let raw = [
        b"Cc: Carol <carol@dest.test>\r\nReply-To: help@example.com\r\n".as_slice(),
        &raw,
    ]
    .concat();
    let parsed = MessageParser::default().parse(&raw[..]).unwrap();
    let rcpts = vec![
        "bob@dest.test".to_string(),
        "carol@dest.test".to_string(),
        "hidden@other.test".to_string(),
    ];
    let m = json_message(&parsed, &rcpts);
    assert_eq!(m["subject"], "report");
    assert_eq!(m["body"]["contentType"], "HTML");
    assert!(m["body"]["content"].as_str().unwrap().contains("cid:logo"));
    assert_eq!(
        m["from"],
        json!({"emailAddress": {"name": "App", "address": "app@example.com"}})
    );
    assert_eq!(
        m["toRecipients"],
        json!([{"emailAddress": {"name": "Bob", "address": "bob@dest.test"}}])
    );
    assert_eq!(
        m["ccRecipients"],
        json!([{"emailAddress": {"name": "Carol", "address": "carol@dest.test"}}])
    );
    assert_eq!(
        m["bccRecipients"],
        json!([{"emailAddress": {"address": "hidden@other.test"}}])
    );
    assert_eq!(
        m["replyTo"],
        json!([{"emailAddress": {"address": "help@example.com"}}])
    );
    let atts = m["attachments"].as_array().unwrap();
    assert_eq!(atts.len(), 2);
    assert_eq!(atts[0]["name"], "r.pdf");
    assert_eq!(
        atts[0]["contentBytes"],
        base64::engine::general_purpose::STANDARD.encode(&pdf)
    );
    assert_eq!(atts[0]["isInline"], false);
    assert_eq!(atts[1]["contentId"], "logo");
    assert_eq!(atts[1]["isInline"], true);
    assert_eq!(atts[1]["@odata.type"], "#microsoft.graph.fileAttachment");
}

#[test]
fn plain_text_body_stays_text() {
    let raw = b"From: a@example.com\r\nTo: b@dest.test\r\nSubject: hi\r\n\r\nline 1\r\nline 2\r\n";
    let parsed = MessageParser::default().parse(&raw[..]).unwrap();
    let m = json_message(&parsed, &["b@dest.test".to_string()]);
    assert_eq!(
        m["body"],
        json!({"contentType": "Text", "content": "line 1\r\nline 2\r\n"})
    );
    assert!(m.get("attachments").is_none());
}

fn find(hay: &[u8], needle: &[u8]) -> usize {
    hay.windows(needle.len()).position(|w| w == needle).unwrap()
}
