use super::*;

#[test]
fn rich_message() {
    let rcpt: Vec<String> = ["bob@dest.test", "dave@other.test"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let msg = OutboundMessage {
        id: "q1",
        mail_from: "billing@example.com",
        rcpt_to: &rcpt,
        data: convert::tests::RICH,
    };
    let mail = convert::parse(msg.data).unwrap();
    let v: serde_json::Value = serde_json::from_slice(&request_body(&mail, &msg).unwrap()).unwrap();
    assert_eq!(v["from"], "\"Billing, Dept.\" <billing@example.com>");
    assert_eq!(v["to"], serde_json::json!(["\"Bob\" <bob@dest.test>"]));
    assert!(v.get("cc").is_none(), "carol is not an envelope recipient");
    assert_eq!(v["bcc"], serde_json::json!(["dave@other.test"]));
    assert_eq!(
        v["reply_to"],
        serde_json::json!(["help@example.com", "\"Desk\" <desk@example.com>"])
    );
    assert_eq!(v["attachments"][0]["content_id"], "logo@x");
    assert_eq!(v["attachments"][0]["content_type"], "image/png");
    assert_eq!(v["attachments"][2]["filename"], "prices.csv");
    assert_eq!(v["headers"]["X-Custom"], "one two");
}

#[test]
fn conflict_in_progress_is_temporary() {
    let busy =
        br#"{"statusCode":409,"name":"concurrent_idempotent_requests","message":"in progress"}"#;
    let reused = br#"{"statusCode":409,"name":"invalid_idempotent_request","message":"x"}"#;
    assert!(Resend::is_temporary(
        StatusCode::CONFLICT,
        &HeaderMap::new(),
        busy
    ));
    assert!(!Resend::is_temporary(
        StatusCode::CONFLICT,
        &HeaderMap::new(),
        reused
    ));
}
