//! End-to-end relay tests with real clients (swaks, Python smtplib and the
//! raw client): a message submitted over STARTTLS or implicit TLS with AUTH
//! must reach the HTTPS upstream byte for byte, with only postern's one
//! `Received:` header added and the envelope carried in the request.

use crate::common::*;
use base64::Engine;

fn data_file(p: &Postern, name: &str, content: &[u8]) -> String {
    let path = p.dir().join(name);
    std::fs::write(&path, content).expect("write data file");
    format!("@{}", path.display())
}

/// swaks (file without trailing newline) sends the file + CRLF, dot-stuffed.
const SWAKS_FILE: &[u8] = b"From: App <app@example.com>\r\nTo: Bob <bob@dest.test>\r\nSubject: swaks exact bytes\r\nDate: Mon, 2 Mar 2026 10:00:00 +0000\r\nMessage-ID: <swaks-1@example.com>\r\n\r\nHello from swaks.\r\n.this line starts with a dot\r\n\r\ntab\there\r\nlast line";

fn check_raw_request(req: &Recorded, id: &str, from: &str, rcpts: &str, sent: &[u8]) {
    assert_eq!(req.method, "POST");
    assert_eq!(req.path, "/send");
    assert_eq!(req.one_header("content-type"), "message/rfc822");
    assert_eq!(req.one_header("x-postern-mail-from"), from);
    assert_eq!(req.header_all("x-postern-rcpt-to").join(", "), rcpts);
    assert_eq!(req.one_header("x-postern-queue-id"), id);
    assert_forwarded(&req.body, sent);
}

fn swaks_delivers(auth: &str) {
    let ca = TestCa::new();
    let up = MockUpstream::start(&ca);
    let p = Postern::start(&ca, &Config::new(&up.url()));
    let file = data_file(&p, "msg.eml", SWAKS_FILE);
    let server = format!("127.0.0.1:{}", p.port(0));
    let run = swaks(&[
        "--server",
        &server,
        "--tls",
        "--auth",
        auth,
        "--auth-user",
        "app",
        "--auth-password",
        PASSWORD,
        "--ehlo",
        "client.test",
        "--from",
        "app@example.com",
        "--to",
        "bob@dest.test,carol@dest.test",
        "--data",
        &file,
    ]);
    run.assert_ok();
    assert!(
        run.output.contains("250 2.0.0 Ok: queued as "),
        "no `250 2.0.0 Ok: queued as` in swaks transcript:\n{}",
        run.output
    );
    let id = run.queue_id().expect("queue id");
    let reqs = p.delivered(&up, 1);
    let mut sent = SWAKS_FILE.to_vec();
    sent.extend_from_slice(b"\r\n");
    check_raw_request(
        &reqs[0],
        &id,
        "app@example.com",
        "bob@dest.test, carol@dest.test",
        &sent,
    );
    p.wait_queue_empty();
    assert_eq!(up.count(), 1, "exactly one upstream request");
}

#[test]
fn swaks_starttls_auth_plain_delivers_exact_bytes() {
    swaks_delivers("PLAIN");
}

#[test]
fn swaks_starttls_auth_login_delivers_exact_bytes() {
    swaks_delivers("LOGIN");
}

fn run_smtplib(
    ca: &TestCa,
    p: &Postern,
    port: u16,
    mode: &str,
    attach: usize,
    out: &str,
) -> String {
    let out_path = p.dir().join(out);
    let port = port.to_string();
    let attach = attach.to_string();
    let o = python(
        "send_mail.py",
        &[
            "--port",
            &port,
            "--mode",
            mode,
            "--cafile",
            &ca.ca_pem.to_string_lossy(),
            "--user",
            "app",
            "--password",
            PASSWORD,
            "--sender",
            "app@example.com",
            "--to",
            "bob@dest.test",
            "--attach-size",
            &attach,
            "--out",
            &out_path.to_string_lossy(),
            "--subject",
            mode,
        ],
    );
    let stdout = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(
        o.status.success(),
        "send_mail.py failed: {}\n{stdout}\n{}\npostern log:\n{}",
        o.status,
        String::from_utf8_lossy(&o.stderr),
        p.log()
    );
    assert!(
        stdout.contains("DATA-REPLY: 250 2.0.0 Ok: queued as "),
        "{stdout}"
    );
    queue_id_in_text(&stdout)
}

fn queue_id_in_text(s: &str) -> String {
    crate::common::clients::queue_id_in(s).unwrap_or_else(|| panic!("no queue id in {s:?}"))
}

#[test]
fn python_smtplib_starttls_binary_attachment_delivers_exact_bytes() {
    let ca = TestCa::new();
    let up = MockUpstream::start(&ca);
    let p = Postern::start(&ca, &Config::new(&up.url()));
    let id = run_smtplib(&ca, &p, p.port(0), "starttls", 100_000, "sent.eml");
    let sent = std::fs::read(p.dir().join("sent.eml")).expect("sent.eml");
    assert!(contains(
        &sent,
        b"Content-Disposition: attachment; filename=\"blob.bin\""
    ));
    let reqs = p.delivered(&up, 1);
    check_raw_request(&reqs[0], &id, "app@example.com", "bob@dest.test", &sent);
    p.wait_queue_empty();
    assert_eq!(up.count(), 1);
}

#[test]
fn implicit_tls_listener_delivers_exact_bytes() {
    let ca = TestCa::new();
    let up = MockUpstream::start(&ca);
    let p = Postern::start(
        &ca,
        &Config::new(&up.url()).listeners(&["starttls", "implicit"]),
    );

    // Python over implicit TLS on the second listener.
    let py_id = run_smtplib(&ca, &p, p.port(1), "implicit", 3000, "py.eml");
    let py_sent = std::fs::read(p.dir().join("py.eml")).expect("py.eml");

    // swaks over implicit TLS too.
    let file = data_file(&p, "swaks.eml", SWAKS_FILE);
    let server = format!("127.0.0.1:{}", p.port(1));
    let run = swaks(&[
        "--server",
        &server,
        "--tls-on-connect",
        "--auth",
        "PLAIN",
        "--auth-user",
        "app",
        "--auth-password",
        PASSWORD,
        "--from",
        "app@example.com",
        "--to",
        "dave@dest.test",
        "--data",
        &file,
    ]);
    run.assert_ok();
    let swaks_id = run.queue_id().expect("queue id");
    let mut swaks_sent = SWAKS_FILE.to_vec();
    swaks_sent.extend_from_slice(b"\r\n");

    let reqs = p.delivered(&up, 2);
    let by_id = |id: &str| {
        reqs.iter()
            .find(|r| r.header("x-postern-queue-id") == Some(id))
            .unwrap_or_else(|| panic!("no upstream request for {id}: {reqs:#?}"))
    };
    check_raw_request(
        by_id(&py_id),
        &py_id,
        "app@example.com",
        "bob@dest.test",
        &py_sent,
    );
    check_raw_request(
        by_id(&swaks_id),
        &swaks_id,
        "app@example.com",
        "dave@dest.test",
        &swaks_sent,
    );
    p.wait_queue_empty();
    assert_eq!(up.count(), 2);
}

#[test]
fn json_format_with_bearer_token() {
    let ca = TestCa::new();
    let up = MockUpstream::start(&ca);
    let cfg = Config::new(&up.url())
        .upstream("format = \"json\"")
        .upstream("bearer_token = \"env:POSTERN_TEST_API_TOKEN\"");
    let p = Postern::start_with_env(&ca, &cfg, &[("POSTERN_TEST_API_TOKEN", "tok-Zm9vYmFy.42")]);

    let mut c = SmtpClient::connect(p.port(0));
    c.greet_starttls(&ca);
    c.auth_plain("app", PASSWORD)
        .expect(235, "2.7.0", "AUTH PLAIN");
    let sent = simple_message("app@example.com", "bob@dest.test", "json format");
    let r = c.send_message(
        "app@example.com",
        &["bob@dest.test", "erin@dest.test"],
        &sent,
    );
    r.expect(250, "2.0.0", "end of data");
    let id = r.queue_id().expect("queue id");
    c.quit();

    let reqs = p.delivered(&up, 1);
    let req = &reqs[0];
    assert_eq!(req.method, "POST");
    assert_eq!(req.path, "/send");
    assert_eq!(req.one_header("authorization"), "Bearer tok-Zm9vYmFy.42");
    let ct = req.one_header("content-type");
    assert!(
        ct == "application/json" || ct.starts_with("application/json;"),
        "content-type {ct}"
    );
    let v: serde_json::Value = serde_json::from_slice(&req.body).expect("JSON body");
    let obj = v.as_object().expect("JSON object");
    let mut keys: Vec<&str> = obj.keys().map(String::as_str).collect();
    keys.sort();
    assert_eq!(keys, ["mail_from", "queue_id", "raw", "rcpt_to"]);
    assert_eq!(obj["queue_id"], serde_json::json!(id));
    assert_eq!(obj["mail_from"], serde_json::json!("app@example.com"));
    assert_eq!(
        obj["rcpt_to"],
        serde_json::json!(["bob@dest.test", "erin@dest.test"])
    );
    let raw = base64::engine::general_purpose::STANDARD
        .decode(obj["raw"].as_str().expect("raw is a string"))
        .expect("raw is base64");
    assert_forwarded(&raw, &sent);
    p.wait_queue_empty();
    assert_eq!(up.count(), 1);
}
