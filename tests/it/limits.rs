//! Resource limits: message size (announced SIZE and actual), recipient count,
//! command line length and idle timeout each produce the contract's reply,
//! forward nothing, and leave the server able to serve the next message.

use crate::common::*;

fn start(ca: &TestCa, up: &MockUpstream, server_lines: &[&str]) -> Postern {
    let mut cfg = Config::new(&up.url())
        .listeners(&["none"])
        .with_loopback_network();
    for l in server_lines {
        cfg = cfg.server(l);
    }
    Postern::start(ca, &cfg)
}

/// Sends a normal message on `c` and checks it is the only thing forwarded.
fn control(p: &Postern, up: &MockUpstream, c: &mut SmtpClient) {
    let msg = simple_message("app@example.com", "bob@dest.test", "control after limit");
    let r = c.send_message("app@example.com", &["bob@dest.test"], &msg);
    r.expect(250, "2.0.0", "control message");
    let id = r.queue_id().expect("queue id");
    c.quit();
    let reqs = p.delivered(up, 1);
    assert_eq!(reqs[0].one_header("x-postern-queue-id"), id);
    assert_eq!(reqs[0].one_header("x-postern-rcpt-to"), "bob@dest.test");
    assert_forwarded(&reqs[0].body, &msg);
    p.wait_queue_empty();
    assert_eq!(up.count(), 1, "only the control message may be forwarded");
}

#[test]
fn oversize_message_gets_552_for_size_param_and_for_data() {
    let ca = TestCa::new();
    let up = MockUpstream::start(&ca);
    let p = start(&ca, &up, &["max_message_size = \"10KiB\""]);

    let mut c = SmtpClient::connect(p.port(0));
    let ehlo = c.greet();
    assert!(
        ehlo.ehlo_keywords().iter().any(|k| k == "SIZE 10240"),
        "EHLO should announce SIZE 10240: {ehlo:?}"
    );
    c.cmd("MAIL FROM:<app@example.com> SIZE=20000").expect(
        552,
        "5.3.4",
        "MAIL with SIZE over the limit",
    );

    c.cmd("MAIL FROM:<app@example.com>")
        .expect_code(250, "MAIL");
    c.cmd("RCPT TO:<bob@dest.test>").expect_code(250, "RCPT");
    let mut big = b"From: <app@example.com>\r\nSubject: big\r\n\r\n".to_vec();
    while big.len() < 20 * 1024 {
        big.extend_from_slice(
            b"0123456789abcdefghijklmnopqrstuvwxyz0123456789abcdefghijklmnopqrstuvwxyz\r\n",
        );
    }
    c.data(&big).expect(552, "5.3.4", "oversize DATA");
    // The same session goes on with a normal message.
    control(&p, &up, &mut c);
}

#[test]
fn too_many_recipients_gets_452() {
    let ca = TestCa::new();
    let up = MockUpstream::start(&ca);
    let p = start(&ca, &up, &["max_recipients = 3"]);

    let mut c = SmtpClient::connect(p.port(0));
    c.greet();
    c.cmd("MAIL FROM:<app@example.com>")
        .expect_code(250, "MAIL");
    for i in 1..=3 {
        c.cmd(&format!("RCPT TO:<r{i}@dest.test>"))
            .expect_code(250, "RCPT within limit");
    }
    c.cmd("RCPT TO:<r4@dest.test>")
        .expect(452, "4.5.3", "4th RCPT");
    c.cmd("RSET").expect_code(250, "RSET");
    control(&p, &up, &mut c);
}

#[test]
fn overlong_command_line_gets_500() {
    let ca = TestCa::new();
    let up = MockUpstream::start(&ca);
    let p = start(&ca, &up, &["max_line_length = 512"]);

    let mut c = SmtpClient::connect(p.port(0));
    c.greet();
    let long = format!("MAIL FROM:<{}@example.com>", "a".repeat(2000));
    c.cmd(&long).expect(500, "5.5.2", "over-long command line");
    drop(c);
    assert!(p.queue_files().is_empty());

    let mut c = SmtpClient::connect(p.port(0));
    c.greet();
    control(&p, &up, &mut c);
}

#[test]
fn idle_client_gets_421_and_is_disconnected() {
    let ca = TestCa::new();
    let up = MockUpstream::start(&ca);
    let p = start(&ca, &up, &["command_timeout = \"1s\""]);

    let mut c = SmtpClient::connect(p.port(0));
    c.greet();
    c.cmd("MAIL FROM:<app@example.com>")
        .expect_code(250, "MAIL");
    // Say nothing more: the server must give up on us.
    let r = c.read_reply();
    r.expect(421, "4.4.2", "idle timeout");
    let rest = c.read_to_eof().expect("server closes after 421");
    assert!(rest.is_empty(), "bytes after 421: {}", show(&rest));
    assert!(p.queue_files().is_empty());

    let mut c = SmtpClient::connect(p.port(0));
    c.greet();
    control(&p, &up, &mut c);
}

/// Connects once a per-IP slot is free. Slots are released when the server
/// task ends, a moment after the client saw the connection close (the
/// harness's own readiness probe holds one briefly too), so wait for it.
fn connect_when_free(p: &Postern) -> SmtpClient {
    (0..100)
        .find_map(|_| {
            let mut c = SmtpClient::connect(p.port(0));
            let g = c.read_reply();
            if g.code == 220 {
                return Some(c);
            }
            g.expect(421, "4.7.0", "still at the limit");
            std::thread::sleep(std::time::Duration::from_millis(100));
            None
        })
        .expect("a connection slot never became free")
}

#[test]
fn connections_over_the_per_ip_limit_get_421_and_close() {
    let ca = TestCa::new();
    let up = MockUpstream::start(&ca);
    let p = start(&ca, &up, &["max_connections_per_ip = 2"]);
    let mut a = connect_when_free(&p);
    a.cmd("EHLO client.test").expect_code(250, "EHLO");
    let mut b = connect_when_free(&p);
    b.cmd("EHLO client.test").expect_code(250, "EHLO");
    // With two sessions open, a third from the same address is refused.
    let mut third = SmtpClient::connect(p.port(0));
    third.read_reply().expect(421, "4.7.0", "third connection");
    third
        .read_to_eof()
        .expect("server closes the refused connection");
    // A slot frees when a session ends; the server keeps serving.
    a.quit();
    b.quit();
    let mut c = connect_when_free(&p);
    c.cmd("EHLO client.test").expect_code(250, "EHLO");
    control(&p, &up, &mut c);
}

#[test]
fn too_many_bad_commands_get_421_and_close() {
    let ca = TestCa::new();
    let up = MockUpstream::start(&ca);
    let p = start(&ca, &up, &["max_bad_commands = 3"]);
    let mut c = SmtpClient::connect(p.port(0));
    c.greet();
    for _ in 0..3 {
        c.cmd("BOGUS").expect_code(500, "unknown command");
    }
    c.cmd("BOGUS").expect(421, "4.7.0", "one error too many");
    c.read_to_eof()
        .expect("server closes after too many errors");
    let mut c = SmtpClient::connect(p.port(0));
    c.greet();
    control(&p, &up, &mut c);
}

/// At the largest `max_recipients` check-config allows, with every
/// recipient as long as RFC 5321 lets a path be, the message answered 250
/// is read back from the spool and delivered with its whole envelope.
#[test]
fn the_largest_allowed_recipient_list_is_delivered() {
    const MAX: usize = 10_000;
    let ca = TestCa::new();
    let up = MockUpstream::start(&ca);
    let cfg = Config::new(&up.url())
        .listeners(&["none"])
        .with_loopback_network()
        .server(&format!(
            "max_recipients = {MAX}\nmax_rcpt_commands = {MAX}"
        ))
        .upstream("format = \"json\"");
    let p = Postern::start(&ca, &cfg);
    // 64-octet local part and a 189-octet domain: 254 octets, the path 256.
    let domain = format!(
        "{}.{}.{}.test",
        "a".repeat(63),
        "b".repeat(63),
        "c".repeat(56)
    );
    let rcpts: Vec<String> = (0..MAX).map(|i| format!("{i:0>64}@{domain}")).collect();
    assert_eq!(rcpts[0].len() + 2, 256);
    let mut c = SmtpClient::connect(p.port(0));
    c.greet();
    c.cmd("MAIL FROM:<app@example.com>")
        .expect(250, "2.1.0", "MAIL");
    // Pipelined in batches: ten thousand round trips would only be slow.
    for chunk in rcpts.chunks(500) {
        let batch: String = chunk.iter().map(|r| format!("RCPT TO:<{r}>\r\n")).collect();
        c.send(batch.as_bytes());
        for r in chunk {
            c.read_reply().expect(250, "2.1.5", r);
        }
    }
    let r = c.data(b"From: app@example.com\r\nSubject: many\r\n\r\nhi\r\n");
    r.expect(250, "2.0.0", "end of data");
    c.quit();
    let reqs = p.delivered(&up, 1);
    let v: serde_json::Value = serde_json::from_slice(&reqs[0].body).expect("json");
    let got: Vec<&str> = v["rcpt_to"]
        .as_array()
        .expect("rcpt_to")
        .iter()
        .filter_map(|r| r.as_str())
        .collect();
    assert_eq!(got, rcpts);
    p.wait_queue_empty();
    assert!(p.dead_files().is_empty(), "{:?}", p.dead_files());
}
