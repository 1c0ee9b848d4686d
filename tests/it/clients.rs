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
//! docs/clients.md lists each client's settings and names these tests.
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

// ---------------------------------------------------------------- swaks

fn swaks_sends(tls: Tls) {
    let w = World::new();
    need("/usr/bin/swaks", "swaks");
    let server = format!("127.0.0.1:{}", w.port(tls));
    let subject = format!("Subject: {SUBJECT}");
    let to = RCPTS.join(",");
    let (body, pdf, ca) = (
        format!("@{}", s(&w.body)),
        format!("@{}", s(&w.pdf)),
        w.ca_file(),
    );
    let run = swaks(&[
        "--server",
        &server,
        if tls == Tls::Implicit {
            "--tls-on-connect"
        } else {
            "--tls"
        },
        "--tls-verify",
        "--tls-ca-path",
        &ca,
        "--auth",
        "--auth-user",
        "app",
        "--auth-password",
        &token().0,
        "--ehlo",
        "swaks.client.test",
        "--from",
        FROM,
        "--to",
        &to,
        "--header",
        &subject,
        "--attach-type",
        "text/plain; charset=UTF-8",
        "--attach-body",
        &body,
        "--attach-type",
        "application/pdf",
        "--attach-name",
        PDF_NAME,
        "--attach",
        &pdf,
    ]);
    assert!(
        run.status.success(),
        "swaks failed:\n{}\npostern log:\n{}",
        run.output,
        w.p.log()
    );
    check_delivery(
        &w,
        Expect {
            ehlo: "swaks.client.test",
            sent: None,
            output: Some(&run.output),
            smtputf8: false,
        },
    );
}

#[test]
fn swaks_starttls() {
    swaks_sends(Tls::Starttls);
}

#[test]
fn swaks_implicit_tls() {
    swaks_sends(Tls::Implicit);
}

// ----------------------------------------------------------------- curl

fn curl_sends(tls: Tls) {
    let w = World::new();
    need("/usr/bin/curl", "curl");
    // The URL path is the EHLO name; curl builds the MIME message from -F.
    let scheme = if tls == Tls::Implicit {
        "smtps"
    } else {
        "smtp"
    };
    let url = format!("{scheme}://127.0.0.1:{}/curl.client.test", w.port(tls));
    let mut cmd = Command::new("/usr/bin/curl");
    cmd.args([
        "--silent",
        "--show-error",
        "--max-time",
        "60",
        "--url",
        &url,
    ])
    .args(["--ssl-reqd", "--cacert", &w.ca_file()])
    .args(["--user", &format!("app:{}", token().0)])
    .args([
        "--mail-from",
        FROM,
        "--mail-rcpt",
        RCPTS[0],
        "--mail-rcpt",
        RCPTS[1],
    ])
    .args(["-H", &format!("Subject: {SUBJECT}")])
    .args(["-H", &format!("From: App <{FROM}>")])
    .args(["-H", &format!("To: {}", RCPTS.join(", "))])
    .args([
        "-F",
        &format!(
            "=<{};type=text/plain; charset=UTF-8;encoder=quoted-printable",
            s(&w.body)
        ),
    ])
    .args([
        "-F",
        &format!("=@{};type=application/pdf;encoder=base64", s(&w.pdf)),
    ]);
    run_client(&w, "curl", &mut cmd);
    check_delivery(
        &w,
        Expect {
            ehlo: "curl.client.test",
            sent: None,
            output: None,
            smtputf8: false,
        },
    );
}

#[test]
fn curl_starttls() {
    curl_sends(Tls::Starttls);
}

#[test]
fn curl_implicit_tls() {
    curl_sends(Tls::Implicit);
}

// ---------------------------------------------------------------- msmtp

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

/// An msmtp configuration file (mode 0600: it holds the token) for `tls`.
fn msmtp_config(w: &World, tls: Tls, domain: &str) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let path = w.path("msmtprc");
    let text = format!(
        "defaults\nlogfile {log}\n\naccount postern\nhost 127.0.0.1\nport {port}\ndomain {domain}\n\
         tls on\ntls_starttls {starttls}\ntls_trust_file {ca}\nauth on\nuser app\npassword {token}\n\
         from {FROM}\n\naccount default : postern\n",
        log = s(&w.path("msmtp.log")),
        port = w.port(tls),
        starttls = if tls == Tls::Starttls { "on" } else { "off" },
        ca = w.ca_file(),
        token = token().0,
    );
    std::fs::write(&path, text).expect("write msmtprc");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).expect("chmod msmtprc");
    path
}

/// Postern's reply to the final dot, as msmtp logged it for the one message
/// it sent (`smtpmsg='250 2.0.0 Ok: queued as ID'`).
fn msmtp_log(w: &World) -> String {
    let log = std::fs::read_to_string(w.path("msmtp.log")).expect("read msmtp.log");
    assert_eq!(
        log.lines().count(),
        1,
        "one msmtp log line per message:\n{log}"
    );
    assert!(
        log.contains("exitcode=EX_OK"),
        "msmtp did not log success:\n{log}"
    );
    let msg = log
        .split_once("smtpmsg='")
        .and_then(|(_, rest)| rest.split_once('\''))
        .map(|(msg, _)| msg.to_string());
    msg.unwrap_or_else(|| panic!("no smtpmsg='...' in msmtp's log:\n{log}"))
}

fn msmtp_sends(tls: Tls) {
    let w = World::new();
    need("/usr/bin/msmtp", "msmtp");
    let conf = msmtp_config(&w, tls, "msmtp.client.test");
    let msg = raw_message("msmtp");
    let file = w.path("raw.eml");
    std::fs::write(&file, &msg).expect("write raw.eml");
    let mut cmd = Command::new("sh");
    cmd.arg("-c")
        .arg("exec /usr/bin/msmtp -C \"$1\" -- \"$2\" \"$3\" < \"$4\"")
        .args(["msmtp", &s(&conf), RCPTS[0], RCPTS[1], &s(&file)]);
    run_client(&w, "msmtp", &mut cmd);
    let log = msmtp_log(&w);
    check_delivery(
        &w,
        Expect {
            ehlo: "msmtp.client.test",
            sent: Some(crlf(&msg)),
            output: Some(&log),
            smtputf8: false,
        },
    );
}

#[test]
fn msmtp_starttls() {
    msmtp_sends(Tls::Starttls);
}

#[test]
fn msmtp_implicit_tls() {
    msmtp_sends(Tls::Implicit);
}

// ------------------------------------------------ PHP mail() through msmtp

#[test]
fn php_mail_through_msmtp_starttls() {
    let w = World::new();
    need("/usr/bin/php", "php-cli");
    need("/usr/bin/msmtp", "msmtp");
    let conf = msmtp_config(&w, Tls::Starttls, "php-mail.client.test");
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/php/mail_send.php");
    let mut cmd = Command::new("/usr/bin/php");
    cmd.arg("-n")
        .arg("-d")
        .arg(format!("sendmail_path=/usr/bin/msmtp -C {} -t", s(&conf)))
        .arg(&script)
        .arg(format!("--to={}", RCPTS.join(",")))
        .arg(format!("--from={FROM}"))
        .arg(format!("--subject={SUBJECT}"))
        .arg(format!("--body-file={}", s(&w.body)))
        .arg(format!("--attach-file={}", s(&w.pdf)))
        .arg("--attach-type=application/pdf");
    let out = run_client(&w, "php mail()", &mut cmd);
    assert!(out.contains("MAIL: OK"), "{out}");
    let log = msmtp_log(&w);
    check_delivery(
        &w,
        Expect {
            ehlo: "php-mail.client.test",
            sent: None,
            output: Some(&log),
            smtputf8: false,
        },
    );
}

// --------------------------------------------------------- Python smtplib

fn smtplib_sends(tls: Tls) {
    let w = World::new();
    let out = w.path("smtplib.eml");
    let port = w.port(tls).to_string();
    let mut cmd = Command::new(crate::common::clients::python_bin());
    cmd.arg(crate::common::clients::py_script("send_mail.py"))
        .args([
            "--port",
            &port,
            "--mode",
            tls.name(),
            "--cafile",
            &w.ca_file(),
            "--user",
            "app",
            "--password",
            &token().0,
            "--sender",
            FROM,
            "--to",
            &RCPTS.join(","),
            "--subject",
            SUBJECT,
            "--body-file",
            &s(&w.body),
            "--attach-file",
            &s(&w.pdf),
            "--attach-type",
            "application/pdf",
            "--out",
            &s(&out),
        ]);
    let text = run_client(&w, "send_mail.py (smtplib)", &mut cmd);
    assert!(
        text.contains("DATA-REPLY: 250 2.0.0 Ok: queued as "),
        "{text}"
    );
    let sent = std::fs::read(&out).expect("smtplib.eml");
    // smtplib announces its EHLO name as given by the script.
    check_delivery(
        &w,
        Expect {
            ehlo: "pyclient.test",
            sent: Some(sent),
            output: Some(&text),
            smtputf8: false,
        },
    );
}

#[test]
fn python_smtplib_starttls() {
    smtplib_sends(Tls::Starttls);
}

#[test]
fn python_smtplib_implicit_tls() {
    smtplib_sends(Tls::Implicit);
}

// ------------------------------------------------------------- PHPMailer

fn phpmailer_sends(tls: Tls) {
    let w = World::new();
    need("/usr/bin/php", "php-cli");
    need(
        "/usr/share/php/libphp-phpmailer/autoload.php",
        "PHPMailer (libphp-phpmailer)",
    );
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/php/phpmailer_send.php");
    let mut cmd = Command::new("/usr/bin/php");
    cmd.arg(&script)
        .arg(format!("--port={}", w.port(tls)))
        .arg(format!("--mode={}", tls.name()))
        .arg(format!("--cafile={}", w.ca_file()))
        .arg("--user=app")
        .arg(format!("--password={}", token().0))
        .arg(format!("--from={FROM}"))
        .arg(format!("--to={}", RCPTS.join(",")))
        .arg(format!("--subject={SUBJECT}"))
        .arg(format!("--body-file={}", s(&w.body)))
        .arg(format!("--attach-file={}", s(&w.pdf)))
        .arg("--attach-type=application/pdf");
    let out = run_client(&w, "PHPMailer", &mut cmd);
    assert!(out.contains("SENT: queued as "), "{out}");
    check_delivery(
        &w,
        Expect {
            ehlo: "phpmailer.client.test",
            sent: None,
            output: Some(&out),
            smtputf8: false,
        },
    );
}

#[test]
fn phpmailer_starttls() {
    phpmailer_sends(Tls::Starttls);
}

#[test]
fn phpmailer_implicit_tls() {
    phpmailer_sends(Tls::Implicit);
}

// ------------------------------------------------------------ nodemailer

fn nodemailer_sends(tls: Tls) {
    let w = World::new();
    need("/usr/bin/node", "Node.js");
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/node");
    need(
        &s(&dir.join("node_modules/nodemailer/package.json")),
        "nodemailer (npm ci in tests/node)",
    );
    let port = w.port(tls).to_string();
    let mut cmd = Command::new("/usr/bin/node");
    cmd.arg(dir.join("send.js")).args([
        &port,
        tls.name(),
        &w.ca_file(),
        "app",
        &token().0,
        FROM,
        &RCPTS.join(","),
        SUBJECT,
        &s(&w.body),
        &s(&w.pdf),
        "application/pdf",
    ]);
    let out = run_client(&w, "nodemailer", &mut cmd);
    assert!(out.contains("RESPONSE: 250 2.0.0 Ok: queued as "), "{out}");
    check_delivery(
        &w,
        Expect {
            ehlo: "nodemailer.client.test",
            sent: None,
            output: Some(&out),
            smtputf8: false,
        },
    );
}

#[test]
fn nodemailer_starttls() {
    nodemailer_sends(Tls::Starttls);
}

#[test]
fn nodemailer_implicit_tls() {
    nodemailer_sends(Tls::Implicit);
}

// ------------------------------------------------------- Perl Net::SMTP

fn perl_sends(tls: Tls) {
    let w = World::new();
    need("/usr/bin/perl", "perl");
    let modules = Command::new("/usr/bin/perl")
        .args([
            "-MNet::SMTP",
            "-MIO::Socket::SSL",
            "-MAuthen::SASL",
            "-e",
            "1",
        ])
        .output()
        .expect("run perl");
    assert!(
        modules.status.success(),
        "Perl modules missing (libio-socket-ssl-perl, libauthen-sasl-perl); run tests/run.sh: {}",
        String::from_utf8_lossy(&modules.stderr)
    );
    let out = w.path("perl.eml");
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/perl/net_smtp_send.pl");
    let port = w.port(tls).to_string();
    let mut cmd = Command::new("/usr/bin/perl");
    cmd.arg(&script).args([
        "--port",
        &port,
        "--mode",
        tls.name(),
        "--cafile",
        &w.ca_file(),
        "--user",
        "app",
        "--password",
        &token().0,
        "--from",
        FROM,
        "--to",
        &RCPTS.join(","),
        "--subject",
        SUBJECT,
        "--body-file",
        &s(&w.body),
        "--attach-file",
        &s(&w.pdf),
        "--attach-type",
        "application/pdf",
        "--out",
        &s(&out),
    ]);
    let text = run_client(&w, "Net::SMTP", &mut cmd);
    assert!(
        text.contains("DATA-REPLY: 250 2.0.0 Ok: queued as "),
        "{text}"
    );
    // datasend turns LF into CRLF (and dot-stuffs, undone by postern).
    let sent = crlf(&std::fs::read(&out).expect("perl.eml"));
    check_delivery(
        &w,
        Expect {
            ehlo: "perl.client.test",
            sent: Some(sent),
            output: Some(&text),
            smtputf8: false,
        },
    );
}

#[test]
fn perl_net_smtp_starttls() {
    perl_sends(Tls::Starttls);
}

#[test]
fn perl_net_smtp_implicit_tls() {
    perl_sends(Tls::Implicit);
}

mod postfix;
