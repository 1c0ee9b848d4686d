use super::*;

fn body(data: &[u8], rcpts: &[&str]) -> serde_json::Value {
    let rcpt: Vec<String> = rcpts.iter().map(|s| s.to_string()).collect();
    let msg = OutboundMessage {
        id: "q1",
        mail_from: "billing@example.com",
        rcpt_to: &rcpt,
        data,
    };
    let mail = convert::parse(data).unwrap();
    serde_json::from_slice(&request_body(&mail, &msg, &["invoices".into()]).unwrap()).unwrap()
}

#[test]
fn rich_message() {
    let v = body(
        convert::tests::RICH,
        &["bob@dest.test", "carol@dest.test", "dave@other.test"],
    );
    assert_eq!(
        v["personalizations"],
        serde_json::json!([{
            "to": [{"email": "bob@dest.test", "name": "Bob"}],
            "cc": [{"email": "carol@dest.test", "name": "Carol"}],
            "bcc": [{"email": "dave@other.test"}],
        }])
    );
    assert_eq!(
        v["from"],
        serde_json::json!({"email": "billing@example.com", "name": "Billing, Dept."})
    );
    assert_eq!(v["reply_to_list"].as_array().unwrap().len(), 2);
    assert!(v.get("reply_to").is_none());
    assert_eq!(v["subject"], "Invoice €42");
    assert_eq!(v["content"][0]["type"], "text/plain");
    assert_eq!(v["content"][1]["type"], "text/html");
    assert_eq!(v["attachments"][0]["disposition"], "inline");
    assert_eq!(v["attachments"][0]["content_id"], "logo@x");
    assert_eq!(v["attachments"][1]["disposition"], "attachment");
    assert!(v["attachments"][1].get("content_id").is_none());
    assert_eq!(
        v["headers"],
        serde_json::json!({"Message-ID": "<inv-42@example.com>", "X-Custom": "one two"})
    );
    assert_eq!(v["categories"], serde_json::json!(["invoices"]));
}

#[test]
fn hidden_recipients_get_one_personalization_each() {
    let v = body(
        b"From: a@example.com\r\nTo: undisclosed-recipients:;\r\nSubject: s\r\n\r\nx\r\n",
        &["x@y.test", "z@y.test"],
    );
    assert_eq!(
        v["personalizations"],
        serde_json::json!([{"to": [{"email": "x@y.test"}]}, {"to": [{"email": "z@y.test"}]}])
    );
}

#[test]
fn no_body_gets_a_blank_text() {
    let v = body(
        b"From: a@example.com\r\nTo: x@y.test\r\n\r\n",
        &["x@y.test"],
    );
    assert_eq!(
        v["content"],
        serde_json::json!([{"type": "text/plain", "value": " "}])
    );
    assert!(v.get("subject").is_none());
}

#[test]
fn recipient_names_lose_commas_and_semicolons() {
    let v = body(
            b"From: \"Doe, Jane\" <a@example.com>\r\nTo: \"Smith, Bob; Jr\" <bob@dest.test>\r\n\r\nx\r\n",
            &["bob@dest.test"],
        );
    assert_eq!(v["personalizations"][0]["to"][0]["name"], "Smith Bob Jr");
    assert_eq!(v["from"]["name"], "Doe, Jane");
}

#[test]
fn error_text_joins_fields() {
    let body = br#"{"errors":[{"message":"The from address does not match a verified Sender Identity.","field":"from","help":null},{"message":"x"}]}"#;
    assert_eq!(
        Sendgrid::error_text(&HeaderMap::new(), body).as_deref(),
        Some("from: The from address does not match a verified Sender Identity.; x")
    );
}
