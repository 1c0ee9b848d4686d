//! Inspection and repair over real SMTP: the real binary on loopback, the
//! mock HTTPS upstream recording what leaves. Repairs must change exactly
//! what they document (and nothing else, byte for byte); every refusal must
//! be the reply to the final dot, with its exact code, and nothing refused
//! may reach the upstream.

mod common;

use common::*;

/// An authenticated STARTTLS session as credential `user`.
fn session(ca: &TestCa, p: &Postern, user: &str) -> SmtpClient {
    let mut c = SmtpClient::connect(p.port(0));
    c.greet_starttls(ca);
    c.auth_plain(user, PASSWORD)
        .expect(235, "2.7.0", "AUTH PLAIN");
    c
}

/// Splits a message at the empty line: (header lines without CRLF, body
/// after the empty line).
fn split_message(msg: &[u8]) -> (Vec<String>, &[u8]) {
    let at = msg
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no header/body separator in\n{}", show(msg)));
    let head = String::from_utf8_lossy(&msg[..at]);
    (
        head.split("\r\n").map(str::to_string).collect(),
        &msg[at + 4..],
    )
}

/// `Thu, 01 Jan 1970 00:00:00 +0000`
fn is_rfc5322_date(d: &str) -> bool {
    let parts: Vec<&str> = d.split(' ').collect();
    parts.len() == 6
        && parts[0].len() == 4
        && parts[0].ends_with(',')
        && parts[1].len() == 2
        && parts[2].len() == 3
        && parts[3].len() == 4
        && parts[4].len() == 8
        && parts[4].split(':').count() == 3
        && parts[5] == "+0000"
}

#[test]
fn repairs_add_date_and_message_id_remove_bcc_and_keep_everything_else() {
    let ca = TestCa::new();
    let up = MockUpstream::start(&ca);
    let mut cfg = Config::new(&up.url());
    cfg.extra = "[inspect]\nstrip_headers = [\"X-Originating-IP\"]\n".into();
    let p = Postern::start(&ca, &cfg);

    let kept_head = "From: App <app@example.com>\r\nTo: Bob <bob@dest.test>\r\nSubject: repairs\r\nMIME-Version: 1.0\r\nX-Mixed-Case:   spacing\r\n\tand folding  kept\r\n";
    let body: &[u8] = b"Body line one.\r\nBcc: body text, not a header\r\n.leading dot\r\n\r\n  indented\ttab\r\n";
    let mut sent = Vec::new();
    sent.extend_from_slice(
        b"From: App <app@example.com>\r\nTo: Bob <bob@dest.test>\r\nBcc: Secret <secret@dest.test>,\r\n\tother@dest.test\r\nSubject: repairs\r\nx-originating-ip: [10.9.8.7]\r\nMIME-Version: 1.0\r\nX-Mixed-Case:   spacing\r\n\tand folding  kept\r\nBCC: second@dest.test\r\n\r\n",
    );
    sent.extend_from_slice(body);

    let mut c = session(&ca, &p, "app");
    let r = c.send_message(
        "app@example.com",
        &["bob@dest.test", "secret@dest.test"],
        &sent,
    );
    r.expect(250, "2.0.0", "DATA of a message needing repairs");
    c.quit();

    let reqs = p.delivered(&up, 1);
    assert_eq!(reqs.len(), 1);
    let got = &reqs[0].body;
    // The Bcc recipient still gets the message: only the header goes.
    assert_eq!(
        reqs[0].header_all("x-postern-rcpt-to").join(", "),
        "bob@dest.test, secret@dest.test"
    );
    let (received, rest) = split_received(got);
    assert!(
        String::from_utf8_lossy(received).contains("by relay.test (postern) with ESMTPSA id"),
        "{}",
        show(received)
    );
    let (lines, got_body) = split_message(rest);
    assert_bytes_eq(got_body, body, "body");
    let date = lines
        .iter()
        .find_map(|l| l.strip_prefix("Date: "))
        .unwrap_or_else(|| panic!("no Date added: {lines:?}"));
    assert!(is_rfc5322_date(date), "Date {date:?}");
    let mid = lines
        .iter()
        .find_map(|l| l.strip_prefix("Message-ID: "))
        .unwrap_or_else(|| panic!("no Message-ID added: {lines:?}"));
    let id = mid
        .strip_prefix('<')
        .and_then(|m| m.strip_suffix("@relay.test>"))
        .unwrap_or_else(|| panic!("Message-ID {mid:?} is not <random@relay.test>"));
    assert!(
        id.len() >= 16 && id.bytes().all(|b| b.is_ascii_alphanumeric()),
        "{mid}"
    );
    // Everything else is byte-identical: kept headers in order, then the
    // two added ones, then the untouched separator and body.
    let want = format!("{kept_head}Date: {date}\r\nMessage-ID: {mid}\r\n\r\n");
    let mut want = want.into_bytes();
    want.extend_from_slice(body);
    assert_bytes_eq(rest, &want, "forwarded message minus Received header");
}

#[test]
fn refusals_get_exact_replies_and_never_reach_the_upstream() {
    let ca = TestCa::new();
    let up = MockUpstream::start(&ca);
    let mut cfg = Config::new(&up.url());
    cfg.extra = "[inspect]\nmax_attachment_size = \"1KiB\"\n".into();
    let p = Postern::start(&ca, &cfg);

    let plain = |headers: &str| {
        format!("{headers}To: <bob@dest.test>\r\nSubject: t\r\n\r\nhello\r\n").into_bytes()
    };
    let with_part = |disposition: &str, content: &str| {
        format!(
            "From: <app@example.com>\r\nTo: <bob@dest.test>\r\nSubject: attachment\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"outer\"\r\n\r\n\
--outer\r\nContent-Type: text/plain\r\n\r\nSee attached.\r\n\
--outer\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\nContent-Disposition: {disposition}\r\n\r\n{content}\r\n\
--outer--\r\n"
        )
        .into_bytes()
    };
    let nested = "From: <app@example.com>\r\nTo: <bob@dest.test>\r\nSubject: nested\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"l1\"\r\n\r\n\
--l1\r\nContent-Type: multipart/alternative; boundary=\"l2\"\r\n\r\n\
--l2\r\nContent-Type: text/plain\r\n\r\nplain\r\n\
--l2\r\nContent-Type: multipart/mixed; boundary=\"l3\"\r\n\r\n\
--l3\r\nContent-Type: application/octet-stream; name=\"tools.ZIP\"\r\n\r\nPK\r\n\
--l3\r\nContent-Type: application/octet-stream; name=\"setup.Msi\"\r\n\r\nMSI\r\n\
--l3--\r\n--l2--\r\n--l1--\r\n"
        .as_bytes()
        .to_vec();
    // 2000 decoded bytes, 1 KiB allowed.
    let big = "QUFB".repeat(666) + "QUE=";
    let long_line = format!(
        "From: <app@example.com>\r\nX-Long: {}\r\n",
        "x".repeat(999 - "X-Long: ".len())
    );

    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "From not allowed",
            plain("From: Evil <x@evil.example>\r\n"),
            "550 5.7.1 From <x@evil.example> not allowed for credential \"app\"",
        ),
        (
            "two From headers",
            plain("From: <app@example.com>\r\nFrom: <x@evil.example>\r\n"),
            "554 5.6.0 Message has 2 From headers; exactly one is required",
        ),
        (
            "no From header",
            plain(""),
            "554 5.6.0 Message has no From header",
        ),
        (
            "NUL in a header",
            plain("From: <app@example.com>\r\nX-Nul: a\0b\r\n"),
            "554 5.6.0 Header line 2 contains a NUL byte",
        ),
        (
            "999-octet header line",
            plain(&long_line),
            "554 5.6.0 Header line 2 is 999 octets long; the limit is 998 (RFC 5322)",
        ),
        (
            "8-bit header without SMTPUTF8",
            plain("From: <app@example.com>\r\nX-Note: caf\u{e9}\r\n"),
            "554 5.6.0 Header line 2 contains 8-bit characters; use SMTPUTF8 or encode them (RFC 2047)",
        ),
        (
            "blocked attachment, plain name",
            with_part("attachment; filename=\"Invoice.EXE\"", "TVo="),
            "554 5.7.1 Attachment \"Invoice.EXE\" blocked (extension .exe)",
        ),
        (
            "blocked name inside nested multiparts",
            nested,
            "554 5.7.1 Attachment \"setup.Msi\" blocked (extension .msi)",
        ),
        (
            "RFC 2231 encoded name",
            with_part("attachment; filename*=UTF-8''invoice.%65xe", "TVo="),
            "554 5.7.1 Attachment \"invoice.exe\" blocked (extension .exe)",
        ),
        (
            "RFC 2047 encoded name",
            with_part(
                "attachment; filename=\"=?UTF-8?B?aW52b2ljZS5leGU=?=\"",
                "TVo=",
            ),
            "554 5.7.1 Attachment \"invoice.exe\" blocked (extension .exe)",
        ),
        (
            "attachment over max_attachment_size",
            with_part("attachment; filename=\"report.pdf\"", &big),
            "552 5.7.1 Attachment \"report.pdf\" is 2000 bytes; the limit is 1024 bytes",
        ),
    ];

    let mut c = session(&ca, &p, "app");
    for (what, content, want) in &cases {
        let r = c.send_message("app@example.com", &["bob@dest.test"], content);
        assert_eq!(r.lines, [want.to_string()], "{what}");
    }
    // The session goes on after refusals, and a good message passes.
    let control = simple_message("app@example.com", "bob@dest.test", "control");
    c.send_message("app@example.com", &["bob@dest.test"], &control)
        .expect(250, "2.0.0", "control message");
    c.quit();

    p.delivered(&up, 1);
    // Once the queue is empty, everything that was accepted has been sent.
    p.wait_queue_empty();
    let reqs = up.requests();
    assert_eq!(
        reqs.len(),
        1,
        "only the control message may reach the upstream: {reqs:#?}"
    );
    assert!(
        contains(&reqs[0].body, b"Subject: control\r\n"),
        "{}",
        show(&reqs[0].body)
    );
    assert!(p.dead_files().is_empty(), "{:?}", p.dead_files());
}

#[test]
fn eight_bit_headers_are_accepted_with_smtputf8() {
    let ca = TestCa::new();
    let up = MockUpstream::start(&ca);
    let p = Postern::start(&ca, &Config::new(&up.url()));
    let sent = "From: Jos\u{e9} <app@example.com>\r\nTo: <bob@dest.test>\r\nSubject: caf\u{e9} \u{2615}\r\nDate: Mon, 2 Mar 2026 10:00:00 +0100\r\nMessage-ID: <utf8-1@example.com>\r\n\r\nbody\r\n";

    let mut c = session(&ca, &p, "app");
    c.cmd("MAIL FROM:<app@example.com> SMTPUTF8")
        .expect(250, "2.1.0", "MAIL with SMTPUTF8");
    c.cmd("RCPT TO:<bob@dest.test>")
        .expect(250, "2.1.5", "RCPT");
    c.data(sent.as_bytes())
        .expect(250, "2.0.0", "UTF-8 headers with SMTPUTF8");
    // The same bytes without SMTPUTF8 are refused.
    let r = c.send_message("app@example.com", &["bob@dest.test"], sent.as_bytes());
    r.expect(554, "5.6.0", "UTF-8 headers without SMTPUTF8");
    c.quit();

    let reqs = p.delivered(&up, 1);
    // Date and Message-ID were present: only the trace header is added.
    assert_forwarded(&reqs[0].body, sent.as_bytes());
    p.wait_queue_empty();
    assert_eq!(up.count(), 1);
}

#[test]
fn allowed_from_and_received_privacy() {
    let ca = TestCa::new();
    let up = MockUpstream::start(&ca);
    let mut cfg = Config::new(&up.url());
    cfg = cfg.credential(format!(
        "{}allowed_from = [\"*@erp.example.com\"]\n",
        Config::password_credential("erp", "erp", &["*@example.com"])
    ));
    cfg.extra = "[inspect]\nreceived_privacy = true\n".into();
    let p = Postern::start(&ca, &cfg);

    let msg = |from: &str| {
        format!("From: <{from}>\r\nTo: <bob@dest.test>\r\nSubject: from {from}\r\nDate: Mon, 2 Mar 2026 10:00:00 +0100\r\nMessage-ID: <{from}>\r\n\r\nhi\r\n").into_bytes()
    };
    let mut c = session(&ca, &p, "erp");
    // The envelope sender is allowed; the From header is held to allowed_from.
    let r = c.send_message(
        "erp@example.com",
        &["bob@dest.test"],
        &msg("billing@example.com"),
    );
    assert_eq!(
        r.lines,
        ["550 5.7.1 From <billing@example.com> not allowed for credential \"erp\""]
    );
    let ok = msg("invoices@erp.example.com");
    c.send_message("erp@example.com", &["bob@dest.test"], &ok)
        .expect(250, "2.0.0", "From allowed by allowed_from");
    c.quit();

    let reqs = p.delivered(&up, 1);
    let got = &reqs[0].body;
    let text = String::from_utf8_lossy(got);
    assert!(
        text.starts_with("Received: by relay.test (postern) with ESMTPSA id "),
        "{text}"
    );
    let (trace, rest) = text.split_once("\r\nFrom: ").expect("From after Received");
    assert!(
        !trace.contains("127.0.0.1") && !trace.contains("client.test") && !trace.contains("from "),
        "privacy Received names the client: {trace}"
    );
    assert_bytes_eq(
        format!("From: {rest}").as_bytes(),
        &ok,
        "message after Received",
    );
    p.wait_queue_empty();
    assert_eq!(up.count(), 1);
}
