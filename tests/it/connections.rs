//! Connections that never end (issue 9): a client that stops reading its
//! replies, stalls the TLS handshake, keeps a session alive with NOOPs, or
//! probes recipients in RSET loops is closed, while a well-behaved client
//! on the same server is served throughout.

use crate::common::*;
use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

/// Plain listener, the loopback network trusted for `*@example.com`, and
/// `server` lines added to `[server]`.
fn plain(ca: &TestCa, up: &MockUpstream, server: &[&str]) -> Postern {
    let mut cfg = Config::new(&up.url())
        .listeners(&["none"])
        .with_loopback_network();
    for l in server {
        cfg = cfg.server(l);
    }
    Postern::start(ca, &cfg)
}

/// Reads until postern closes; a reset counts as closed. Panics on a read
/// timeout (30 s), i.e. when postern kept the connection open.
#[track_caller]
fn assert_closed(c: &mut SmtpClient, what: &str) {
    if let Err(e) = c.read_to_eof() {
        panic!("{what}: postern did not close the connection: {e}");
    }
}

/// Sends `cmd` until a reply is not `ok`; returns how many got `ok` and the
/// first other reply. Panics after `max` commands.
#[track_caller]
fn repeat_until_refused(c: &mut SmtpClient, cmd: &str, ok: u16, max: usize) -> (usize, Reply) {
    for n in 0..max {
        let r = c.cmd(cmd);
        if r.code != ok {
            return (n, r);
        }
    }
    panic!("{max} x {cmd:?} were all answered {ok}");
}

#[test]
fn client_that_never_reads_is_closed_after_write_timeout_and_others_are_served() {
    let ca = TestCa::new();
    let up = MockUpstream::start(&ca);
    // The junk limit would end this flood by itself; lift it so that only
    // the write timeout can.
    let p = Postern::start(
        &ca,
        &Config::new(&up.url())
            .server("write_timeout = \"2s\"")
            .server("max_junk_commands = 100000000"),
    );

    let mut flood = TcpStream::connect(("127.0.0.1", p.port(0))).expect("connect");
    // Bounds each blocked write: in the old code postern never closes, and
    // this turns the hang into a failure.
    flood
        .set_write_timeout(Some(Duration::from_secs(30)))
        .expect("write timeout");
    flood
        .set_read_timeout(Some(Duration::from_secs(30)))
        .expect("read timeout");
    let mut writer = flood.try_clone().expect("clone socket");
    let (started_tx, started_rx) = std::sync::mpsc::channel();
    let start = Instant::now();
    // Pipelines HELP and never reads; ~1 MiB per chunk, until postern hangs
    // up (the write fails) or 64 MiB were written.
    let flooder = std::thread::spawn(move || {
        let chunk = b"HELP\r\n".repeat(1 << 18);
        let mut written = 0usize;
        let mut started = Some(started_tx);
        let end = loop {
            if written >= 64 << 20 {
                break Ok(written);
            }
            if let Err(e) = writer.write_all(&chunk) {
                break Err(e);
            }
            written += chunk.len();
            if let Some(tx) = started.take() {
                let _ = tx.send(());
            }
        };
        (end, start.elapsed())
    });
    started_rx
        .recv_timeout(Duration::from_secs(30))
        .expect("the first MiB of HELP was written");

    // A well-behaved client during the flood: STARTTLS, AUTH, one message.
    let mut c = SmtpClient::connect(p.port(0));
    c.greet_starttls(&ca);
    c.auth_plain("app", PASSWORD)
        .expect(235, "2.7.0", "AUTH during the flood");
    let msg = simple_message("app@example.com", "bob@dest.test", "during the flood");
    c.send_message("app@example.com", &["bob@dest.test"], &msg)
        .expect(250, "2.0.0", "message during the flood");
    c.quit();
    p.only_delivery(&up, &msg);

    let (end, elapsed) = flooder.join().expect("flood thread");
    match end {
        Err(e) if matches!(e.kind(), ErrorKind::ConnectionReset | ErrorKind::BrokenPipe) => {}
        other => panic!("the flood should end with postern closing the connection, got {other:?}"),
    }
    assert!(
        elapsed < Duration::from_secs(25),
        "closed only after {elapsed:?} (write_timeout is 2s)"
    );
    // What postern managed to write before it gave up, then the close.
    let mut sink = Vec::new();
    match flood.read_to_end(&mut sink) {
        Ok(_) => {}
        Err(e) if e.kind() == ErrorKind::ConnectionReset => {}
        Err(e) => panic!("reading the flood connection should end in EOF or reset: {e}"),
    }
    p.wait_log_line(&["write timed out"]);
}

#[test]
fn silent_client_is_closed_after_tls_handshake_timeout() {
    let ca = TestCa::new();
    let up = MockUpstream::start(&ca);
    let p = Postern::start(
        &ca,
        &Config::new(&up.url())
            .listeners(&["implicit", "starttls"])
            .server("tls_handshake_timeout = \"1s\"")
            .server("command_timeout = \"60s\""),
    );

    // Implicit TLS: connect, send no ClientHello.
    let start = Instant::now();
    let mut s = TcpStream::connect(("127.0.0.1", p.port(0))).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(30)))
        .expect("read timeout");
    let mut buf = [0u8; 64];
    match s.read(&mut buf) {
        Ok(0) => {}
        Err(e) if e.kind() == ErrorKind::ConnectionReset => {}
        other => panic!("implicit TLS: expected postern to close, got {other:?}"),
    }
    let took = start.elapsed();
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(20),
        "implicit TLS closed after {took:?}; tls_handshake_timeout is 1s, command_timeout 60s"
    );

    // STARTTLS: 220, then no ClientHello.
    let mut c = SmtpClient::connect(p.port(1));
    c.greet();
    c.cmd("STARTTLS").expect(220, "2.0.0", "STARTTLS");
    let start = Instant::now();
    assert_closed(&mut c, "silent after STARTTLS");
    let took = start.elapsed();
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(20),
        "STARTTLS closed after {took:?}; tls_handshake_timeout is 1s, command_timeout 60s"
    );

    // The listeners still serve clients that do speak TLS.
    let mut c = SmtpClient::connect_tls(p.port(0), &ca);
    c.greet();
    c.quit();
}

#[test]
fn junk_commands_beyond_the_limit_count_as_bad_commands() {
    let ca = TestCa::new();
    let up = MockUpstream::start(&ca);
    // max_bad_commands = 0: the first junk command beyond 100 closes.
    let p = plain(&ca, &up, &["max_bad_commands = 0"]);
    let mut c = SmtpClient::connect(p.port(0));
    c.greet();
    let (ok, r) = repeat_until_refused(&mut c, "NOOP", 250, 200);
    assert_eq!(ok, 100, "NOOPs answered before the limit");
    r.expect(421, "4.7.0", "101st NOOP");
    assert_closed(&mut c, "after the junk limit");

    // Default max_bad_commands (20): 100 junk commands, then 20 more that
    // are answered but counted as errors, then 421. Every kind counts,
    // including EHLO again.
    let p = plain(&ca, &up, &[]);
    let mut c = SmtpClient::connect(p.port(0));
    c.greet();
    for (i, cmd) in ["RSET", "HELP", "VRFY bob", "EHLO again.test", "NOOP"]
        .iter()
        .cycle()
        .take(120)
        .enumerate()
    {
        let r = c.cmd(cmd);
        assert!(
            r.code < 400,
            "junk command {} ({cmd}) should still be answered: {r:?}",
            i + 1
        );
    }
    c.cmd("NOOP").expect(421, "4.7.0", "121st junk command");
    assert_closed(&mut c, "after junk + bad commands");

    // A session that sends mail is not affected by its EHLO and RSETs.
    let mut c = SmtpClient::connect(p.port(0));
    c.greet();
    let msg = simple_message("app@example.com", "bob@dest.test", "after junk");
    c.send_message("app@example.com", &["bob@dest.test"], &msg)
        .expect(250, "2.0.0", "message");
    c.quit();
    p.only_delivery(&up, &msg);
}

#[test]
fn rcpt_commands_are_limited_per_session_across_transactions() {
    let ca = TestCa::new();
    let up = MockUpstream::start(&ca);
    let p = plain(&ca, &up, &["max_rcpt_commands = 5"]);
    let mut c = SmtpClient::connect(p.port(0));
    c.greet();
    for i in 1..=5 {
        c.cmd("MAIL FROM:<app@example.com>")
            .expect_code(250, "MAIL");
        c.cmd(&format!("RCPT TO:<probe{i}@dest.test>"))
            .expect_code(250, "RCPT within the limit");
        c.cmd("RSET").expect_code(250, "RSET");
    }
    c.cmd("MAIL FROM:<app@example.com>")
        .expect_code(250, "MAIL");
    c.cmd("RCPT TO:<probe6@dest.test>")
        .expect(421, "4.7.0", "6th RCPT of the session");
    assert_closed(&mut c, "after max_rcpt_commands");
    // A new session starts counting again, and nothing was sent.
    let mut c = SmtpClient::connect(p.port(0));
    c.greet();
    let msg = simple_message("app@example.com", "bob@dest.test", "new session");
    c.send_message("app@example.com", &["bob@dest.test"], &msg)
        .expect(250, "2.0.0", "message in a new session");
    c.quit();
    p.only_delivery(&up, &msg);
}

#[test]
fn temporary_rcpt_refusals_count_as_bad_commands() {
    let ca = TestCa::new();
    let up = MockUpstream::start(&ca);
    let p = plain(&ca, &up, &["max_recipients = 1", "max_bad_commands = 3"]);
    let mut c = SmtpClient::connect(p.port(0));
    c.greet();
    c.cmd("MAIL FROM:<app@example.com>")
        .expect_code(250, "MAIL");
    c.cmd("RCPT TO:<r0@dest.test>").expect_code(250, "RCPT");
    for i in 1..=3 {
        c.cmd(&format!("RCPT TO:<r{i}@dest.test>")).expect(
            452,
            "4.5.3",
            "RCPT over max_recipients",
        );
    }
    c.cmd("RCPT TO:<r4@dest.test>")
        .expect(421, "4.7.0", "4th 452 exceeds max_bad_commands");
    assert_closed(&mut c, "after repeated 452");
    assert!(p.queue_files().is_empty());
    assert_eq!(up.count(), 0);
}

#[test]
fn session_is_closed_after_max_session_duration() {
    let ca = TestCa::new();
    let up = MockUpstream::start(&ca);
    let p = plain(&ca, &up, &["max_session_duration = \"2s\""]);
    let mut c = SmtpClient::connect(p.port(0));
    let start = Instant::now();
    c.greet();
    // A NOOP every 200 ms: never idle, and (in 2 s) far below the junk limit.
    let mut noops = 0;
    let r = loop {
        let r = c.cmd("NOOP");
        if r.code != 250 {
            break r;
        }
        noops += 1;
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "still open after {noops} NOOPs in {:?}",
            start.elapsed()
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    r.expect(421, "4.4.2", "after max_session_duration");
    let took = start.elapsed();
    assert!(
        took >= Duration::from_millis(1900) && took < Duration::from_secs(20),
        "closed after {took:?} with max_session_duration = 2s"
    );
    assert!(noops >= 3, "only {noops} NOOPs before the 421");
    assert_closed(&mut c, "after max_session_duration");
}
