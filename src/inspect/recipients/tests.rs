use super::*;

fn env(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

fn only(msg: &str, rcpts: &[&str]) -> Vec<String> {
    header_only(msg.as_bytes(), &env(rcpts))
        .into_iter()
        .map(|h| format!("{}:{}", h.field, h.address))
        .collect()
}

#[test]
fn envelope_recipients_in_headers_pass_in_any_case_and_form() {
    let msg = "From: a@example.com\r\nTo: Bob <Bob@Dest.Test>, \"Carol\" <carol@dest.test>\r\nCc: =?utf-8?q?D=C3=B6ner?= <dave@dest.test>\r\nSubject: x\r\n\r\nTo: evil@body.example\r\n";
    assert!(only(msg, &["bob@dest.test", "carol@dest.test", "dave@dest.test"]).is_empty());
    // Non-ASCII domains compare by their A-labels, quoted local parts by content.
    let msg = "To: user@Bücher.example, \"john.doe\"@dest.test\r\n\r\n";
    assert_eq!(
        only(
            msg,
            &["user@xn--bcher-kva.example", "\"john.doe\"@dest.test"]
        ),
        Vec::<String>::new()
    );
}

#[test]
fn every_recipient_field_and_form_is_seen() {
    let cases = [
        (
            "To: ok@dest.test, evil@attacker.example\r\n",
            "To:evil@attacker.example",
        ),
        (
            "Cc: Evil <evil@attacker.example>\r\n",
            "Cc:evil@attacker.example",
        ),
        (
            "Bcc: evil@attacker.example\r\n",
            "Bcc:evil@attacker.example",
        ),
        (
            "Resent-To: evil@attacker.example\r\n",
            "Resent-To:evil@attacker.example",
        ),
        (
            "RESENT-CC: evil@attacker.example\r\n",
            "Resent-Cc:evil@attacker.example",
        ),
        (
            "Resent-Bcc: evil@attacker.example\r\n",
            "Resent-Bcc:evil@attacker.example",
        ),
        (
            "To: undisclosed: ok@dest.test, evil@attacker.example;\r\n",
            "To:evil@attacker.example",
        ),
        (
            "To: =?utf-8?b?w5xiZXIgQm9i?= <evil@attacker.example>\r\n",
            "To:evil@attacker.example",
        ),
        (
            "To: (comment) evil@attacker.example (x)\r\n",
            "To:evil@attacker.example",
        ),
        (
            "To: ok@dest.test,\r\n\tevil@attacker.example\r\n",
            "To:evil@attacker.example",
        ),
        // Unqualified names are header-only too (cron mail to root).
        ("To: root\r\n", "To:root"),
    ];
    for (header, want) in cases {
        let msg = format!("From: a@example.com\r\n{header}Subject: s\r\n\r\nbody\r\n");
        assert_eq!(only(&msg, &["ok@dest.test"]), [want], "{header}");
    }
}

#[test]
fn a_field_mail_parser_reads_otherwise_is_still_caught_by_the_raw_scan() {
    // Unbalanced quote: mail-parser folds the rest into a display name.
    let msg = "To: \"ok@dest.test, evil@attacker.example\r\n\r\n";
    assert!(only(msg, &["ok@dest.test"]).contains(&"To:evil@attacker.example".to_string()));
    // The body and other headers are not recipient fields.
    let msg = "From: evil@attacker.example\r\nReply-To: evil@attacker.example\r\nTo: ok@dest.test\r\n\r\nCc: evil@attacker.example\r\n";
    assert!(only(msg, &["ok@dest.test"]).is_empty());
    // Undisclosed recipients name nobody.
    let msg = "To: undisclosed-recipients:;\r\n\r\n";
    assert!(only(msg, &["ok@dest.test"]).is_empty());
}

#[test]
fn drop_rewrites_to_envelope_recipients_only() {
    let msg = "Received: x\r\nFrom: a@example.com\r\nTo: \"Bob B\" <BOB@dest.test>, evil@attacker.example\r\nCc: other@attacker.example\r\nResent-To: =?utf-8?q?M=C3=BCller?= <carol@dest.test>\r\nSubject: s\r\n\r\nTo: body@stays.example\r\n";
    let (out, dropped) =
        keep_envelope_only(msg.as_bytes(), &env(&["bob@dest.test", "carol@dest.test"]))
            .unwrap()
            .unwrap();
    let out = String::from_utf8(out).unwrap();
    assert_eq!(
        out,
        "Received: x\r\nFrom: a@example.com\r\nTo: \"Bob B\" <bob@dest.test>\r\nResent-To: =?utf-8?b?TcO8bGxlcg==?= <carol@dest.test>\r\nSubject: s\r\n\r\nTo: body@stays.example\r\n"
    );
    let dropped: Vec<String> = dropped.iter().map(|d| d.to_string()).collect();
    assert_eq!(
        dropped,
        [
            "Recipient <evil@attacker.example> in To: is not an envelope recipient",
            "Recipient <other@attacker.example> in Cc: is not an envelope recipient",
        ]
    );
    assert!(
        keep_envelope_only(out.as_bytes(), &env(&["bob@dest.test", "carol@dest.test"]))
            .unwrap()
            .is_none()
    );
}

#[test]
fn long_names_fold_into_several_encoded_words() {
    let name = "Ünïcödé ".repeat(12);
    let words = encoded_words(name.trim());
    for line in words.split("\r\n") {
        assert!(line.trim().len() <= 75, "{line}");
    }
    let raw = format!("To: {words} <a@b.example>\r\n\r\n");
    let decoded = mail_parser::MessageParser::default()
        .parse(raw.as_bytes())
        .unwrap();
    assert_eq!(
        decoded.to().unwrap().first().unwrap().name(),
        Some(name.trim())
    );
}
