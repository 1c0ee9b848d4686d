//! End-to-end tests of `Inspector::check`: which reply each refusal gets,
//! and that repairs change nothing but what they document.

use super::*;
use std::time::Duration;

const NOW: SystemTime = SystemTime::UNIX_EPOCH;

fn sub() -> Submission {
    Submission {
        credential: "erp".into(),
        from_patterns: vec!["billing@example.com".into(), "*@erp.example.com".into()],
        smtputf8: false,
        mail_from: "billing@example.com".into(),
        helo: "client.lan".into(),
        peer: "192.0.2.7".parse().unwrap(),
        hostname: "relay.test".into(),
        tls: true,
        authenticated: true,
        queue_id: "Q1".into(),
        rcpt_to: vec!["bob@dest.test".into()],
        refuse_header_only: false,
        strip_control_headers: true,
    }
}

fn inspector(f: impl FnOnce(&mut Settings)) -> Inspector {
    let mut c = Settings::default();
    f(&mut c);
    Inspector::new(c)
}

fn check(data: &[u8]) -> Result<Vec<u8>, InspectError> {
    inspector(|_| {}).check(&sub(), data, NOW)
}

fn reply_of(data: &[u8]) -> (u16, String, String) {
    let r = check(data).unwrap_err().reply();
    (
        r.code,
        r.enhanced.clone().unwrap_or_default(),
        r.lines.join("\n"),
    )
}

const COMPLETE: &[u8] = b"From: Billing <billing@example.com>\r\nTo: bob@dest.test\r\nDate: Mon, 2 Mar 2026 10:00:00 +0100\r\nMessage-ID: <1@example.com>\r\nSubject: ok\r\n\r\nHello.\r\n";

#[test]
fn complete_message_only_gets_received() {
    let out = check(COMPLETE).unwrap();
    let received = received_header(&sub().trace(), NOW);
    assert_eq!(&out[..received.len()], received.as_bytes());
    assert_eq!(&out[received.len()..], COMPLETE);
}

#[test]
fn repairs_add_date_and_message_id_and_drop_bcc() {
    let sent = b"From: billing@example.com\r\nTo: bob@dest.test\r\nBcc: hidden@dest.test,\r\n  other@dest.test\r\nSubject: repairs\r\nX-Originating-IP: [10.1.2.3]\r\n\r\nBody line.\r\nBcc: not a header here\r\n";
    let i = inspector(|c| c.strip_headers = vec!["x-originating-ip".into()]);
    let out = i.check(&sub(), sent, NOW).unwrap();
    let text = String::from_utf8(out).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    assert_eq!(body, "Body line.\r\nBcc: not a header here\r\n");
    let head = head
        .strip_prefix(&received_header(&sub().trace(), NOW))
        .unwrap();
    let lines: Vec<&str> = head.split("\r\n").collect();
    assert_eq!(
        lines[..4],
        [
            "From: billing@example.com",
            "To: bob@dest.test",
            "Subject: repairs",
            "Date: Thu, 01 Jan 1970 00:00:00 +0000"
        ]
    );
    let id = lines[4].strip_prefix("Message-ID: <").unwrap();
    assert!(id.ends_with("@relay.test>"), "{id}");
    assert_eq!(lines.len(), 5);
}

#[test]
fn each_repair_can_be_switched_off() {
    let sent = b"From: billing@example.com\r\nBcc: x@y\r\n\r\nbody\r\n";
    let i = inspector(|c| {
        c.add_date = false;
        c.add_message_id = false;
        c.remove_bcc = false;
        c.add_received = false;
    });
    assert_eq!(i.check(&sub(), sent, NOW).unwrap(), sent);
}

#[test]
fn privacy_received_omits_client() {
    let i = inspector(|c| c.received_privacy = true);
    let out = i.check(&sub(), COMPLETE, NOW).unwrap();
    let text = String::from_utf8_lossy(&out);
    assert!(text.starts_with("Received: by relay.test (postern) with ESMTPSA id Q1"));
    assert!(
        !text.contains("192.0.2.7") && !text.contains("client.lan"),
        "{text}"
    );
}

#[test]
fn stripped_date_is_replaced_when_add_date_is_on() {
    let i = inspector(|c| {
        c.strip_headers = vec!["date".into()];
        c.add_received = false;
    });
    let out = i.check(&sub(), COMPLETE, NOW).unwrap();
    let text = String::from_utf8_lossy(&out);
    assert!(!text.contains("Mon, 2 Mar 2026"));
    assert!(text.contains("Subject: ok\r\nDate: Thu, 01 Jan 1970 00:00:00 +0000\r\n\r\nHello."));
}

#[test]
fn from_refusals() {
    assert_eq!(
        reply_of(b"From: x@evil.example\r\n\r\nhi\r\n"),
        (
            550,
            "5.7.1".into(),
            "From <x@evil.example> not allowed for credential \"erp\"".into()
        )
    );
    let (code, enh, text) =
        reply_of(b"From: billing@example.com\r\nFrom: x@evil.example\r\n\r\nhi\r\n");
    assert_eq!((code, enh.as_str()), (554, "5.6.0"));
    assert!(text.contains("2 From headers"), "{text}");
    assert_eq!(reply_of(b"To: a@b\r\n\r\nhi\r\n").0, 554);
    assert_eq!(reply_of(b"From: nobody\r\n\r\nhi\r\n").1, "5.6.0");
    assert_eq!(
        reply_of(b"\r\nno headers\r\n").2,
        "Message has no header section"
    );
}

#[test]
fn allowed_from_patterns_come_from_the_submission() {
    let mut s = sub();
    s.from_patterns = vec!["*@erp.example.com".into()];
    let i = inspector(|_| {});
    assert!(
        i.check(&s, b"From: a@erp.example.com\r\n\r\nx\r\n", NOW)
            .is_ok()
    );
    assert!(i.check(&s, COMPLETE, NOW).is_err());
}

#[test]
fn header_sanity_refusals_are_554_560() {
    let long = format!(
        "From: billing@example.com\r\nX-Long: {}\r\n\r\nx\r\n",
        "a".repeat(991)
    );
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (
            b"From: billing@example.com\r\nX: a\0b\r\n\r\nx\r\n".to_vec(),
            "NUL",
        ),
        (long.into_bytes(), "999 octets"),
        (
            b"From: billing@example.com\r\nnot a header\r\n\r\nx\r\n".to_vec(),
            "not a header field",
        ),
    ];
    for (data, want) in cases {
        let (code, enh, text) = reply_of(&data);
        assert_eq!((code, enh.as_str()), (554, "5.6.0"), "{text}");
        assert!(text.contains(want), "{text} should mention {want}");
    }
    // header_8bit = "reject": 8-bit text without SMTPUTF8 is refused...
    let reject = inspector(|c| c.header_8bit = Header8bit::Reject);
    let e = reject
        .check(
            &sub(),
            b"From: billing@example.com\r\nSubject: caf\xc3\xa9\r\n\r\nx\r\n",
            NOW,
        )
        .unwrap_err()
        .reply();
    assert_eq!((e.code, e.enhanced.as_deref()), (554, Some("5.6.0")));
    assert_eq!(
        e.lines[0],
        "Header line 2 contains 8-bit characters; use SMTPUTF8 or encode them (RFC 2047)"
    );
    // ...but allowed with it.
    let mut utf8 = sub();
    utf8.smtputf8 = true;
    let ok = reject.check(
        &utf8,
        b"From: billing@example.com\r\nSubject: caf\xc3\xa9\r\n\r\nx\r\n",
        NOW,
    );
    assert!(ok.is_ok(), "{ok:?}");
}

#[test]
fn header_count_and_size_limits() {
    let mut many = b"From: billing@example.com\r\n".to_vec();
    for i in 0..10 {
        many.extend_from_slice(format!("X-N: {i}\r\n").as_bytes());
    }
    many.extend_from_slice(b"\r\nx\r\n");
    let few = inspector(|c| c.max_header_count = 10);
    let e = few.check(&sub(), &many, NOW).unwrap_err();
    assert_eq!(e, InspectError::Header(HeaderError::TooMany { max: 10 }));
    let small = inspector(|c| c.max_header_size = 100);
    let e = small.check(&sub(), &many, NOW).unwrap_err();
    assert_eq!(e.reply().code, 554);
    assert!(inspector(|_| {}).check(&sub(), &many, NOW).is_ok());
}

#[test]
fn attachment_refusals() {
    let msg = |disposition: &str, body: &str| {
        format!(
            "From: billing@example.com\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nsee attached\r\n--b\r\nContent-Type: application/octet-stream\r\nContent-Disposition: {disposition}\r\n\r\n{body}\r\n--b--\r\n"
        )
        .into_bytes()
    };
    assert_eq!(
        reply_of(&msg("attachment; filename=\"invoice.exe\"", "MZ")),
        (
            554,
            "5.7.1".into(),
            "Attachment \"invoice.exe\" blocked (extension .exe)".into()
        )
    );
    let big = inspector(|c| c.max_attachment_size = Some(4));
    let r = big
        .check(&sub(), &msg("attachment; filename=data.bin", "12345"), NOW)
        .unwrap_err()
        .reply();
    assert_eq!((r.code, r.enhanced.as_deref()), (552, Some("5.7.1")));
    assert_eq!(
        r.lines[0],
        "Attachment \"data.bin\" is 5 bytes; the limit is 4 bytes"
    );
    assert!(
        big.check(&sub(), &msg("attachment; filename=data.bin", "1234"), NOW)
            .is_ok()
    );
    let none = inspector(|c| c.blocked_extensions.clear());
    assert!(
        none.check(&sub(), &msg("attachment; filename=a.exe", "MZ"), NOW)
            .is_ok()
    );
}

#[test]
fn internal_errors_are_temporary() {
    let r = InspectError::Internal("boom".into()).reply();
    assert_eq!((r.code, r.enhanced.as_deref()), (451, Some("4.3.0")));
}

#[tokio::test]
async fn run_uses_the_blocking_pool_and_returns_the_bytes() {
    let i = Arc::new(inspector(|c| c.add_received = false));
    let out = i.run(sub(), COMPLETE.to_vec()).await.unwrap();
    assert_eq!(out, COMPLETE);
    let e = i.run(sub(), b"From: x@evil.example\r\n\r\n".to_vec()).await;
    assert!(matches!(
        e,
        Err(InspectError::From(FromError::NotAllowed { .. }))
    ));
    // `Date` is added from the wall clock in `run`.
    let out = i
        .run(sub(), b"From: billing@example.com\r\n\r\nx\r\n".to_vec())
        .await
        .unwrap();
    let text = String::from_utf8(out).unwrap();
    let date = text.lines().find_map(|l| l.strip_prefix("Date: ")).unwrap();
    let year: u32 = date.split(' ').nth(3).unwrap().parse().unwrap();
    let now_year = 1970
        + SystemTime::now()
            .duration_since(NOW)
            .unwrap_or(Duration::ZERO)
            .as_secs()
            / 31_557_600;
    assert!(u64::from(year).abs_diff(now_year) <= 1, "{date}");
}

#[test]
fn deep_nesting_with_an_early_refusal_does_not_overflow() {
    let mut raw = b"From: x@evil.example\r\n".to_vec();
    for _ in 0..100_000 {
        raw.extend_from_slice(b"Content-Type: message/rfc822\r\n\r\n");
    }
    raw.extend_from_slice(b"Subject: end\r\n\r\nhi\r\n");
    // A small stack, as on the blocking pool: dropping the parse tree
    // recursively would abort the process here.
    let e = std::thread::Builder::new()
        .stack_size(512 << 10)
        .spawn(move || check(&raw).unwrap_err())
        .unwrap()
        .join()
        .unwrap();
    assert_eq!(e.reply().code, 550);
}

#[test]
fn control_headers_are_stripped_unless_the_route_passes_them() {
    let msg = b"From: billing@example.com\r\nX-SES-CONFIGURATION-SET: evil\r\nX-Mailgun-Tag: t\r\nX-SMTPAPI: {}\r\nX-PM-Message-Stream: s\r\nX-Other: keep\r\nDate: Mon, 1 Jan 2026 00:00:00 +0000\r\nMessage-ID: <a@b>\r\n\r\nX-SES-Body: stays\r\n";
    let i = inspector(|c| c.add_received = false);
    let out = i.check(&sub(), msg, NOW).unwrap();
    assert_eq!(
        out,
        b"From: billing@example.com\r\nX-Other: keep\r\nDate: Mon, 1 Jan 2026 00:00:00 +0000\r\nMessage-ID: <a@b>\r\n\r\nX-SES-Body: stays\r\n"
    );
    let passing = Submission {
        strip_control_headers: false,
        ..sub()
    };
    assert_eq!(i.check(&passing, msg, NOW).unwrap(), msg);
}

#[test]
fn header_only_recipients_are_refused_after_repairs_when_the_route_says_so() {
    let i = inspector(|c| c.add_received = false);
    let strict = Submission {
        refuse_header_only: true,
        ..sub()
    };
    let msg = b"From: billing@example.com\r\nTo: bob@dest.test, evil@attacker.example\r\n\r\nx\r\n";
    let e = i.check(&strict, msg, NOW).unwrap_err();
    assert_eq!(
        e.reply().to_string(),
        "550 5.7.1 Recipient <evil@attacker.example> in To: is not an envelope recipient"
    );
    assert!(
        i.check(&sub(), msg, NOW).is_ok(),
        "only when the route says so"
    );
    // Bcc is removed by default, so it cannot leak and is not refused.
    let bcc = b"From: billing@example.com\r\nTo: bob@dest.test\r\nBcc: evil@attacker.example\r\n\r\nx\r\n";
    assert!(i.check(&strict, bcc, NOW).is_ok());
}

#[test]
fn eight_bit_headers_are_repaired_before_the_policies_look() {
    let i = inspector(|c| c.add_received = false);
    let sent = b"From: \"M\xc3\xbcller, Hans\" <billing@example.com>\r\nTo: bob@dest.test\r\nSubject: Rechnung f\xfcr M\xe4rz\r\nDate: Mon, 2 Mar 2026 10:00:00 +0100\r\nMessage-ID: <1@example.com>\r\n\r\nK\xf6rper\r\n";
    let out = i.check(&sub(), sent, NOW).unwrap();
    assert_eq!(
        out,
        b"From: =?UTF-8?B?TcO8bGxlciwgSGFucw==?= <billing@example.com>\r\nTo: bob@dest.test\r\nSubject: Rechnung =?UTF-8?B?ZsO8ciBNw6Ryeg==?=\r\nDate: Mon, 2 Mar 2026 10:00:00 +0100\r\nMessage-ID: <1@example.com>\r\n\r\nK\xf6rper\r\n"
    );
    // The From policy sees the address, not the (decoded) display name.
    let (code, _, text) =
        reply_of(b"From: \"billing@example.com \xc3\xa4\" <x@evil.example>\r\n\r\nx\r\n");
    assert_eq!(code, 550, "{text}");
    assert!(text.contains("<x@evil.example>"), "{text}");
    // The attachment policy sees the RFC 2231 name.
    let r = reply_of(b"From: billing@example.com\r\nContent-Type: application/octet-stream; name=\"R\xe9sum\xe9.exe\"\r\n\r\nMZ\r\n");
    assert_eq!(
        r,
        (
            554,
            "5.7.1".into(),
            "Attachment \"R\u{e9}sum\u{e9}.exe\" blocked (extension .exe)".into()
        )
    );
    // What cannot be encoded is refused, naming the header.
    assert_eq!(
        reply_of(b"From: billing@example.com\r\nTo: <j\xc3\xb6rg@dest.test>\r\n\r\nx\r\n"),
        (
            554,
            "5.6.0".into(),
            "Header To (line 2) contains an 8-bit address; use SMTPUTF8 or an ASCII address".into()
        )
    );
    // SMTPUTF8: UTF-8 stays raw (RFC 6532); Latin-1 is still repaired.
    let mut utf8 = sub();
    utf8.smtputf8 = true;
    let m = b"From: billing@example.com\r\nSubject: f\xc3\xbcr\r\nX-Old: f\xfcr\r\n\r\nx\r\n";
    let out = i.check(&utf8, m, NOW).unwrap();
    let text = String::from_utf8(out).unwrap();
    assert!(
        text.contains("Subject: für\r\nX-Old: =?UTF-8?B?ZsO8cg==?=\r\n"),
        "{text}"
    );
}

#[test]
fn header_8bit_pass_keeps_utf8_bytes_and_refuses_the_rest() {
    let i = inspector(|c| {
        c.header_8bit = Header8bit::Pass;
        c.add_received = false;
    });
    let sent = b"From: J\xc3\xb6rg <billing@example.com>\r\nSubject: f\xc3\xbcr\r\nDate: Mon, 2 Mar 2026 10:00:00 +0100\r\nMessage-ID: <1@example.com>\r\n\r\nx\r\n";
    assert_eq!(i.check(&sub(), sent, NOW).unwrap(), sent);
    let latin1 = b"From: billing@example.com\r\nSubject: f\xfcr\r\n\r\nx\r\n";
    assert_eq!(
        i.check(&sub(), latin1, NOW).unwrap_err(),
        InspectError::Header(HeaderError::NotUtf8 { line: 2 })
    );
    let address = b"From: billing@example.com\r\nTo: <j\xc3\xb6rg@dest.test>\r\n\r\nx\r\n";
    assert!(matches!(
        i.check(&sub(), address, NOW),
        Err(InspectError::Header(HeaderError::EightBitAddress { .. }))
    ));
}

#[test]
fn missing_from_envelope_adds_the_envelope_sender() {
    let no_from = b"To: bob@dest.test\r\nSubject: scan\r\n\r\nx\r\n";
    assert_eq!(
        check(no_from).unwrap_err(),
        InspectError::From(FromError::Missing)
    );
    let i = inspector(|c| {
        c.missing_from = MissingFrom::Envelope;
        c.add_received = false;
        c.add_message_id = false;
    });
    let out = i.check(&sub(), no_from, NOW).unwrap();
    assert_eq!(
        out,
        b"To: bob@dest.test\r\nSubject: scan\r\nFrom: <billing@example.com>\r\nDate: Thu, 01 Jan 1970 00:00:00 +0000\r\n\r\nx\r\n"
    );
    // The added From is held to the From policy like any other.
    let mut s = sub();
    s.from_patterns = vec!["*@erp.example.com".into()];
    assert!(matches!(
        i.check(&s, no_from, NOW),
        Err(InspectError::From(FromError::NotAllowed { .. }))
    ));
    // Never instead of a From that is present but wrong.
    assert!(matches!(
        i.check(&sub(), b"From: x@evil.example\r\n\r\nx\r\n", NOW),
        Err(InspectError::From(FromError::NotAllowed { .. }))
    ));
    assert_eq!(
        i.check(&sub(), b"From: nobody\r\n\r\nx\r\n", NOW)
            .unwrap_err(),
        InspectError::From(FromError::Unparsable)
    );
    // A null sender has nothing to offer.
    let mut null = sub();
    null.mail_from = String::new();
    let r = i.check(&null, no_from, NOW).unwrap_err().reply();
    assert_eq!((r.code, r.enhanced.as_deref()), (554, Some("5.6.0")));
    assert!(r.lines[0].contains("null envelope sender"), "{r:?}");
}

#[tokio::test]
async fn small_light_work_stays_on_the_runtime_thread_the_rest_goes_to_the_pool() {
    let i = Arc::new(inspector(|c| c.add_received = false));
    let here = std::thread::current().id();
    let on_this_thread = |cost, data: Vec<u8>| {
        let i = Arc::clone(&i);
        async move {
            i.run_then(sub(), data, cost, move |clean| {
                assert!(clean.starts_with(b"From: Billing <billing@example.com>"));
                std::thread::current().id() == here
            })
            .await
            .unwrap()
        }
    };
    assert!(on_this_thread(Cost::Light, COMPLETE.to_vec()).await);
    assert!(!on_this_thread(Cost::Heavy, COMPLETE.to_vec()).await);
    let mut big = COMPLETE.to_vec();
    big.resize(INLINE_MAX + 1, b'x');
    big.extend_from_slice(b"\r\n");
    assert!(!on_this_thread(Cost::Light, big).await);
}
