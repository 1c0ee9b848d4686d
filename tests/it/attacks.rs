//! The attack suite (SECURITY.md has one row per case with the reply
//! observed): SMTP smuggling split across TCP segments, with and without
//! pipelining, on plaintext and STARTTLS listeners; STARTTLS injection and
//! STARTTLS twice; open-relay tricks; AUTH abuse; CR/LF/NUL and 8-bit
//! injection in the envelope; resource exhaustion while a well-behaved
//! client is still served. Each case asserts the reply and what reached the
//! upstream.

use std::net::TcpStream;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;

use crate::common::*;
use crate::smuggling::{SEQUENCES, SMUGGLED, payload};

fn rejecting(up: &MockUpstream, listener: &str) -> Config {
    Config::new(&up.url())
        .listeners(&[listener])
        .with_loopback_network()
        .server("bare_newline = \"reject\"")
}

/// One smuggling attempt whose DATA content is written in two TCP
/// segments split at `at`. Returns the reply to the real end of data and
/// the next reply (to QUIT): anything but 221 there means a smuggled
/// command was answered.
fn split_attempt(c: &mut SmtpClient, content: &[u8], at: usize, pipelined: bool) -> (Reply, Reply) {
    if pipelined {
        c.send(b"MAIL FROM:<app@example.com>\r\nRCPT TO:<rcpt@dest.test>\r\nDATA\r\n");
        for want in [250, 250, 354] {
            c.read_reply().expect_code(want, "pipelined envelope");
        }
    } else {
        c.cmd("MAIL FROM:<app@example.com>")
            .expect_code(250, "MAIL");
        c.cmd("RCPT TO:<rcpt@dest.test>").expect_code(250, "RCPT");
        c.cmd("DATA").expect_code(354, "DATA");
    }
    c.send(&content[..at]);
    // Nagle is off: a pause puts the rest in a segment of its own.
    std::thread::sleep(Duration::from_millis(2));
    c.send(&content[at..]);
    let end = c.read_reply();
    c.send(b"QUIT\r\n");
    (end, c.read_reply())
}

/// Split points: every position from just before the smuggled end of
/// data to just after the smuggled commands.
fn split_points(content: &[u8], seq: &[u8]) -> Vec<usize> {
    let start = content
        .windows(seq.len() + 3)
        .position(|w| w.starts_with(seq) && &w[seq.len()..] == b"MAI")
        .expect("sequence in payload");
    (start.saturating_sub(2)..(start + seq.len() + SMUGGLED.len() + 2).min(content.len())).collect()
}

/// What a split attempt must get: `550 5.5.2` for a sequence with a bare
/// CR or LF. `CRLF NUL . CRLF` has none (its line is NUL and a dot), so it
/// is one ordinary message, as when unsplit (tests/it/smuggling.rs): `250`,
/// and the smuggled commands stay inside it (checked at the upstream).
/// Either way the next command is answered as QUIT, never as smuggled.
fn judge(name: &str, seq: &[u8], at: usize, end: &Reply, next: &Reply) -> Result<bool, String> {
    let one_message = bare_newline(seq).is_none();
    let ok = if one_message {
        end.is(250, "2.0.0")
    } else {
        end.is(550, "5.5.2")
    };
    if ok && next.code == 221 {
        Ok(one_message)
    } else {
        Err(format!("{name} split at {at}: {end:?} then {next:?}"))
    }
}

/// After the attempts: exactly the `accepted` messages reached the
/// upstream, each whole, with the smuggled commands as its content.
fn only_whole_messages_forwarded(p: &Postern, up: &MockUpstream, accepted: usize) -> Vec<String> {
    let reqs = p.delivered(up, accepted);
    std::thread::sleep(Duration::from_millis(500));
    let mut failures = Vec::new();
    if up.count() != accepted {
        failures.push(format!(
            "{} upstream requests for {accepted} accepted messages",
            up.count()
        ));
    }
    for req in &reqs {
        let body = &req.body;
        let whole = body.windows(SMUGGLED.len()).any(|w| w == SMUGGLED);
        if !whole || bare_newline(body).is_some() {
            failures.push(format!("forwarded message is not whole:\n{}", show(body)));
        }
    }
    failures
}

#[test]
fn smuggling_split_at_every_position_pipelined_or_not_is_refused_on_a_plain_listener() {
    let ca = TestCa::new();
    let up = MockUpstream::start(&ca);
    let p = Postern::start(&ca, &rejecting(&up, "none"));
    let mut failures = Vec::new();
    let (mut tried, mut accepted) = (0, 0);
    for (name, seq) in SEQUENCES {
        let content = payload(name, seq);
        for (i, at) in split_points(&content, seq).into_iter().enumerate() {
            let mut c = SmtpClient::connect(p.port(0));
            c.greet();
            let (end, next) = split_attempt(&mut c, &content, at, i % 2 == 0);
            tried += 1;
            match judge(name, seq, at, &end, &next) {
                Ok(one) => accepted += usize::from(one),
                Err(e) => failures.push(e),
            }
        }
    }
    assert!(tried > 300, "only {tried} attempts");
    failures.extend(only_whole_messages_forwarded(&p, &up, accepted));
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn smuggling_through_starttls_and_auth_is_refused() {
    let ca = TestCa::new();
    let up = MockUpstream::start(&ca);
    let p = Postern::start(&ca, &rejecting(&up, "starttls"));
    let mut failures = Vec::new();
    let mut accepted = 0;
    for (name, seq) in SEQUENCES {
        let content = payload(name, seq);
        let points = split_points(&content, seq);
        // Before the sequence, inside it and inside the smuggled commands.
        for at in [points[0], points[3], points[points.len() - 3]] {
            let mut c = SmtpClient::connect(p.port(0));
            c.greet_starttls(&ca);
            c.auth_plain("app", PASSWORD).expect_code(235, "AUTH");
            let (end, next) = split_attempt(&mut c, &content, at, at % 2 == 0);
            match judge(name, seq, at, &end, &next) {
                Ok(one) => accepted += usize::from(one),
                Err(e) => failures.push(e),
            }
        }
    }
    failures.extend(only_whole_messages_forwarded(&p, &up, accepted));
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn starttls_twice_is_refused_and_the_session_goes_on() {
    let ca = TestCa::new();
    let up = MockUpstream::start(&ca);
    let p = Postern::start(&ca, &Config::new(&up.url()));
    let mut c = SmtpClient::connect(p.port(0));
    let ehlo = c.greet_starttls(&ca);
    assert!(
        !ehlo.lines.iter().any(|l| l.contains("STARTTLS")),
        "STARTTLS offered inside TLS: {ehlo:?}"
    );
    c.cmd("STARTTLS")
        .expect(503, "5.5.1", "STARTTLS inside TLS");
    c.auth_plain("app", PASSWORD).expect_code(235, "AUTH");
    let msg = simple_message("app@example.com", "bob@dest.test", "after starttls twice");
    c.send_message("app@example.com", &["bob@dest.test"], &msg)
        .expect(250, "2.0.0", "end of data");
    c.quit();
    assert_forwarded(&p.only_delivery(&up, &msg).body, &msg);
}

/// Recipient tricks an open-relay probe tries, with the reply each gets
/// from a credential allowed to send to dest.test only.
const RELAY_TRICKS: &[(&str, u16, &str)] = &[
    ("victim@evil.test", 550, "5.7.1"),
    ("victim@EVIL.TEST", 550, "5.7.1"),
    ("victim@evil.test.", 501, "5.1.3"),
    ("victim@dest.test.evil.test", 550, "5.7.1"),
    ("victim%evil.test@dest.test", 501, "5.1.3"),
    ("@dest.test:victim@evil.test", 501, "5.1.3"),
    ("@dest.test,@relay.test:victim@evil.test", 501, "5.1.3"),
    ("\"victim@evil.test\"@dest.test", 553, "5.1.3"),
    ("\"victim@evil.test\"@evil.test", 553, "5.1.3"),
    ("victim@[127.0.0.1]", 550, "5.7.1"),
    ("victim@[IPv6:::1]", 550, "5.7.1"),
    ("evil.test!victim", 501, "5.1.3"),
    ("victim@evil.test@dest.test", 501, "5.1.3"),
];

#[test]
fn open_relay_tricks_are_refused_for_strangers_and_outside_a_credentials_domains() {
    let ca = TestCa::new();
    let up = MockUpstream::start(&ca);
    // No networks credential: loopback is a stranger on the plain listener.
    let mut cfg = Config::new(&up.url()).listeners(&["none", "starttls"]);
    cfg.credentials = vec![format!(
        "{}allowed_recipient_domains = [\"dest.test\"]\n",
        Config::password_credential("app", "app", &["*@example.com"])
    )];
    let p = Postern::start(&ca, &cfg);

    // A stranger: nothing is relayed, whatever the address.
    let mut c = SmtpClient::connect(p.port(0));
    c.greet();
    for sender in ["app@example.com", ""] {
        c.cmd(&format!("MAIL FROM:<{sender}>")).expect(
            530,
            "5.7.0",
            "MAIL without AUTH from a stranger",
        );
    }
    for (rcpt, _, _) in RELAY_TRICKS {
        let r = c.cmd(&format!("RCPT TO:<{rcpt}>"));
        assert_eq!(r.code, 503, "RCPT {rcpt} without MAIL: {r:?}");
    }
    c.cmd("DATA").expect_code(503, "DATA without MAIL");
    c.quit();

    // An authenticated credential: only its domains, and only its senders
    // (the null sender is not one of them).
    let mut failures = Vec::new();
    let mut c = SmtpClient::connect(p.port(1));
    c.greet_starttls(&ca);
    c.auth_plain("app", PASSWORD).expect_code(235, "AUTH");
    c.cmd("MAIL FROM:<>").expect(550, "5.7.1", "null sender");
    c.cmd("MAIL FROM:<app@example.com>")
        .expect_code(250, "MAIL");
    for (rcpt, code, enhanced) in RELAY_TRICKS {
        let r = c.cmd(&format!("RCPT TO:<{rcpt}>"));
        if !r.is(*code, enhanced) {
            failures.push(format!("RCPT {rcpt}: {r:?}"));
        }
    }
    c.cmd("RCPT TO:<bob@dest.test>").expect_code(250, "allowed");
    let msg = simple_message("app@example.com", "bob@dest.test", "relay tricks");
    c.data(&msg).expect(250, "2.0.0", "end of data");
    c.quit();
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    let reqs = p.delivered(&up, 1);
    p.wait_queue_empty();
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(up.count(), 1);
    assert_eq!(reqs[0].header("x-postern-rcpt-to"), Some("bob@dest.test"));
}

#[test]
fn auth_abuse_never_logs_in() {
    let ca = TestCa::new();
    let up = MockUpstream::start(&ca);
    let mut cfg = Config::new(&up.url());
    cfg.credentials.push(Config::password_credential(
        "other",
        "other",
        &["*@other.test"],
    ));
    let p = Postern::start(&ca, &cfg);
    let session = || {
        let mut c = SmtpClient::connect(p.port(0));
        c.greet_starttls(&ca);
        c
    };
    let mut c = session();
    c.cmd("AUTH PLAIN %%%not-base64%%%")
        .expect(501, "5.5.2", "malformed base64");
    c.cmd("AUTH LOGIN").expect_code(334, "LOGIN");
    c.cmd("not base64 either")
        .expect(501, "5.5.2", "malformed LOGIN line");
    // A SASL response far over the line limit.
    let huge = BASE64.encode(vec![b'a'; 20_000]);
    c.cmd(&format!("AUTH PLAIN {huge}"))
        .expect(500, "5.5.2", "oversized SASL response");
    // authzid of another user with this user's password.
    let token = BASE64.encode(format!("other\0app\0{PASSWORD}"));
    c.cmd(&format!("AUTH PLAIN {token}"))
        .expect(535, "5.7.8", "authzid of another user");
    c.cmd("MAIL FROM:<app@example.com>")
        .expect(530, "5.7.0", "still not logged in");

    // AUTH after MAIL (on a networks-free session it cannot start MAIL
    // first, so log in, start a transaction and try AUTH again).
    let mut c = session();
    c.auth_plain("app", PASSWORD).expect_code(235, "AUTH");
    c.cmd("MAIL FROM:<app@example.com>")
        .expect_code(250, "MAIL");
    let r = c.auth_plain("other", PASSWORD);
    r.expect(503, "5.5.1", "AUTH after MAIL");
    c.cmd("RSET").expect_code(250, "RSET");
    c.auth_plain("other", PASSWORD)
        .expect(503, "5.5.1", "a second AUTH");
    c.quit();

    // AUTH over plaintext before STARTTLS.
    let mut c = SmtpClient::connect(p.port(0));
    c.greet();
    // RFC 4954: the mechanism needs encryption first.
    c.auth_plain("app", PASSWORD)
        .expect(538, "5.7.11", "AUTH before STARTTLS");
    c.quit();
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(up.count(), 0);
}

#[test]
fn control_characters_and_8bit_in_the_envelope_are_refused() {
    let ca = TestCa::new();
    let up = MockUpstream::start(&ca);
    let cfg = Config::new(&up.url())
        .listeners(&["none"])
        .with_loopback_network();
    let p = Postern::start(&ca, &cfg);
    // A CR, LF or NUL anywhere in a command line refuses the whole line
    // (nothing after a bare CR is taken as a second command); 8-bit
    // addresses without SMTPUTF8 are refused by the address check.
    const CTL: (u16, &str) = (500, "5.5.2");
    let cases: &[(&[u8], (u16, &str))] = &[
        (b"MAIL FROM:<app@example.com> SIZE=10\x00X\r\n", CTL),
        (b"MAIL FROM:<app@exa\x00mple.com>\r\n", CTL),
        (
            b"MAIL FROM:<app@example.com>\rRCPT TO:<x@evil.test>\r\n",
            CTL,
        ),
        (
            b"MAIL FROM:<app@example.com> BODY=8BITMIME\x0bX=1\r\n",
            (501, "5.5.4"),
        ),
        (
            "MAIL FROM:<\u{e4}pp@example.com>\r\n".as_bytes(),
            (553, "5.6.7"),
        ),
    ];
    let mut failures = Vec::new();
    for (line, (code, enhanced)) in cases {
        let mut c = SmtpClient::connect(p.port(0));
        c.greet();
        c.send(line);
        let r = c.read_reply();
        if !r.is(*code, enhanced) {
            failures.push(format!("{}: {r:?}", show(line)));
        }
        // Nothing of the line started a transaction.
        c.cmd("RCPT TO:<bob@dest.test>")
            .expect_code(503, "RCPT after a refused MAIL");
        c.quit();
    }
    let rcpts: &[(&[u8], (u16, &str))] = &[
        (b"RCPT TO:<bob@dest.test>\rDATA\r\n", CTL),
        (b"RCPT TO:<bob@dest.test> NOTIFY=NEVER\x00\r\n", CTL),
        (b"RCPT TO:<bob\x00@dest.test>\r\n", CTL),
        (
            "RCPT TO:<b\u{f6}b@dest.test>\r\n".as_bytes(),
            (553, "5.6.7"),
        ),
        (b"RCPT TO:<bob@d\xe9st.test>\r\n", (501, "5.1.3")),
    ];
    for (line, (code, enhanced)) in rcpts {
        let mut c = SmtpClient::connect(p.port(0));
        c.greet();
        c.cmd("MAIL FROM:<app@example.com>")
            .expect_code(250, "MAIL");
        c.send(line);
        let r = c.read_reply();
        if !r.is(*code, enhanced) {
            failures.push(format!("{}: {r:?}", show(line)));
        }
        c.cmd("DATA").expect_code(554, "DATA without recipients");
        c.quit();
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert_eq!(up.count(), 0);
}

/// A good client's message, sent while an attack runs: must be 250.
fn well_behaved(port: u16, subject: &str) {
    let mut c = SmtpClient::connect(port);
    c.greet();
    let msg = simple_message("app@example.com", "bob@dest.test", subject);
    c.send_message("app@example.com", &["bob@dest.test"], &msg)
        .expect(250, "2.0.0", subject);
    c.quit();
}

/// A message nested `depth` multiparts deep.
fn nested(depth: usize) -> Vec<u8> {
    let mut m = String::from(
        "From: <app@example.com>\r\nTo: <bob@dest.test>\r\nSubject: deep\r\nMIME-Version: 1.0\r\n",
    );
    for i in 0..depth {
        m.push_str(&format!(
            "Content-Type: multipart/mixed; boundary=\"b{i}\"\r\n\r\n--b{i}\r\n"
        ));
    }
    m.push_str("Content-Type: text/plain\r\n\r\nbottom\r\n");
    for i in (0..depth).rev() {
        m.push_str(&format!("--b{i}--\r\n"));
    }
    m.into_bytes()
}

/// A message of `n` tiny parts.
fn tiny_parts(n: usize) -> Vec<u8> {
    let mut m = String::from(
        "From: <app@example.com>\r\nTo: <bob@dest.test>\r\nSubject: parts\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"p\"\r\n\r\n",
    );
    for i in 0..n {
        m.push_str(&format!("--p\r\nContent-Type: text/plain\r\n\r\n{i}\r\n"));
    }
    m.push_str("--p--\r\n");
    m.into_bytes()
}

#[test]
fn a_well_behaved_client_is_served_during_each_resource_attack() {
    let ca = TestCa::new();
    let up = MockUpstream::start(&ca);
    let cfg = Config::new(&up.url())
        .listeners(&["none"])
        .with_loopback_network()
        .server("max_message_size = \"5MiB\"");
    let p = Postern::start(&ca, &cfg);
    let port = p.port(0);
    let mut sent = 0;

    // The attackers come from other addresses than the good client (every
    // 127/8 address is loopback), as they would.
    let attacker = |i: u8| std::net::IpAddr::from([127, 0, 0, 10 + i % 200]);
    // Slowloris: 30 connections that each send half a command and stall.
    let mut slow: Vec<SmtpClient> = (0..30)
        .map(|i| SmtpClient::connect_from(attacker(i), port))
        .collect();
    for s in &mut slow {
        s.send(b"EH");
    }
    well_behaved(port, "during slowloris");
    sent += 1;

    // An endless header (one field line that never ends, within the size
    // limit), then DATA past the size limit.
    for (what, size, code, enhanced) in [
        ("an endless header", 2 * 1024 * 1024, 554, "5.6.0"),
        ("DATA over the size limit", 6 * 1024 * 1024, 552, "5.3.4"),
    ] {
        let mut c = SmtpClient::connect(port);
        c.greet();
        c.cmd("MAIL FROM:<app@example.com>")
            .expect_code(250, "MAIL");
        c.cmd("RCPT TO:<bob@dest.test>").expect_code(250, "RCPT");
        c.cmd("DATA").expect_code(354, "DATA");
        c.send(b"Subject: ");
        let chunk = vec![b'x'; 64 * 1024];
        for _ in 0..size / chunk.len() {
            c.send(&chunk);
        }
        c.send(b"\r\n\r\nbody\r\n.\r\n");
        c.read_reply().expect(code, enhanced, what);
        c.quit();
        well_behaved(port, &format!("after {what}"));
        sent += 1;
    }

    // 10,000 RCPT commands in one session.
    let mut c = SmtpClient::connect(port);
    c.greet();
    c.cmd("MAIL FROM:<app@example.com>")
        .expect_code(250, "MAIL");
    let mut burst = Vec::new();
    for i in 0..10_000 {
        burst.extend_from_slice(format!("RCPT TO:<r{i}@dest.test>\r\n").as_bytes());
    }
    c.send(&burst);
    let mut last = c.read_reply();
    while last.code != 421 {
        match c.try_read_reply() {
            Ok(r) => last = r,
            Err(e) => panic!("10,000 RCPT: connection ended without 421: {e}"),
        }
    }
    well_behaved(port, "after 10,000 RCPT");
    sent += 1;

    // Deep MIME nesting and thousands of tiny parts: answered, not a crash.
    for (what, msg) in [
        ("deep nesting", nested(2_000)),
        ("tiny parts", tiny_parts(20_000)),
    ] {
        let mut c = SmtpClient::connect(port);
        c.greet();
        c.cmd("MAIL FROM:<app@example.com>")
            .expect_code(250, "MAIL");
        c.cmd("RCPT TO:<bob@dest.test>").expect_code(250, "RCPT");
        let r = c.data(&msg);
        // mail-parser bounds its own recursion; both are ordinary mail.
        r.expect(250, "2.0.0", what);
        sent += 1;
        c.quit();
        well_behaved(port, &format!("after {what}"));
        sent += 1;
    }

    // A flood past the per-IP connection limit, held open meanwhile.
    let flood: Vec<TcpStream> = (0..200)
        .filter_map(|_| TcpStream::connect((attacker(99).to_string(), port)).ok())
        .collect();
    well_behaved(port, "during a connection flood");
    sent += 1;
    drop(flood);
    drop(slow);
    let _ = p.delivered(&up, sent);
}
