use super::*;

#[test]
fn form_has_one_to_per_recipient_and_the_message_file() {
    let rcpt = vec!["a@x.test".to_string(), "b@y.test".to_string()];
    let msg = OutboundMessage {
        id: "q1",
        mail_from: "app@example.com",
        rcpt_to: &rcpt,
        data: b"Subject: s\r\n\r\nbody\r\n",
    };
    let body = form_body("BB", &msg, &[]).unwrap();
    assert_eq!(
        String::from_utf8(body).unwrap(),
        "--BB\r\nContent-Disposition: form-data; name=\"to\"\r\n\r\na@x.test\r\n\
             --BB\r\nContent-Disposition: form-data; name=\"to\"\r\n\r\nb@y.test\r\n\
             --BB\r\nContent-Disposition: form-data; name=\"message\"; filename=\"message.mime\"\r\n\
             Content-Type: message/rfc822\r\n\r\nSubject: s\r\n\r\nbody\r\n\r\n--BB--\r\n"
    );
}

#[test]
fn operator_tags_are_o_tag_fields_before_the_message() {
    let rcpt = vec!["a@x.test".to_string()];
    let msg = OutboundMessage {
        id: "q1",
        mail_from: "s@x.test",
        rcpt_to: &rcpt,
        data: b"Subject: s\r\n\r\nhi\r\n",
    };
    let body = form_body("BB", &msg, &["invoices".into(), "erp".into()]).unwrap();
    let text = String::from_utf8(body).unwrap();
    let tag = "--BB\r\nContent-Disposition: form-data; name=\"o:tag\"\r\n\r\n";
    let first = text.find(&format!("{tag}invoices\r\n")).expect("first tag");
    let second = text.find(&format!("{tag}erp\r\n")).expect("second tag");
    let message = text.find("name=\"message\"").expect("message part");
    assert!(first < second && second < message, "{text}");
}

#[test]
fn domain_must_be_a_host_name() {
    let cfg = |domain: &str| Settings {
        endpoint: Endpoint {
            base_url: "https://api.mailgun.net".into(),
            timeout: std::time::Duration::from_secs(5),
            ca_file: None,
        },
        domain: domain.into(),
        api_key: Secret::for_test("key-secret"),
        tags: Vec::new(),
    };
    assert!(MailgunUpstream::new("mg", &cfg("../admin")).is_err());
    let up = MailgunUpstream::new("mg", &cfg("mg.example.com")).unwrap();
    assert_eq!(
        up.api.url().as_str(),
        "https://api.mailgun.net/v3/mg.example.com/messages.mime"
    );
    assert!(!format!("{:?}", cfg("x")).contains("key-secret"));
}
