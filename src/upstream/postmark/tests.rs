use super::*;

fn body(data: &[u8], rcpts: &[&str]) -> Result<serde_json::Value, DeliveryError> {
    let rcpt: Vec<String> = rcpts.iter().map(|s| s.to_string()).collect();
    let msg = OutboundMessage {
        id: "q1",
        mail_from: "billing@example.com",
        rcpt_to: &rcpt,
        data,
    };
    let mail = convert::parse(data).unwrap();
    let b = request_body(&mail, &msg, Some("broadcast"), Some("invoice"))?;
    Ok(serde_json::from_slice(&b).unwrap())
}

#[test]
fn rich_message() {
    let v = body(
        convert::tests::RICH,
        &["bob@dest.test", "carol@dest.test", "dave@other.test"],
    )
    .unwrap();
    assert_eq!(v["From"], "\"Billing, Dept.\" <billing@example.com>");
    assert_eq!(v["To"], "\"Bob\" <bob@dest.test>");
    assert_eq!(v["Cc"], "\"Carol\" <carol@dest.test>");
    assert_eq!(v["Bcc"], "dave@other.test");
    assert_eq!(
        v["ReplyTo"],
        "help@example.com, \"Desk\" <desk@example.com>"
    );
    assert_eq!(v["Subject"], "Invoice €42");
    assert_eq!(v["TextBody"], "Total: 42 EUR");
    assert_eq!(v["MessageStream"], "broadcast");
    assert_eq!(v["Tag"], "invoice");
    assert_eq!(
        v["Headers"],
        serde_json::json!([
            {"Name": "Message-ID", "Value": "<inv-42@example.com>"},
            {"Name": "X-Custom", "Value": "one two"}
        ])
    );
    assert_eq!(v["Attachments"][0]["ContentID"], "cid:logo@x");
    assert_eq!(v["Attachments"][0]["Name"], "logo.png");
    assert!(v["Attachments"][1].get("ContentID").is_none());
}

#[test]
fn several_hidden_recipients_are_refused_permanently() {
    let e = body(
        b"From: a@example.com\r\nTo: list@dest.test\r\n\r\nx\r\n",
        &["x@y.test", "z@y.test"],
    )
    .unwrap_err();
    assert!(e.is_permanent());
    assert!(e.reason().contains("visible recipient"), "{e}");
}

#[test]
fn error_text_has_code() {
    assert_eq!(
        Postmark::error_text(
            &HeaderMap::new(),
            br#"{"ErrorCode":300,"Message":"Invalid 'From' address."}"#
        )
        .as_deref(),
        Some("ErrorCode 300: Invalid 'From' address.")
    );
}
