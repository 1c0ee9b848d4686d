use super::*;
use mail_parser::MessageParser;

fn from_of(headers: &str) -> Result<String, FromError> {
    let raw = format!("{headers}Subject: t\r\n\r\nbody\r\n");
    let msg = MessageParser::new().parse(raw.as_bytes()).unwrap();
    let raw_count = raw
        .split("\r\n\r\n")
        .next()
        .unwrap()
        .split("\r\n")
        .filter(|l| l.to_ascii_lowercase().starts_with("from"))
        .count();
    from_address(&msg, raw_count)
}

#[test]
fn one_from_one_mailbox() {
    assert_eq!(
        from_of("From: Bill <billing@example.com>\r\n"),
        Ok("billing@example.com".into())
    );
    assert_eq!(
        from_of("FROM : billing@example.com\r\n"),
        Ok("billing@example.com".into())
    );
    // Display names and comments that look like addresses do not count.
    assert_eq!(
        from_of("From: \"billing@example.com\" <evil@x.test>\r\n"),
        Ok("evil@x.test".into())
    );
    assert_eq!(
        from_of("From: (billing@example.com) evil@x.test\r\n"),
        Ok("evil@x.test".into())
    );
    assert_eq!(
        from_of("From: =?UTF-8?B?Ym9i?= <bob@example.com>\r\n"),
        Ok("bob@example.com".into())
    );
}

#[test]
fn refusals() {
    assert_eq!(from_of("To: a@x\r\n"), Err(FromError::Missing));
    assert_eq!(
        from_of("From: a@x\r\nFrom: b@y\r\n"),
        Err(FromError::Several(2))
    );
    assert_eq!(
        from_of("From: <a@x>, <b@y>\r\n"),
        Err(FromError::Mailboxes(2))
    );
    assert_eq!(
        from_of("From: g: a@x, b@y;\r\n"),
        Err(FromError::Mailboxes(2))
    );
    assert_eq!(from_of("From: evil\r\n"), Err(FromError::Unparsable));
    assert_eq!(from_of("From: <>\r\n"), Err(FromError::Unparsable));
    assert_eq!(from_of("From:\r\n"), Err(FromError::Unparsable));
}

#[test]
fn raw_and_parsed_views_must_agree() {
    let msg = MessageParser::new()
        .parse(b"From: a@x\r\n\r\nbody\r\n".as_slice())
        .unwrap();
    assert_eq!(from_address(&msg, 1), Ok("a@x".into()));
    assert_eq!(from_address(&msg, 2), Err(FromError::Several(2)));
    assert_eq!(from_address(&msg, 0), Err(FromError::Ambiguous));
}

#[test]
fn allowed_patterns() {
    let p = vec![
        "billing@example.com".to_string(),
        "*@erp.example.com".to_string(),
    ];
    assert_eq!(check_allowed("Billing@Example.com", &p, "erp"), Ok(()));
    assert_eq!(check_allowed("x@erp.example.com", &p, "erp"), Ok(()));
    assert_eq!(
        check_allowed("x@evil.example", &p, "erp")
            .unwrap_err()
            .to_string(),
        "From <x@evil.example> not allowed for credential \"erp\""
    );
}
