//! The client matrix: the SMTP clients legacy software really uses (swaks,
//! curl, msmtp, Python smtplib, PHPMailer, PHP `mail()` through msmtp,
//! nodemailer, Perl Net::SMTP and Postfix as a smarthost client) each send
//! the same message, a non-ASCII subject, a UTF-8 text body and a small
//! binary PDF attachment, through the real postern over STARTTLS and, where
//! the client can, implicit TLS, authenticating with a `postern token new`
//! token and verifying postern's certificate against the test CA.
//!
//! What reached the upstream is checked independently of postern's own
//! parser: one request, the envelope headers, and Python's `email` package
//! reading the message back (tests/py/inspect_mail.py) to the same subject,
//! body text and attachment bytes. Where the test has the exact bytes the
//! client was handed, they must arrive unchanged apart from the `Received:`
//! header postern adds and the RFC 2047 repair of a raw 8-bit subject.
//! docs/clients.md lists each client's settings and names these tests:
//! the command-line programs are in clients/programs.rs, the libraries in
//! clients/libraries.rs, Postfix in clients/postfix.rs.
//! tests/run.sh installs every client; a missing one fails the test.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;

use crate::common::postfix::{POSTFIX_HOSTNAME, Postfix, PostfixTls, Smarthost};
use crate::common::*;
use base64::Engine;

const SUBJECT: &str = "Rechnung für März – 42 €";
const BODY: &str = "Guten Tag,\n\nanbei die Rechnung für März über 42 €.\n.Diese Zeile beginnt mit einem Punkt.\n\nMit freundlichen Grüßen\nBuchhaltung\n";
const FROM: &str = "app@example.com";
const RCPTS: [&str; 2] = ["bob@dest.test", "carol@dest.test"];
const PDF_NAME: &str = "rechnung.pdf";
/// The start of a PDF: the binary-marker comment (bytes that are not
/// UTF-8), NUL, a lone CR, a dot after a newline, 0xFF.
const PDF: &[u8] = b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<< /Length 16 >>\nstream\n\x00\x01\x02\xff\xfe\r\r\n.\n\x80\x81\x9f\xa0\nendstream\nendobj\n%%EOF\n";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Tls {
    Starttls,
    Implicit,
}

impl Tls {
    fn name(self) -> &'static str {
        match self {
            Tls::Starttls => "starttls",
            Tls::Implicit => "implicit",
        }
    }
}

/// `postern token new app`, run once: (token, the credential block it prints).
fn token() -> &'static (String, String) {
    static TOKEN: OnceLock<(String, String)> = OnceLock::new();
    TOKEN.get_or_init(|| {
        let out = crate::common::clients::postern_cmd(&["token", "new", "app"], b"");
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(out.status.success(), "postern token new failed: {text}");
        let token = text
            .lines()
            .map(str::trim)
            .find(|l| l.starts_with("pst_"))
            .unwrap_or_else(|| panic!("no token in `postern token new` output: {text}"))
            .to_string();
        let block = &text[text.find("[credentials.app]").expect("credential block")..];
        (token, block.to_string())
    })
}

/// A test CA, the mock upstream and postern with a STARTTLS (port 0) and an
/// implicit TLS (port 1) listener, the only credential being the token's.
struct World {
    ca: TestCa,
    up: MockUpstream,
    p: Postern,
    body: PathBuf,
    pdf: PathBuf,
}

impl World {
    fn new() -> World {
        let ca = TestCa::new();
        let up = MockUpstream::start(&ca);
        let mut cfg = Config::new(&up.url()).listeners(&["starttls", "implicit"]);
        cfg.credentials = vec![token().1.clone()];
        let p = Postern::start(&ca, &cfg);
        let body = p.dir().join("body.txt");
        std::fs::write(&body, BODY).expect("write body.txt");
        let pdf = p.dir().join(PDF_NAME);
        std::fs::write(&pdf, PDF).expect("write the PDF");
        World {
            ca,
            up,
            p,
            body,
            pdf,
        }
    }

    fn port(&self, tls: Tls) -> u16 {
        self.p.port(match tls {
            Tls::Starttls => 0,
            Tls::Implicit => 1,
        })
    }

    /// The test CA's certificate, the only root every client trusts.
    fn ca_file(&self) -> String {
        s(&self.ca.ca_pem)
    }

    fn path(&self, name: &str) -> PathBuf {
        self.p.dir().join(name)
    }
}

fn s(p: &Path) -> String {
    p.display().to_string()
}

/// Fails (never skips) when a client is not installed.
#[track_caller]
fn need(path: &str, what: &str) {
    assert!(
        Path::new(path).exists(),
        "{what} is not installed ({path} is missing); run tests/run.sh, which installs every client of the matrix"
    );
}

/// Runs a client to completion; panics with its output and postern's log unless it succeeded.
#[track_caller]
fn run_client(w: &World, what: &str, cmd: &mut Command) -> String {
    let out: Output = cmd
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("run {what}: {e}"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "{what} failed ({}):\n{text}\npostern log:\n{}",
        out.status,
        w.p.log()
    );
    text
}

/// LF line endings to CRLF (what every client puts on the wire).
fn crlf(b: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(b.len() + b.len() / 40);
    for (i, &c) in b.iter().enumerate() {
        if c == b'\n' && (i == 0 || b[i - 1] != b'\r') {
            out.push(b'\r');
        }
        out.push(c);
    }
    out
}

/// Header fields (with their folded lines) and the body of a CRLF message.
fn fields_and_body(msg: &[u8]) -> (Vec<&[u8]>, &[u8]) {
    let end = msg
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no end of headers in:\n{}", show(msg)));
    let mut fields: Vec<&[u8]> = Vec::new();
    let mut start = 0;
    let head = &msg[..end + 2];
    let mut i = 0;
    while i < head.len() {
        let nl = head[i..]
            .iter()
            .position(|&c| c == b'\n')
            .map_or(head.len(), |p| i + p + 1);
        if nl < head.len() && (head[nl] == b' ' || head[nl] == b'\t') {
            i = nl;
            continue;
        }
        fields.push(&head[start..nl]);
        start = nl;
        i = nl;
    }
    (fields, &msg[end + 4..])
}

fn is_subject(field: &[u8]) -> bool {
    field.len() > 8 && field[..8].eq_ignore_ascii_case(b"subject:")
}

/// `got` (the forwarded message without postern's `Received:`) is `sent`
/// byte for byte, except that a Subject with raw 8-bit text may have been
/// rewritten (as RFC 2047; its decoded text is checked separately).
fn assert_same_but_8bit_subject(got: &[u8], sent: &[u8]) {
    let (sent_fields, sent_body) = fields_and_body(sent);
    let raw_subject = sent_fields.iter().any(|f| is_subject(f) && !f.is_ascii());
    if !raw_subject {
        assert_bytes_eq(got, sent, "forwarded message minus Received header");
        return;
    }
    let (got_fields, got_body) = fields_and_body(got);
    let keep = |v: &[&[u8]]| -> Vec<String> {
        v.iter()
            .filter(|f| !is_subject(f))
            .map(|f| show(f))
            .collect()
    };
    assert_eq!(
        keep(&got_fields),
        keep(&sent_fields),
        "header fields other than Subject must be forwarded unchanged"
    );
    assert_bytes_eq(got_body, sent_body, "forwarded body");
}

/// What the client sent, as far as the test knows it.
struct Expect<'a> {
    /// The EHLO name the client was told to use.
    ehlo: &'a str,
    /// The message exactly as handed to the client (CRLF), when it does not compose it.
    sent: Option<Vec<u8>>,
    /// The client's output, when it shows postern's `queued as ID`.
    output: Option<&'a str>,
    /// The client announced SMTPUTF8 (RFC 6531), so postern forwards
    /// raw UTF-8 header text as it is (RFC 6532) instead of encoding it.
    smtputf8: bool,
}

/// The checks every client must pass; returns the request and the parsed message.
#[track_caller]
fn check_delivery(w: &World, e: Expect<'_>) -> (Recorded, serde_json::Value) {
    let mut reqs = w.p.delivered(&w.up, 1);
    w.p.wait_queue_empty();
    assert_eq!(w.up.count(), 1, "exactly one request reached the upstream");
    let req = reqs.swap_remove(0);
    assert_eq!(req.one_header("content-type"), "message/rfc822");
    assert_eq!(req.one_header("x-postern-mail-from"), FROM);
    assert_eq!(
        req.header_all("x-postern-rcpt-to"),
        RCPTS,
        "one X-Postern-Rcpt-To per recipient"
    );
    if let Some(output) = e.output {
        let id = crate::common::clients::queue_id_in(output)
            .unwrap_or_else(|| panic!("no `queued as ID` in the client's output:\n{output}"));
        assert_eq!(
            req.one_header("x-postern-queue-id"),
            id,
            "the queue ID the client was told"
        );
    }

    let (received, rest) = split_received(&req.body);
    let received = String::from_utf8_lossy(received)
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    let want = format!(
        "Received: from {} ([127.0.0.1]) by relay.test (postern) with ESMTPSA id ",
        e.ehlo
    );
    assert!(
        received.starts_with(&want),
        "postern's trace header {received:?} does not start with {want:?}"
    );
    if let Some(sent) = &e.sent {
        assert_same_but_8bit_subject(rest, sent);
    }

    let file = w.path("forwarded.eml");
    std::fs::write(&file, &req.body).expect("write forwarded.eml");
    let out = python("inspect_mail.py", &[&s(&file)]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "inspect_mail.py failed: {}\n{}",
        stdout,
        String::from_utf8_lossy(&out.stderr)
    );
    let m: serde_json::Value = serde_json::from_str(stdout.trim()).expect("inspect_mail.py JSON");
    let ctx = || {
        format!(
            "message as read by Python's email package: {m:#}\nraw:\n{}",
            show(&req.body)
        )
    };
    assert_eq!(m["subject"], SUBJECT, "decoded subject; {}", ctx());
    if e.smtputf8 {
        let raw = format!("\r\nSubject: {SUBJECT}\r\n");
        assert!(
            contains(rest, raw.as_bytes()),
            "SMTPUTF8: the subject is forwarded as UTF-8; {}",
            ctx()
        );
    } else {
        // Only RFC 2047 can be read by the older API, and by every receiver.
        assert_eq!(
            m["subject_legacy"],
            SUBJECT,
            "subject via decode_header(); {}",
            ctx()
        );
        assert_eq!(
            m["header_8bit"],
            false,
            "raw 8-bit bytes left in the header section; {}",
            ctx()
        );
    }
    assert_eq!(m["from"], serde_json::json!([FROM]), "{}", ctx());
    assert_eq!(m["to"], serde_json::json!(RCPTS), "{}", ctx());
    assert_eq!(
        m["defects"],
        serde_json::json!([]),
        "parser defects; {}",
        ctx()
    );
    let text = m["text"]
        .as_str()
        .unwrap_or_else(|| panic!("no text/plain part; {}", ctx()));
    assert_eq!(
        text.replace("\r\n", "\n").trim_end_matches('\n'),
        BODY.trim_end_matches('\n'),
        "body text; {}",
        ctx()
    );
    let atts = m["attachments"].as_array().expect("attachments");
    assert_eq!(atts.len(), 1, "one attachment; {}", ctx());
    assert_eq!(atts[0]["filename"], PDF_NAME, "{}", ctx());
    assert_eq!(atts[0]["content_type"], "application/pdf", "{}", ctx());
    let data = base64::engine::general_purpose::STANDARD
        .decode(atts[0]["data_b64"].as_str().expect("data_b64"))
        .expect("base64 from inspect_mail.py");
    assert_bytes_eq(&data, PDF, "attachment bytes");
    (req, m)
}

/// The message a program that writes its own MIME hands to a sendmail-like
/// tool: LF line endings, an 8-bit UTF-8 text part and, as such programs
/// usually do, the subject as raw UTF-8 without RFC 2047.
fn raw_message(tag: &str) -> Vec<u8> {
    let b64 = base64::engine::general_purpose::STANDARD.encode(PDF);
    let mut lines = String::new();
    for chunk in b64.as_bytes().chunks(76) {
        lines.push_str(std::str::from_utf8(chunk).expect("base64 is ASCII"));
        lines.push('\n');
    }
    format!(
        "From: App <{FROM}>\nTo: {to}\nSubject: {SUBJECT}\nDate: Mon, 02 Mar 2026 10:00:00 +0000\n\
         Message-ID: <{tag}@example.com>\nMIME-Version: 1.0\n\
         Content-Type: multipart/mixed; boundary=\"=-b1\"\n\n\
         --=-b1\nContent-Type: text/plain; charset=UTF-8\nContent-Transfer-Encoding: 8bit\n\n\
         {BODY}--=-b1\nContent-Type: application/pdf; name=\"{PDF_NAME}\"\n\
         Content-Transfer-Encoding: base64\n\
         Content-Disposition: attachment; filename=\"{PDF_NAME}\"\n\n{lines}--=-b1--\n",
        to = RCPTS.join(", "),
    )
    .into_bytes()
}

mod libraries;
mod postfix;
mod programs;
