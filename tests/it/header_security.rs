//! What a client writes into its message must not widen who receives it or
//! steer the operator's provider account (security review, issue 9):
//! - header-only recipients toward providers that deliver to the headers
//!   (Graph, Gmail): refused at the final dot, dropped with
//!   `header_recipients = "drop"`, dead-lettered if they slip through a
//!   reload;
//! - recipients carried in structures a receiver cannot split differently;
//! - provider control headers stripped before signing.
//!
//! Recipient headers at the mocks are read back with Python's email
//! package (tests/py/addresses.py), not with postern's own parser.

use std::time::Duration;

use crate::common::*;
use crate::common_oauth::*;

const ENVELOPE: &str = "bob@dest.test";
const OUTSIDE: &str = "evil@attacker.example";

/// Header lines that name OUTSIDE next to the envelope recipient, one per
/// way a recipient field can carry an address; and the field each names.
fn leaky_headers() -> Vec<(&'static str, String)> {
    vec![
        ("To", format!("To: Bob <{ENVELOPE}>, {OUTSIDE}\r\n")),
        ("Cc", format!("To: {ENVELOPE}\r\nCc: Eve <{OUTSIDE}>\r\n")),
        ("Bcc", format!("To: {ENVELOPE}\r\nBcc: {OUTSIDE}\r\n")),
        (
            "Resent-To",
            format!("To: {ENVELOPE}\r\nResent-To: {OUTSIDE}\r\n"),
        ),
        ("To", format!("To: undisclosed: {ENVELOPE}, {OUTSIDE};\r\n")),
        (
            "To",
            format!("To: {ENVELOPE},\r\n =?utf-8?b?w5xiZXIgRXZl?= <{OUTSIDE}>\r\n"),
        ),
        // Folding and field-name tricks.
        ("To", format!("To: {ENVELOPE},\r\n\t{OUTSIDE}\r\n")),
        ("Cc", format!("To: {ENVELOPE}\r\nCc:\r\n {OUTSIDE}\r\n")),
        ("To", format!("tO:{ENVELOPE},{OUTSIDE}\r\n")),
        ("To", format!("To : {ENVELOPE}, {OUTSIDE}\r\n")),
        (
            "Bcc",
            format!("To: {ENVELOPE}\r\nBcc: (a\r\n comment) <{OUTSIDE}\r\n >\r\n"),
        ),
    ]
}

fn message(headers: &str, subject: &str) -> Vec<u8> {
    format!(
        "From: App <app@example.com>\r\n{headers}Subject: {subject}\r\n\
         Date: Mon, 1 Jan 2026 00:00:00 +0000\r\nMessage-ID: <{subject}@example.com>\r\n\r\nHello\r\n"
    )
    .into_bytes()
}

/// Addresses of every recipient field of `mime`, as Python reads them.
fn python_recipients(mime: &[u8]) -> Vec<String> {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("m.eml");
    std::fs::write(&path, mime).expect("write message");
    let out = python("addresses.py", &["mime", &path.to_string_lossy()]);
    assert!(
        out.status.success(),
        "addresses.py: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("JSON list")
}

fn python_list(values: &[&str]) -> Vec<String> {
    let mut args = vec!["list"];
    args.extend_from_slice(values);
    let out = python("addresses.py", &args);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("JSON list")
}

fn mime_of(s: &Sent) -> &[u8] {
    match s {
        Sent::Mime { mime, .. } | Sent::Draft { mime, .. } | Sent::Gmail { mime, .. } => mime,
        Sent::Json { .. } => panic!("expected a MIME send, got {s:?}"),
    }
}

/// An authenticated session on postern's STARTTLS listener.
fn session(p: &Postern, ca: &TestCa) -> SmtpClient {
    let mut c = SmtpClient::connect(p.port(0));
    c.greet_starttls(ca);
    c.auth_plain("app", PASSWORD).expect(235, "2.7.0", "AUTH");
    c
}

fn graph(ca: &TestCa, mock: &ProviderMock, upstream_extra: &str) -> Postern {
    let cfg = crate::msgraph_setup::config(
        ca,
        mock,
        &crate::msgraph_setup::secret_auth(),
        &format!("{upstream_extra}\n[inspect]\nremove_bcc = false\n"),
    );
    crate::msgraph_setup::start(ca, &cfg)
}

fn gmail(ca: &TestCa, mock: &ProviderMock, upstream_extra: &str) -> Postern {
    let mut cfg = crate::gmail_setup::config(ca, mock);
    cfg.extra.push_str(&format!(
        "{upstream_extra}\n[inspect]\nremove_bcc = false\n"
    ));
    Postern::start_with_env(
        ca,
        &cfg,
        &[(crate::gmail_setup::KEY_ENV, &crate::gmail_setup::key_json())],
    )
}

/// Every leaky form is refused at the final dot with the field named, and
/// nothing reaches the provider; a clean message still goes through.
fn refused_at_the_dot(p: &Postern, ca: &TestCa, mock: &ProviderMock) {
    let mut c = session(p, ca);
    for (i, (field, headers)) in leaky_headers().into_iter().enumerate() {
        let r = c.send_message(
            "app@example.com",
            &[ENVELOPE],
            &message(&headers, &format!("leak{i}")),
        );
        r.expect(550, "5.7.1", &headers);
        assert_eq!(
            r.text(),
            format!("5.7.1 Recipient <{OUTSIDE}> in {field}: is not an envelope recipient"),
            "{headers}"
        );
    }
    let r = c.send_message(
        "app@example.com",
        &[ENVELOPE],
        &message(&format!("To: {ENVELOPE}\r\n"), "clean"),
    );
    r.expect(250, "2.0.0", "clean message");
    c.quit();
    let sent = mock.wait_sent(1);
    p.wait_queue_empty();
    std::thread::sleep(Duration::from_millis(500));
    let sent_now = mock.sent();
    assert_eq!(
        sent_now.len(),
        1,
        "only the clean message was sent: {sent:?}"
    );
    assert_eq!(python_recipients(mime_of(&sent_now[0])), [ENVELOPE]);
}

#[test]
fn graph_refuses_header_only_recipients_at_the_final_dot() {
    let ca = TestCa::new();
    let mock = ProviderMock::start(&ca);
    let p = graph(&ca, &mock, "");
    refused_at_the_dot(&p, &ca, &mock);
}

#[test]
fn gmail_refuses_header_only_recipients_at_the_final_dot() {
    let ca = TestCa::new();
    let mock = ProviderMock::start(&ca);
    let p = gmail(&ca, &mock, "");
    refused_at_the_dot(&p, &ca, &mock);
}

/// With `drop`, every leaky form is accepted and the provider receives a
/// message whose recipient fields name exactly the envelope.
fn dropped_at_send_time(p: &Postern, ca: &TestCa, mock: &ProviderMock) {
    let mut c = session(p, ca);
    let cases = leaky_headers();
    for (i, (_, headers)) in cases.iter().enumerate() {
        let r = c.send_message(
            "app@example.com",
            &[ENVELOPE, "carol@dest.test"],
            &message(headers, &format!("drop{i}")),
        );
        r.expect(250, "2.0.0", headers);
    }
    c.quit();
    let sent = mock.wait_sent(cases.len());
    p.wait_queue_empty();
    for s in &sent {
        let mut got = python_recipients(mime_of(s));
        got.sort();
        got.dedup();
        assert_eq!(got, [ENVELOPE, "carol@dest.test"], "{}", show(mime_of(s)));
        assert!(
            !contains(mime_of(s), OUTSIDE.as_bytes()),
            "{}",
            show(mime_of(s))
        );
    }
    let log = p.log();
    assert!(
        log.contains("header-only recipient removed before sending") && log.contains(OUTSIDE),
        "each dropped address is logged:\n{log}"
    );
}

#[test]
fn graph_drop_sends_to_envelope_recipients_only() {
    let ca = TestCa::new();
    let mock = ProviderMock::start(&ca);
    let p = graph(&ca, &mock, "header_recipients = \"drop\"");
    dropped_at_send_time(&p, &ca, &mock);
}

#[test]
fn gmail_drop_sends_to_envelope_recipients_only() {
    let ca = TestCa::new();
    let mock = ProviderMock::start(&ca);
    let p = gmail(&ca, &mock, "header_recipients = \"drop\"");
    dropped_at_send_time(&p, &ca, &mock);
}

/// A message accepted for an envelope-addressed upstream whose route is
/// then reloaded to Graph is dead-lettered at send time, never sent.
#[test]
fn a_reload_that_routes_queued_mail_to_graph_dead_letters_header_only_recipients() {
    let ca = TestCa::new();
    let mock = ProviderMock::start(&ca);
    let http = MockUpstream::with_default(&ca, Scripted::status(503));
    let graph_cfg =
        crate::msgraph_setup::config(&ca, &mock, &crate::msgraph_setup::secret_auth(), "");
    let mut first = graph_cfg.clone();
    first.extra = first.extra.replace(
        "[routes.mail]\nupstreams = [\"graph\"]",
        "[routes.mail]\nupstreams = [\"api\"]",
    );
    first.upstream_url = http.url();
    let p = crate::msgraph_setup::start(&ca, &first);
    let mut c = session(&p, &ca);
    let r = c.send_message(
        "app@example.com",
        &[ENVELOPE],
        &message(&format!("To: {ENVELOPE}, {OUTSIDE}\r\n"), "reload"),
    );
    r.expect(250, "2.0.0", "accepted for the http upstream");
    let id = r.queue_id().expect("queue id");
    c.quit();
    p.wait_log_line(&[&id, "deferred"]);
    let mut second = graph_cfg;
    second.upstream_url = http.url();
    assert!(p.reload(&second), "reload:\n{}", p.log());
    let dead = p.wait_log_line(&[&id, "dead-lettered"]);
    assert!(
        dead.contains("not an envelope recipient") && dead.contains(OUTSIDE),
        "{dead}"
    );
    assert!(p.dead_files().contains(&id), "{:?}", p.dead_files());
    assert!(
        mock.sent().is_empty(),
        "nothing sent to Graph: {:?}",
        mock.sent()
    );
}

/// `"x, evil@attacker.example, y"@allowed.example` passes a domain scope as
/// one address; a receiver splitting on commas would read three.
const SPLITTABLE: &str = "\"x, evil@attacker.example, y\"@allowed.example";

#[test]
fn quoted_local_parts_that_could_split_are_refused_by_default() {
    let ca = TestCa::new();
    let up = MockUpstream::start(&ca);
    let mut cfg = Config::new(&up.url()).listeners(&["none"]);
    cfg.credentials = vec![format!(
        "{}allowed_recipient_domains = [\"allowed.example\"]\n",
        Config::networks_credential("local", &["127.0.0.0/8"], &["*@example.com"])
    )];
    let p = Postern::start(&ca, &cfg);
    let mut c = SmtpClient::connect(p.port(0));
    c.greet();
    c.cmd("MAIL FROM:<app@example.com>")
        .expect(250, "2.1.0", "MAIL");
    let r = c.cmd(&format!("RCPT TO:<{SPLITTABLE}>"));
    r.expect(553, "5.1.3", "splittable quoted local part");
    assert!(
        r.text().contains("quoted local parts may not contain"),
        "{:?}",
        r.lines
    );
    c.cmd("RCPT TO:<\"plain.quoted\"@allowed.example>")
        .expect(250, "2.1.5", "harmless quoting");
    c.quit();
}

#[test]
fn allowed_quoted_local_parts_travel_one_per_header_and_as_exact_lists() {
    let ca = TestCa::new();
    // http raw: one X-Postern-Rcpt-To per recipient.
    let up = MockUpstream::start(&ca);
    let mut cfg = Config::new(&up.url())
        .listeners(&["none"])
        .with_loopback_network();
    cfg.extra = "[validation]\nallow_quoted_local_parts = true\n".into();
    let p = Postern::start(&ca, &cfg);
    let rcpts = [SPLITTABLE, "bob@dest.test"];
    let mut c = SmtpClient::connect(p.port(0));
    c.greet();
    c.send_message(
        "app@example.com",
        &rcpts,
        &message("To: bob@dest.test\r\n", "split"),
    )
    .expect(250, "2.0.0", "accepted");
    c.quit();
    let reqs = p.delivered(&up, 1);
    assert_eq!(reqs[0].header_all("x-postern-rcpt-to"), rcpts);

    // Postmark's comma-separated lists read back as exactly the envelope.
    use crate::upstream_api::{Kind, json_body};
    let (ok, _) = Kind::Postmark.ok();
    let pm = MockUpstream::with_default(&ca, ok);
    let mut cfg = crate::upstream_api::config(Kind::Postmark, pm.port, &ca.ca_pem, &pm.url());
    cfg.extra
        .push_str("\n[validation]\nallow_quoted_local_parts = true\n");
    let p = crate::upstream_api::start(&ca, &cfg);
    let envelope = [
        SPLITTABLE,
        "\"Bob, the \\\"Boss\\\"\"@dest.test",
        "carol@dest.test",
        "dave@dest.test",
    ];
    let headers = format!(
        "To: \"Ann, A.\" <{SPLITTABLE}>, \"Bob, the \\\"Boss\\\"\"@dest.test\r\nCc: \"O'Neil; Carol\" <carol@dest.test>\r\n"
    );
    crate::upstream_api::submit(&p, &envelope, &message(&headers, "postmark"));
    let reqs = p.delivered(&pm, 1);
    let v = json_body(&reqs[0]);
    let lists: Vec<&str> = ["To", "Cc", "Bcc"]
        .iter()
        .filter_map(|k| v[*k].as_str())
        .collect();
    let mut got = python_list(&lists);
    got.sort();
    let mut want: Vec<String> = envelope.iter().map(|s| s.to_string()).collect();
    want.sort();
    assert_eq!(got, want, "{v}");
}

/// Control headers reach no upstream unless every upstream of the route
/// passes them.
#[test]
fn provider_control_headers_are_stripped_unless_the_route_passes_them() {
    let ca = TestCa::new();
    let up = MockUpstream::start(&ca);
    let controls = "X-SES-CONFIGURATION-SET: evil-set\r\nX-SES-SOURCE-ARN: arn:aws:ses:x\r\n\
                    X-Mailgun-Tag: t\r\nX-Mailgun-Variables: {}\r\nX-SMTPAPI: {\"to\":[\"evil@attacker.example\"]}\r\n\
                    X-PM-Message-Stream: broadcast\r\nX-Kept: yes\r\n";
    let send = |p: &Postern| {
        let mut c = SmtpClient::connect(p.port(0));
        c.greet();
        c.send_message(
            "app@example.com",
            &["bob@dest.test"],
            &message(&format!("To: bob@dest.test\r\n{controls}"), "controls"),
        )
        .expect(250, "2.0.0", "accepted");
        c.quit();
    };
    let cfg = Config::new(&up.url())
        .listeners(&["none"])
        .with_loopback_network();
    let p = Postern::start(&ca, &cfg);
    send(&p);
    let body = p.delivered(&up, 1)[0].body.clone();
    for name in ["X-SES-", "X-Mailgun-", "X-SMTPAPI", "X-PM-"] {
        assert!(
            !contains(&body, name.as_bytes()),
            "{name} reached the upstream:\n{}",
            show(&body)
        );
    }
    assert!(contains(&body, b"X-Kept: yes"));
    drop(p);

    let up2 = MockUpstream::start(&ca);
    let cfg = Config::new(&up2.url())
        .listeners(&["none"])
        .with_loopback_network()
        .upstream("pass_control_headers = true");
    let p = Postern::start(&ca, &cfg);
    send(&p);
    let body = p.delivered(&up2, 1)[0].body.clone();
    assert!(contains(&body, controls.as_bytes()), "{}", show(&body));
}
