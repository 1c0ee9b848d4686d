//! SMTP smuggling: a DATA section containing a non-standard "end of data"
//! followed by a second transaction must stay one message. With
//! bare_newline = "normalize" the message is accepted once with every line
//! ending repaired to CRLF; with "reject" it is refused (550 5.5.2) and nothing
//! is forwarded. Each sequence runs on its own connection so replies to any
//! smuggled commands would show up as extra replies before QUIT's 221.

use crate::common::*;

pub(crate) const SEQUENCES: &[(&str, &[u8])] = &[
    ("LF.LF", b"\n.\n"),
    ("LF.CRLF", b"\n.\r\n"),
    ("CR.LF", b"\r.\n"),
    ("CR.CR", b"\r.\r"),
    ("CR.CRLF", b"\r.\r\n"),
    ("LF.CR", b"\n.\r"),
    ("CRLF.CR", b"\r\n.\r"),
    ("CRLF.LF", b"\r\n.\n"),
    ("CRLF NUL.CRLF", b"\r\n\x00.\r\n"),
    ("CRLF.CRCRLF", b"\r\n.\r\r\n"),
    ("CRCRLF.CRCRLF", b"\r\r\n.\r\r\n"),
];

pub(crate) const SMUGGLED: &[u8] = b"MAIL FROM:<a@x>\r\nRCPT TO:<b@y>\r\nDATA\r\nsmuggled\r\n";

pub(crate) fn payload(name: &str, seq: &[u8]) -> Vec<u8> {
    let mut p = format!(
        "From: <app@example.com>\r\nTo: <rcpt@dest.test>\r\nSubject: smuggle {name}\r\n\
         Date: Mon, 2 Mar 2026 10:00:00 +0000\r\nMessage-ID: <smuggle@example.com>\r\n\r\nbefore"
    )
    .into_bytes();
    p.extend_from_slice(seq);
    p.extend_from_slice(SMUGGLED);
    p.extend_from_slice(b"\r\n.\r\n");
    p
}

/// Sends one smuggling attempt; returns the reply to the real end of data,
/// or an error string if the server answered anything extra.
fn attempt(port: u16, name: &str, seq: &[u8]) -> Result<Reply, String> {
    let mut c = SmtpClient::connect(port);
    c.greet();
    let r = c.cmd("MAIL FROM:<app@example.com>");
    if r.code != 250 {
        return Err(format!("{name}: MAIL: {r:?}"));
    }
    let r = c.cmd("RCPT TO:<rcpt@dest.test>");
    if r.code != 250 {
        return Err(format!("{name}: RCPT: {r:?}"));
    }
    let r = c.cmd("DATA");
    if r.code != 354 {
        return Err(format!("{name}: DATA: {r:?}"));
    }
    c.send(&payload(name, seq));
    let end = c
        .try_read_reply()
        .map_err(|e| format!("{name}: no reply to end of data: {e}"))?;
    c.send(b"QUIT\r\n");
    let next = c
        .try_read_reply()
        .map_err(|e| format!("{name}: no reply to QUIT: {e}"))?;
    if next.code != 221 {
        return Err(format!(
            "{name}: after end-of-data reply {end:?} the next reply was {next:?}, not QUIT's 221 \
             (smuggled commands were executed)"
        ));
    }
    Ok(end)
}

fn start(ca: &TestCa, up: &MockUpstream, mode: &str) -> Postern {
    let cfg = Config::new(&up.url())
        .listeners(&["none"])
        .with_loopback_network()
        .server(&format!("bare_newline = \"{mode}\""));
    Postern::start(ca, &cfg)
}

#[test]
fn smuggling_sequences_stay_one_message_when_normalizing() {
    let ca = TestCa::new();
    let up = MockUpstream::start(&ca);
    let p = start(&ca, &up, "normalize");

    let mut failures = Vec::new();
    let mut ids = Vec::new();
    for (name, seq) in SEQUENCES {
        match attempt(p.port(0), name, seq) {
            Ok(r) if r.is(250, "2.0.0") => ids.push((name, r.queue_id().expect("queue id"))),
            Ok(r) => failures.push(format!("{name}: expected 250 2.0.0, got {r:?}")),
            Err(e) => failures.push(e),
        }
    }
    let reqs = p.delivered(&up, ids.len());
    p.wait_queue_empty();
    assert_eq!(
        up.count(),
        ids.len(),
        "one upstream request per accepted message"
    );
    for (name, id) in &ids {
        let matching: Vec<_> = reqs
            .iter()
            .filter(|r| r.header("x-postern-queue-id") == Some(id.as_str()))
            .collect();
        if matching.len() != 1 {
            failures.push(format!(
                "{name}: {} upstream requests for {id}",
                matching.len()
            ));
            continue;
        }
        let req = matching[0];
        if req.header("x-postern-rcpt-to") != Some("rcpt@dest.test") {
            failures.push(format!(
                "{name}: rcpt {:?}",
                req.header("x-postern-rcpt-to")
            ));
        }
        if let Some(at) = bare_newline(&req.body) {
            failures.push(format!(
                "{name}: bare CR/LF at offset {at} in forwarded message:\n{}",
                show(&req.body)
            ));
        }
        let (_, rest) = split_received(&req.body);
        if !contains(rest, b"MAIL FROM:<a@x>") || !contains(rest, b"smuggled") {
            failures.push(format!(
                "{name}: smuggled text missing from the message:\n{}",
                show(rest)
            ));
        }
        if !rest.ends_with(b"smuggled\r\n\r\n") {
            failures.push(format!(
                "{name}: message does not end where the client ended it:\n{}",
                show(rest)
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} problem(s):\n{}\nlog:\n{}",
        failures.len(),
        failures.join("\n"),
        p.log()
    );
}

#[test]
fn smuggling_sequences_are_refused_when_rejecting() {
    let ca = TestCa::new();
    let up = MockUpstream::start(&ca);
    let p = start(&ca, &up, "reject");

    let mut failures = Vec::new();
    let mut accepted = Vec::new();
    for (name, seq) in SEQUENCES {
        let has_bare = bare_newline(seq).is_some();
        match attempt(p.port(0), name, seq) {
            Ok(r) if r.is(550, "5.5.2") => {}
            // `\r\n\0.\r\n` has no bare CR or LF: the line is NUL + dot. Refusing
            // it is fine; accepting it as one message is fine too (checked below).
            Ok(r) if !has_bare && r.is(250, "2.0.0") => {
                accepted.push(r.queue_id().expect("queue id"));
            }
            Ok(r) if !has_bare && r.code >= 500 => {}
            Ok(r) => failures.push(format!("{name}: expected 550 5.5.2, got {r:?}")),
            Err(e) => failures.push(e),
        }
    }

    // Control message; afterwards exactly the accepted ones have been forwarded.
    let mut c = SmtpClient::connect(p.port(0));
    c.greet();
    let msg = simple_message("app@example.com", "rcpt@dest.test", "control");
    let r = c.send_message("app@example.com", &["rcpt@dest.test"], &msg);
    r.expect(250, "2.0.0", "control message");
    accepted.push(r.queue_id().expect("queue id"));
    c.quit();
    let reqs = p.delivered(&up, accepted.len());
    p.wait_queue_empty();
    assert_eq!(
        up.count(),
        accepted.len(),
        "refused messages must not be forwarded"
    );
    for req in &reqs {
        let id = req.header("x-postern-queue-id").unwrap_or("");
        if !accepted.iter().any(|a| a == id) {
            failures.push(format!("unexpected upstream request {id}"));
        }
        if let Some(at) = bare_newline(&req.body) {
            failures.push(format!("{id}: bare CR/LF at {at}:\n{}", show(&req.body)));
        }
    }
    assert!(
        failures.is_empty(),
        "{} problem(s):\n{}\nlog:\n{}",
        failures.len(),
        failures.join("\n"),
        p.log()
    );
}

#[test]
fn bare_lf_in_body_is_normalized_to_crlf() {
    let ca = TestCa::new();
    let up = MockUpstream::start(&ca);
    let p = start(&ca, &up, "normalize");
    let mut c = SmtpClient::connect(p.port(0));
    c.greet();
    c.cmd("MAIL FROM:<app@example.com>")
        .expect_code(250, "MAIL");
    c.cmd("RCPT TO:<rcpt@dest.test>").expect_code(250, "RCPT");
    c.cmd("DATA").expect_code(354, "DATA");
    c.send(b"From: <app@example.com>\nSubject: lf\nDate: Mon, 2 Mar 2026 10:00:00 +0000\r\nMessage-ID: <lf@example.com>\nX-Test: 1\r\n\r\nline1\nline2\r\n\n.\r\n");
    // `\n.\r\n` is not the end of data; the real end follows.
    c.send(b"line3\r\n.\r\n");
    c.read_reply().expect(250, "2.0.0", "end of data");
    c.quit();
    let reqs = p.delivered(&up, 1);
    assert_forwarded(
        &reqs[0].body,
        b"From: <app@example.com>\r\nSubject: lf\r\nDate: Mon, 2 Mar 2026 10:00:00 +0000\r\nMessage-ID: <lf@example.com>\r\nX-Test: 1\r\n\r\nline1\r\nline2\r\n\r\n.\r\nline3\r\n",
    );
}
