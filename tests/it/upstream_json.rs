//! The SendGrid, Postmark, Resend, Mailgun and SES kinds against a local
//! HTTPS server playing each API: the exact request (method, path, auth
//! header or SigV4 signature, content type, every JSON field or multipart
//! part, attachments decoded back to their original bytes, the
//! envelope-decides-recipients rule). Fault handling is in
//! upstream_faults.rs; SES against a real emulator (moto) in upstream_ses.rs.

use crate::common::*;
use crate::upstream_api::*;
use serde_json::json;

#[test]
fn sendgrid_request_is_exact() {
    let (_p, req, _) = deliver_rich(Kind::Sendgrid);
    let v = json_body(&req);
    assert_eq!(
        v["personalizations"],
        json!([{
            "to": [{"email": "bob@dest.test", "name": "Bob"}],
            "cc": [{"email": "carol@dest.test", "name": "Carol"}],
            "bcc": [{"email": "dave@other.test"}],
        }])
    );
    assert_eq!(
        v["from"],
        json!({"email": "billing@example.com", "name": "Billing Dept"})
    );
    assert_eq!(v["reply_to"], json!({"email": "help@example.com"}));
    assert_eq!(v["subject"], "Invoice €42");
    assert_eq!(
        v["content"],
        json!([
            {"type": "text/plain", "value": "Total: 42 EUR"},
            {"type": "text/html", "value": "<p>Total: <b>42</b> <img src=\"cid:logo@x\"></p>"},
        ])
    );
    let atts = v["attachments"].as_array().expect("attachments");
    assert_eq!(atts.len(), 3);
    for (i, a) in atts.iter().enumerate() {
        check_attachment(a, "filename", "type", "content", i);
    }
    assert_eq!(atts[0]["disposition"], "inline");
    assert_eq!(atts[0]["content_id"], "logo@x");
    assert_eq!(atts[1]["disposition"], "attachment");
    assert_eq!(v["headers"]["Message-ID"], "<inv-42@example.com>");
    assert_eq!(v["headers"]["X-Erp-Ref"], "INV-42");
    assert!(v["headers"].get("Received").is_none());
    assert_eq!(v["categories"], json!(["invoices", "erp"]));
    let text = String::from_utf8_lossy(&req.body);
    assert!(
        !text.contains("list@dest.test"),
        "non-recipient leaked: {text}"
    );
}

#[test]
fn postmark_request_is_exact() {
    let (_p, req, _) = deliver_rich(Kind::Postmark);
    let v = json_body(&req);
    assert_eq!(v["From"], "\"Billing Dept\" <billing@example.com>");
    assert_eq!(v["To"], "\"Bob\" <bob@dest.test>");
    assert_eq!(v["Cc"], "\"Carol\" <carol@dest.test>");
    assert_eq!(v["Bcc"], "dave@other.test");
    assert_eq!(v["ReplyTo"], "help@example.com");
    assert_eq!(v["Subject"], "Invoice €42");
    assert_eq!(v["TextBody"], "Total: 42 EUR");
    assert_eq!(
        v["HtmlBody"],
        "<p>Total: <b>42</b> <img src=\"cid:logo@x\"></p>"
    );
    assert_eq!(v["MessageStream"], "billing");
    let headers = v["Headers"].as_array().expect("Headers");
    assert!(
        headers.contains(&json!({"Name": "X-Erp-Ref", "Value": "INV-42"})),
        "{headers:?}"
    );
    assert!(headers.contains(&json!({"Name": "Message-ID", "Value": "<inv-42@example.com>"})));
    let atts = v["Attachments"].as_array().expect("Attachments");
    assert_eq!(atts.len(), 3);
    for (i, a) in atts.iter().enumerate() {
        check_attachment(a, "Name", "ContentType", "Content", i);
    }
    assert_eq!(atts[0]["ContentID"], "cid:logo@x");
    assert!(atts[1].get("ContentID").is_none());
    assert!(!String::from_utf8_lossy(&req.body).contains("list@dest.test"));
}

#[test]
fn resend_request_is_exact_with_idempotency_key() {
    let (_p, req, queue_id) = deliver_rich(Kind::Resend);
    assert_eq!(req.one_header("idempotency-key"), queue_id);
    let v = json_body(&req);
    assert_eq!(v["from"], "\"Billing Dept\" <billing@example.com>");
    assert_eq!(v["to"], json!(["\"Bob\" <bob@dest.test>"]));
    assert_eq!(v["cc"], json!(["\"Carol\" <carol@dest.test>"]));
    assert_eq!(v["bcc"], json!(["dave@other.test"]));
    assert_eq!(v["reply_to"], json!(["help@example.com"]));
    assert_eq!(v["subject"], "Invoice €42");
    assert_eq!(v["text"], "Total: 42 EUR");
    assert_eq!(
        v["html"],
        "<p>Total: <b>42</b> <img src=\"cid:logo@x\"></p>"
    );
    assert_eq!(v["headers"]["X-Erp-Ref"], "INV-42");
    let atts = v["attachments"].as_array().expect("attachments");
    assert_eq!(atts.len(), 3);
    for (i, a) in atts.iter().enumerate() {
        check_attachment(a, "filename", "content_type", "content", i);
    }
    assert_eq!(atts[0]["content_id"], "logo@x");
    assert!(atts[2].get("content_id").is_none());
    assert!(!String::from_utf8_lossy(&req.body).contains("list@dest.test"));
}

#[test]
fn mailgun_request_carries_envelope_and_exact_message() {
    let (p, req, _) = deliver_rich(Kind::Mailgun);
    let parts = form_parts(&req);
    let to: Vec<&str> = parts
        .iter()
        .filter(|(n, ..)| n == "to")
        .map(|(.., c)| std::str::from_utf8(c).expect("utf-8 to"))
        .collect();
    assert_eq!(to, ENVELOPE, "one `to` part per envelope recipient");
    let msgs: Vec<_> = parts.iter().filter(|(n, ..)| n == "message").collect();
    assert_eq!(msgs.len(), 1, "exactly one message part");
    let (_, filename, ctype, content) = msgs[0];
    assert!(filename.is_some(), "message must be a file part");
    assert_eq!(ctype.as_deref(), Some("message/rfc822"));
    assert_forwarded(content, RICH);
    assert_eq!(parts.len(), ENVELOPE.len() + 1, "no other form fields");
    drop(p);
}

#[test]
fn cc_only_and_single_hidden_recipient_become_to() {
    // Header To names nobody in the envelope; the one recipient is hidden.
    for kind in [Kind::Postmark, Kind::Resend, Kind::Sendgrid] {
        let ca = TestCa::new();
        let up = MockUpstream::with_default(&ca, kind.ok().0);
        let p = start(&ca, &config(kind, up.port, &ca.ca_pem, &up.url()));
        let msg = simple_message("app@example.com", "all-staff@example.com", "hidden");
        submit(&p, &["ops@dest.test"], &msg);
        let v = json_body(&p.delivered(&up, 1)[0]);
        let body = v.to_string();
        assert!(!body.contains("all-staff@example.com"), "{kind:?}: {body}");
        match kind {
            Kind::Postmark => assert_eq!(v["To"], "ops@dest.test"),
            Kind::Resend => assert_eq!(v["to"], json!(["ops@dest.test"])),
            _ => assert_eq!(
                v["personalizations"],
                json!([{"to": [{"email": "ops@dest.test"}]}])
            ),
        }
        p.wait_queue_empty();
    }
}

#[test]
fn ses_request_is_exact_and_signed() {
    let (_p, req, _) = deliver_rich(Kind::Ses);
    let v = json_body(&req);
    assert_eq!(v["FromEmailAddress"], "app@example.com");
    assert_eq!(v["Destination"], json!({"ToAddresses": ENVELOPE}));
    assert_eq!(v["ConfigurationSetName"], "tx");
    assert_forwarded(&b64(&v["Content"]["Raw"]["Data"]), RICH);
    let keys: Vec<&String> = v.as_object().expect("object").keys().collect();
    assert_eq!(keys.len(), 4, "no other fields: {keys:?}");
}

#[test]
fn ses_daily_quota_is_retried_not_dead_lettered() {
    let ca = TestCa::new();
    let up = MockUpstream::with_default(&ca, Kind::Ses.ok().0);
    up.push(
        Scripted::status(400)
            .header("x-amzn-ErrorType", "LimitExceededException")
            .body(br#"{"message":"Daily message quota exceeded."}"#),
    );
    let p = start(&ca, &config(Kind::Ses, up.port, &ca.ca_pem, &up.url()));
    submit(&p, &["bob@dest.test"], &simple("quota"));
    p.delivered(&up, 2);
    p.wait_queue_empty();
    settle();
    assert_eq!(up.count(), 2);
    assert!(p.dead_files().is_empty());
    assert!(
        p.log().contains("Daily message quota exceeded"),
        "{}",
        p.log()
    );
}
