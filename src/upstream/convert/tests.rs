//! Conversion tests on hand-written MIME: every field a JSON API gets must
//! come out exactly (decoded bytes, names, ids), and the envelope decides
//! the recipients.

use super::*;

/// Text + HTML alternative with an inline image (multipart/related), a PDF
/// attachment and a Latin-1 CSV in quoted-printable.
pub(crate) const RICH: &[u8] =
    b"Received: from client.test by relay.test; Mon, 1 Jan 2026 00:00:00 +0000\r\n\
DKIM-Signature: v=1; a=rsa-sha256; d=example.com; s=s; b=abc\r\n\
From: \"Billing, Dept.\" <billing@example.com>\r\n\
To: Bob <bob@dest.test>, list@dest.test\r\n\
Cc: Carol <carol@dest.test>\r\n\
Reply-To: help@example.com, Desk <desk@example.com>\r\n\
Subject: =?utf-8?q?Invoice_=E2=82=AC42?=\r\n\
Date: Mon, 1 Jan 2026 00:00:00 +0000\r\n\
Message-ID: <inv-42@example.com>\r\n\
X-Custom: one\r\n two\r\n\
MIME-Version: 1.0\r\n\
Content-Type: multipart/mixed; boundary=\"outer\"\r\n\
\r\n\
--outer\r\n\
Content-Type: multipart/related; boundary=\"rel\"\r\n\
\r\n\
--rel\r\n\
Content-Type: multipart/alternative; boundary=\"alt\"\r\n\
\r\n\
--alt\r\n\
Content-Type: text/plain; charset=utf-8\r\n\
\r\n\
Total: 42 EUR\r\n\
--alt\r\n\
Content-Type: text/html; charset=utf-8\r\n\
\r\n\
<p>Total: <b>42</b> <img src=\"cid:logo@x\"></p>\r\n\
--alt--\r\n\
--rel\r\n\
Content-Type: image/png\r\n\
Content-Transfer-Encoding: base64\r\n\
Content-ID: <logo@x>\r\n\
Content-Disposition: inline; filename=\"logo.png\"\r\n\
\r\n\
iVBORw0KGgoAAAANSUhEUg==\r\n\
--rel--\r\n\
--outer\r\n\
Content-Type: application/pdf; name=\"invoice.pdf\"\r\n\
Content-Transfer-Encoding: base64\r\n\
Content-Disposition: attachment; filename=\"invoice.pdf\"\r\n\
\r\n\
JVBERi0xLjQKJcfsj6IK\r\n\
--outer\r\n\
Content-Type: text/csv; charset=iso-8859-1\r\n\
Content-Transfer-Encoding: quoted-printable\r\n\
Content-Disposition: attachment; filename=\"prices.csv\"\r\n\
\r\n\
caf=E9;3=\r\n\
\r\n\
--outer--\r\n";

#[test]
fn rich_message_fields() {
    let m = parse(RICH).unwrap();
    assert_eq!(
        m.from,
        Some(Mailbox::new(Some("Billing, Dept."), "billing@example.com"))
    );
    assert_eq!(
        m.to,
        vec![
            Mailbox::new(Some("Bob"), "bob@dest.test"),
            Mailbox::new(None, "list@dest.test")
        ]
    );
    assert_eq!(m.cc, vec![Mailbox::new(Some("Carol"), "carol@dest.test")]);
    assert_eq!(
        m.reply_to,
        vec![
            Mailbox::new(None, "help@example.com"),
            Mailbox::new(Some("Desk"), "desk@example.com")
        ]
    );
    assert_eq!(m.subject.as_deref(), Some("Invoice €42"));
    assert_eq!(m.text.as_deref(), Some("Total: 42 EUR"));
    assert_eq!(
        m.html.as_deref(),
        Some("<p>Total: <b>42</b> <img src=\"cid:logo@x\"></p>")
    );
    assert_eq!(
        m.headers,
        vec![
            ("Message-ID".to_string(), "<inv-42@example.com>".to_string()),
            ("X-Custom".to_string(), "one two".to_string()),
        ]
    );
    assert_eq!(m.attachments.len(), 3, "{:#?}", m.attachments);
    let logo = &m.attachments[0];
    assert_eq!(logo.filename, "logo.png");
    assert_eq!(logo.content_type, "image/png");
    assert_eq!(logo.content_id.as_deref(), Some("logo@x"));
    assert!(logo.inline);
    assert_eq!(
        logo.content,
        b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR".to_vec()
    );
    let pdf = &m.attachments[1];
    assert_eq!(
        (pdf.filename.as_str(), pdf.content_type.as_str()),
        ("invoice.pdf", "application/pdf")
    );
    assert_eq!(pdf.content, b"%PDF-1.4\n%\xc7\xec\x8f\xa2\n".to_vec());
    assert!(!pdf.inline);
    assert_eq!(pdf.content_id, None);
    let csv = &m.attachments[2];
    assert_eq!(csv.filename, "prices.csv");
    // Latin-1 bytes kept, not converted to UTF-8.
    assert_eq!(csv.content, b"caf\xe9;3".to_vec());
}

#[test]
fn plain_message_has_no_html_and_no_attachments() {
    let m =
        parse(b"From: a@example.com\r\nTo: b@dest.test\r\nSubject: x\r\n\r\nhello\r\n").unwrap();
    assert_eq!(m.text.as_deref(), Some("hello\r\n"));
    assert_eq!(m.html, None);
    assert!(m.attachments.is_empty());
    let html =
        parse(b"From: a@example.com\r\nContent-Type: text/html\r\n\r\n<b>hi</b>\r\n").unwrap();
    assert_eq!(html.text, None);
    assert_eq!(html.html.as_deref(), Some("<b>hi</b>\r\n"));
}

#[test]
fn unnamed_attachment_gets_a_name_with_extension() {
    let m = parse(
        b"From: a@example.com\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n\
          Content-Type: text/plain\r\n\r\nbody\r\n--b\r\nContent-Type: application/pdf\r\n\
          Content-Transfer-Encoding: base64\r\n\r\nJVBERg==\r\n--b--\r\n",
    )
    .unwrap();
    assert_eq!(m.attachments.len(), 1);
    assert_eq!(m.attachments[0].filename, "attachment-1.pdf");
    assert_eq!(m.attachments[0].content, b"%PDF".to_vec());
}

#[test]
fn sender_falls_back_to_envelope() {
    let m = parse(b"Subject: no from\r\n\r\nx\r\n").unwrap();
    assert_eq!(
        m.sender("bounce@example.com").unwrap(),
        Mailbox::new(None, "bounce@example.com")
    );
    assert_eq!(m.sender(""), Err(ConvertError::NoFrom));
}

fn rcpts(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

#[test]
fn envelope_decides_recipients() {
    let m = parse(RICH).unwrap();
    // bob: header To (case differs); carol: Cc; dave: envelope only; list@
    // is in the header but not the envelope, so it receives nothing.
    let r = Recipients::from_envelope(
        &m,
        &rcpts(&[
            "Bob@Dest.test",
            "carol@dest.test",
            "dave@other.test",
            "bob@dest.test",
        ]),
    );
    assert_eq!(r.to, vec![Mailbox::new(Some("Bob"), "Bob@Dest.test")]);
    assert_eq!(r.cc, vec![Mailbox::new(Some("Carol"), "carol@dest.test")]);
    assert_eq!(r.bcc, vec![Mailbox::new(None, "dave@other.test")]);
}

#[test]
fn visible_to_rules() {
    let m = parse(RICH).unwrap();
    let cc_only = Recipients::from_envelope(&m, &rcpts(&["carol@dest.test", "x@y.test"]))
        .with_visible_to("Test")
        .unwrap();
    assert_eq!(
        cc_only.to,
        vec![Mailbox::new(Some("Carol"), "carol@dest.test")]
    );
    assert!(cc_only.cc.is_empty());
    assert_eq!(cc_only.bcc, vec![Mailbox::new(None, "x@y.test")]);
    let one_hidden = Recipients::from_envelope(&m, &rcpts(&["x@y.test"]))
        .with_visible_to("Test")
        .unwrap();
    assert_eq!(one_hidden.to, vec![Mailbox::new(None, "x@y.test")]);
    assert!(one_hidden.bcc.is_empty());
    let e = Recipients::from_envelope(&m, &rcpts(&["x@y.test", "z@y.test"]))
        .with_visible_to("Test")
        .unwrap_err();
    assert_eq!(
        e,
        ConvertError::OnlyHidden {
            provider: "Test",
            hidden: 2
        }
    );
}

#[test]
fn display_quotes_names() {
    assert_eq!(
        Mailbox::new(Some("Billing, \"Dept\""), "b@x.test").display(),
        "\"Billing, \\\"Dept\\\"\" <b@x.test>"
    );
    assert_eq!(Mailbox::new(None, " b@x.test ").display(), "b@x.test");
    assert_eq!(Mailbox::new(Some(" \r\n"), "b@x.test").name, None);
}

#[test]
fn unique_headers_drop_denied_and_duplicates() {
    let m = ParsedMail {
        headers: vec![
            ("X-A".into(), "1".into()),
            ("x-a".into(), "2".into()),
            ("X-SG-ID".into(), "3".into()),
        ],
        ..ParsedMail::default()
    };
    assert_eq!(m.unique_headers(&["x-sg-id"]), vec![("X-A", "1")]);
}

#[test]
fn garbage_never_panics() {
    for data in [
        &b""[..],
        b"\xff\xfe\x00",
        b"Content-Type: multipart/mixed; boundary=\r\n\r\n--\r\n",
    ] {
        let _ = parse(data);
    }
}
