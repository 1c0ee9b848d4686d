//! Inspection and repair over real SMTP: the real binary on loopback, the
//! mock HTTPS upstream recording what leaves. Repairs must change exactly
//! what they document (and nothing else, byte for byte); every refusal must
//! be the reply to the final dot, with its exact code, and nothing refused
//! may reach the upstream.

use crate::common::*;

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
    // "reject": the refusal of 8-bit header text as it was before
    // header_8bit existed (the default now encodes it).
    cfg.extra = "[inspect]\nmax_attachment_size = \"1KiB\"\nheader_8bit = \"reject\"\n".into();
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
    // The same bytes without SMTPUTF8 are accepted too, but encoded.
    let r = c.send_message("app@example.com", &["bob@dest.test"], sent.as_bytes());
    r.expect(250, "2.0.0", "UTF-8 headers without SMTPUTF8");
    c.quit();

    let mut reqs = p.delivered(&up, 2);
    // Two workers may deliver them in either order: the raw one first here.
    reqs.sort_by_key(|r| !contains(&r.body, "Jos\u{e9}".as_bytes()));
    // Date and Message-ID were present: only the trace header is added,
    // and the UTF-8 stays as it is (RFC 6532).
    assert_forwarded(&reqs[0].body, sent.as_bytes());
    let (head, _) = split_message(&reqs[1].body);
    assert!(
        head.iter().all(|l| l.is_ascii()),
        "without SMTPUTF8 the header must be encoded: {head:#?}"
    );
    assert!(
        head.contains(&"Subject: =?UTF-8?B?Y2Fmw6kg4piV?=".to_string()),
        "{head:#?}"
    );
    p.wait_queue_empty();
    assert_eq!(up.count(), 2);
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

/// A plaintext `networks` listener, as a legacy device or ERP uses it.
fn plain_listener(up: &MockUpstream, inspect: &str) -> Config {
    let mut cfg = Config::new(&up.url())
        .listeners(&["none"])
        .with_loopback_network();
    cfg.extra = format!("[inspect]\n{inspect}");
    cfg
}

fn plain_session(p: &Postern) -> SmtpClient {
    let mut c = SmtpClient::connect(p.port(0));
    c.greet();
    c
}

/// The header section (through its final CRLF) and the body.
fn head_and_body(msg: &[u8]) -> (&[u8], &[u8]) {
    let at = msg
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no header/body separator in\n{}", show(msg)));
    (&msg[..at + 2], &msg[at + 4..])
}

fn strs(v: &serde_json::Value) -> Vec<String> {
    v.as_array()
        .unwrap_or_else(|| panic!("not an array: {v}"))
        .iter()
        .map(|s| {
            s.as_str()
                .unwrap_or_else(|| panic!("not a string: {s}"))
                .to_string()
        })
        .collect()
}

#[test]
fn legacy_8bit_headers_are_encoded_and_decode_to_the_original_text() {
    let ca = TestCa::new();
    let up = MockUpstream::start(&ca);
    let p = Postern::start(&ca, &plain_listener(&up, ""));

    let body: &[u8] =
        b"Sehr geehrter Herr M\xc3\xbcller,\r\nanbei die Rechnung f\xc3\xbcr M\xc3\xa4rz.\r\n";
    // What old PHP mail(), ERPs and Windows tools send: raw UTF-8 ...
    let mut utf8 = b"From: \"M\xc3\xbcller, Hans\" <app@example.com>\r\n\
To: J\xc3\xb6rg Gro\xc3\x9f <bob@dest.test>, carol@dest.test\r\n\
Subject: Rechnung f\xc3\xbcr M\xc3\xa4rz\r\n\
Date: Mon, 2 Mar 2026 10:00:00 +0100\r\n\
Message-ID: <utf8-legacy@example.com>\r\n\
MIME-Version: 1.0\r\n\
Content-Type: text/plain; charset=utf-8\r\n\
Content-Transfer-Encoding: 8bit\r\n\r\n"
        .to_vec();
    utf8.extend_from_slice(body);
    // ... and raw Latin-1 (windows-1252: 0x80 is the euro sign).
    let mut latin1 = b"From: M\xfcller <app@example.com>\r\n\
To: \"Gro\xdf, J\xf6rg\" <bob@dest.test>\r\n\
Subject: Rechnung f\xfcr M\xe4rz: 100 \x80\r\n\
Date: Mon, 2 Mar 2026 10:00:00 +0100\r\n\
Message-ID: <latin1-legacy@example.com>\r\n\r\n"
        .to_vec();
    latin1.extend_from_slice(b"Gr\xfc\xdfe\r\n");

    let mut c = plain_session(&p);
    for (what, msg) in [("raw UTF-8", &utf8), ("raw Latin-1", &latin1)] {
        c.send_message(
            "app@example.com",
            &["bob@dest.test", "carol@dest.test"],
            msg,
        )
        .expect(250, "2.0.0", what);
    }
    c.quit();
    let reqs = p.delivered(&up, 2);
    let by_id = |id: &str| {
        reqs.iter()
            .map(|r| r.body.clone())
            .find(|b| contains(b, id.as_bytes()))
            .unwrap_or_else(|| panic!("no delivery with {id}"))
    };
    let names = ["From", "To", "Subject", "Date", "Message-ID"];

    let got = by_id("<utf8-legacy@example.com>");
    let (head, got_body) = head_and_body(&got);
    assert!(head.is_ascii(), "header not pure ASCII:\n{}", show(head));
    for line in head.split(|&b| b == b'\n') {
        assert!(line.len() <= 79, "line over 78 octets: {}", show(line));
    }
    // The 8bit body keeps its bytes; fields without 8-bit text keep theirs.
    assert_bytes_eq(got_body, body, "body");
    for kept in [
        "\r\nDate: Mon, 2 Mar 2026 10:00:00 +0100\r\n",
        "\r\nContent-Transfer-Encoding: 8bit\r\n",
        "\r\nMessage-ID: <utf8-legacy@example.com>\r\n",
    ] {
        assert!(
            contains(head, kept.as_bytes()),
            "{kept:?} changed:\n{}",
            show(head)
        );
    }
    let py = decode_headers(&got, &names);
    assert_eq!(strs(&py["headers"]["Subject"]), ["Rechnung für März"]);
    assert_eq!(strs(&py["legacy"]["Subject"]), ["Rechnung für März"]);
    assert_eq!(
        py["addresses"]["From"],
        serde_json::json!([["Müller, Hans", "app@example.com"]])
    );
    assert_eq!(
        py["addresses"]["To"],
        serde_json::json!([["Jörg Groß", "bob@dest.test"], ["", "carol@dest.test"]])
    );
    for n in names {
        assert_eq!(py["defects"][n], serde_json::json!([]), "{n}: {py}");
    }

    let got = by_id("<latin1-legacy@example.com>");
    let (head, got_body) = head_and_body(&got);
    assert!(head.is_ascii(), "header not pure ASCII:\n{}", show(head));
    assert_bytes_eq(got_body, b"Gr\xfc\xdfe\r\n", "body");
    let py = decode_headers(&got, &names);
    assert_eq!(
        strs(&py["headers"]["Subject"]),
        ["Rechnung für März: 100 €"]
    );
    assert_eq!(
        py["addresses"]["From"],
        serde_json::json!([["Müller", "app@example.com"]])
    );
    assert_eq!(
        py["addresses"]["To"],
        serde_json::json!([["Groß, Jörg", "bob@dest.test"]])
    );
    for n in names {
        assert_eq!(py["defects"][n], serde_json::json!([]), "{n}: {py}");
    }
    p.wait_queue_empty();
    assert_eq!(up.count(), 2);
}

#[test]
fn what_no_encoding_can_carry_is_still_refused_naming_the_header() {
    let ca = TestCa::new();
    let up = MockUpstream::start(&ca);
    let p = Postern::start(&ca, &plain_listener(&up, ""));
    let cases: &[(&str, &[u8], &str)] = &[
        (
            "8-bit local part in To",
            b"From: <app@example.com>\r\nTo: J\xc3\xb6rg <j\xc3\xb6rg@dest.test>\r\nSubject: t\r\n\r\nhi\r\n",
            "554 5.6.0 Header To (line 2) contains an 8-bit address; use SMTPUTF8 or an ASCII address",
        ),
        (
            "Latin-1 local part in From",
            b"From: M\xfcller <m\xfcller@example.com>\r\nSubject: t\r\n\r\nhi\r\n",
            "554 5.6.0 Header From (line 1) contains an 8-bit address; use SMTPUTF8 or an ASCII address",
        ),
        (
            "8-bit domain in Cc",
            b"From: <app@example.com>\r\nSubject: t\r\nCc: <a@b\xc3\xbccher.example>\r\n\r\nhi\r\n",
            "554 5.6.0 Header Cc (line 3) contains an 8-bit address; use SMTPUTF8 or an ASCII address",
        ),
        (
            "8-bit Message-ID",
            b"From: <app@example.com>\r\nMessage-ID: <\xc3\xa4@example.com>\r\n\r\nhi\r\n",
            "554 5.6.0 Header Message-ID (line 2) contains 8-bit characters, which this header cannot carry without SMTPUTF8",
        ),
    ];
    let mut c = plain_session(&p);
    for (what, msg, want) in cases {
        let r = c.send_message("app@example.com", &["bob@dest.test"], msg);
        assert_eq!(r.lines, [want.to_string()], "{what}");
    }
    // With SMTPUTF8 the 8-bit address is fine (RFC 6531/6532).
    c.cmd("MAIL FROM:<app@example.com> SMTPUTF8")
        .expect(250, "2.1.0", "MAIL SMTPUTF8");
    c.cmd("RCPT TO:<bob@dest.test>")
        .expect(250, "2.1.5", "RCPT");
    c.data(cases[0].1)
        .expect(250, "2.0.0", "8-bit address with SMTPUTF8");
    c.quit();
    let got = p.delivered(&up, 1).remove(0).body;
    assert!(
        contains(&got, b"\r\nTo: J\xc3\xb6rg <j\xc3\xb6rg@dest.test>\r\n"),
        "{}",
        show(&got)
    );
    p.wait_queue_empty();
    assert_eq!(up.count(), 1);
}

#[test]
fn header_8bit_reject_keeps_the_old_reply_and_pass_forwards_the_bytes() {
    let ca = TestCa::new();
    let up = MockUpstream::start(&ca);
    let utf8 = b"From: J\xc3\xb6rg <app@example.com>\r\nTo: <bob@dest.test>\r\nSubject: Rechnung f\xc3\xbcr M\xc3\xa4rz\r\nDate: Mon, 2 Mar 2026 10:00:00 +0100\r\nMessage-ID: <pass@example.com>\r\n\r\nhi\r\n";
    let latin1 = b"From: <app@example.com>\r\nTo: <bob@dest.test>\r\nSubject: f\xfcr\r\n\r\nhi\r\n";

    let p = Postern::start(&ca, &plain_listener(&up, "header_8bit = \"reject\"\n"));
    let mut c = plain_session(&p);
    let r = c.send_message("app@example.com", &["bob@dest.test"], utf8);
    assert_eq!(
        r.lines,
        [
            "554 5.6.0 Header line 1 contains 8-bit characters; use SMTPUTF8 or encode them (RFC 2047)"
        ]
    );
    let r = c.send_message("app@example.com", &["bob@dest.test"], latin1);
    assert_eq!(
        r.lines,
        [
            "554 5.6.0 Header line 3 contains 8-bit characters; use SMTPUTF8 or encode them (RFC 2047)"
        ]
    );
    c.quit();
    drop(p);
    assert_eq!(up.count(), 0);

    let p = Postern::start(&ca, &plain_listener(&up, "header_8bit = \"pass\"\n"));
    let mut c = plain_session(&p);
    c.send_message("app@example.com", &["bob@dest.test"], utf8)
        .expect(250, "2.0.0", "raw UTF-8 under pass");
    // RFC 6532 is UTF-8: Latin-1 is not passed on.
    let r = c.send_message("app@example.com", &["bob@dest.test"], latin1);
    assert_eq!(r.lines, ["554 5.6.0 Header line 3 is not valid UTF-8"]);
    c.quit();
    p.only_delivery(&up, utf8);
}

#[test]
fn missing_from_envelope_adds_the_envelope_sender_and_the_default_refuses() {
    let ca = TestCa::new();
    let up = MockUpstream::start(&ca);
    let no_from = b"To: <bob@dest.test>\r\nSubject: scan\r\nDate: Mon, 2 Mar 2026 10:00:00 +0100\r\nMessage-ID: <scan-1@example.com>\r\n\r\nscan attached\r\n";

    let p = Postern::start(&ca, &plain_listener(&up, ""));
    let mut c = plain_session(&p);
    let r = c.send_message("scanner@example.com", &["bob@dest.test"], no_from);
    assert_eq!(r.lines, ["554 5.6.0 Message has no From header"]);
    c.quit();
    drop(p);

    // allowed_from is stricter than allowed_senders (which lets the null
    // sender in): the envelope sender that stands in for From is held to it
    // like a From the client wrote.
    let mut cfg = Config::new(&up.url())
        .listeners(&["none"])
        .credential(format!(
            "{}allowed_from = [\"scanner@example.com\"]\n",
            Config::networks_credential("scanners", &["127.0.0.0/8"], &["*"])
        ));
    cfg.extra = "[inspect]\nmissing_from = \"envelope\"\n".into();
    let p = Postern::start(&ca, &cfg);
    let mut c = plain_session(&p);
    c.send_message("scanner@example.com", &["bob@dest.test"], no_from)
        .expect(250, "2.0.0", "no From, envelope sender allowed");
    let r = c.send_message("other@example.com", &["bob@dest.test"], no_from);
    assert_eq!(
        r.lines,
        ["550 5.7.1 From <other@example.com> not allowed for credential \"scanners\""]
    );
    let r = c.send_message("", &["bob@dest.test"], no_from);
    assert_eq!(
        r.lines,
        [
            "554 5.6.0 Message has no From header, and the null envelope sender <> cannot stand in for one"
        ]
    );
    // A From that is present but not allowed is refused, never replaced.
    let wrong = b"From: <other@example.com>\r\nTo: <bob@dest.test>\r\n\r\nx\r\n";
    let r = c.send_message("scanner@example.com", &["bob@dest.test"], wrong);
    assert_eq!(
        r.lines,
        ["550 5.7.1 From <other@example.com> not allowed for credential \"scanners\""]
    );
    c.quit();
    let got = p.delivered(&up, 1).remove(0).body;
    let (_, rest) = split_received(&got);
    let (head, body) = head_and_body(rest);
    assert_eq!(body, b"scan attached\r\n");
    assert_bytes_eq(
        head,
        b"To: <bob@dest.test>\r\nSubject: scan\r\nDate: Mon, 2 Mar 2026 10:00:00 +0100\r\nMessage-ID: <scan-1@example.com>\r\nFrom: <scanner@example.com>\r\n",
        "header with the added From",
    );
    p.wait_queue_empty();
    assert_eq!(up.count(), 1);
}
