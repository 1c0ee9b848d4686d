//! Shared setup for the JSON/API provider tests (upstream_json.rs,
//! upstream_faults.rs): the kinds under test, their config, the rich
//! test message and request checks.

use std::path::Path;
use std::time::Duration;

use crate::common::*;
use base64::Engine;
use serde_json::Value;

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

/// The provider kinds under test, with what each needs around it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Sendgrid,
    Postmark,
    Resend,
    Mailgun,
    Ses,
}

pub const SECRET: &str = "k3y-for-tests-only";
pub const AKID: &str = "AKIDPOSTERNTEST";

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::Sendgrid => "sendgrid",
            Kind::Postmark => "postmark",
            Kind::Resend => "resend",
            Kind::Mailgun => "mailgun",
            Kind::Ses => "ses",
        }
    }

    /// Kind-specific lines of the `[upstreams.prov]` table.
    pub fn keys(self) -> &'static str {
        match self {
            Kind::Sendgrid => {
                "api_key = \"env:POSTERN_TEST_KEY\"\ncategories = [\"invoices\", \"erp\"]\n"
            }
            Kind::Postmark => {
                "server_token = \"env:POSTERN_TEST_KEY\"\nmessage_stream = \"billing\"\n"
            }
            Kind::Resend => "api_key = \"env:POSTERN_TEST_KEY\"\n",
            Kind::Mailgun => {
                "api_key = \"env:POSTERN_TEST_KEY\"\ndomain = \"mg.example.com\"\nregion = \"eu\"\n"
            }
            Kind::Ses => {
                "region = \"eu-west-1\"\naccess_key_id = \"env:POSTERN_TEST_AKID\"\n\
                 secret_access_key = \"env:POSTERN_TEST_KEY\"\nconfiguration_set = \"tx\"\n"
            }
        }
    }

    pub fn path(self) -> &'static str {
        match self {
            Kind::Sendgrid => "/v3/mail/send",
            Kind::Postmark => "/email",
            Kind::Resend => "/emails",
            Kind::Mailgun => "/v3/mg.example.com/messages.mime",
            Kind::Ses => "/v2/email/outbound-emails",
        }
    }

    /// What the real API answers on success, and the id in it.
    pub fn ok(self) -> (Scripted, &'static str) {
        match self {
            Kind::Sendgrid => (
                Scripted::status(202).header("X-Message-Id", "sg-msg-7Q"),
                "sg-msg-7Q",
            ),
            Kind::Postmark => (
                Scripted::status(200).body(
                    br#"{"To":"bob@dest.test","MessageID":"pm-0a1b","ErrorCode":0,"Message":"OK"}"#,
                ),
                "pm-0a1b",
            ),
            Kind::Resend => (
                Scripted::status(200).body(br#"{"id":"re-49a3"}"#),
                "re-49a3",
            ),
            Kind::Mailgun => (
                Scripted::status(200).body(
                    br#"{"id":"<mg-20260101.1@mg.example.com>","message":"Queued. Thank you."}"#,
                ),
                "<mg-20260101.1@mg.example.com>",
            ),
            Kind::Ses => (
                Scripted::status(200).body(br#"{"MessageId":"0102-ses-abc"}"#),
                "0102-ses-abc",
            ),
        }
    }

    /// A permanent refusal in the API's own error format, and the text
    /// the dead-letter reason must carry.
    pub fn rejection(self) -> (Scripted, &'static str) {
        match self {
            Kind::Sendgrid => (
                Scripted::status(400).body(
                    br#"{"errors":[{"message":"The from address does not match a verified Sender Identity.","field":"from","help":null}]}"#,
                ),
                "from: The from address does not match a verified Sender Identity.",
            ),
            Kind::Postmark => (
                Scripted::status(422)
                    .body(br#"{"ErrorCode":300,"Message":"Invalid 'To' address: 'x'."}"#),
                "ErrorCode 300: Invalid 'To' address: 'x'.",
            ),
            Kind::Resend => (
                Scripted::status(422).body(
                    br#"{"statusCode":422,"name":"validation_error","message":"Invalid `to` field."}"#,
                ),
                "validation_error: Invalid `to` field.",
            ),
            Kind::Mailgun => (
                Scripted::status(400).body(br#"{"message":"to parameter is not a valid address"}"#),
                "to parameter is not a valid address",
            ),
            Kind::Ses => (
                Scripted::status(400)
                    .header("x-amzn-ErrorType", "MessageRejected:http://internal.amazon.com/coral/com.amazonaws.sesv2/")
                    .body(br#"{"message":"Email address is not verified. The following identities failed the check in region EU-WEST-1: app@example.com"}"#),
                "MessageRejected: Email address is not verified.",
            ),
        }
    }
}

/// Config: loopback-trusted credential on route `p` → `[upstreams.prov]`
/// of `kind` at `port`, trusting `ca_pem`.
pub fn config(kind: Kind, port: u16, ca_pem: &Path, unused_url: &str) -> Config {
    let mut cfg = Config::new(unused_url).listeners(&["none"]);
    cfg.credentials = vec![format!(
        "{}route = \"p\"\n",
        Config::networks_credential("local", &["127.0.0.0/8"], &["*@example.com"])
    )];
    cfg.extra = format!(
        "[routes.p]\nupstreams = [\"prov\"]\n\n[upstreams.prov]\nkind = \"{}\"\n\
         base_url = \"https://127.0.0.1:{port}\"\nca_file = {}\ntimeout = \"10s\"\n{}",
        kind.name(),
        crate::common::postern::toml_str(&ca_pem.to_string_lossy()),
        kind.keys()
    );
    cfg
}

pub fn start(ca: &TestCa, cfg: &Config) -> Postern {
    Postern::start_with_env(
        ca,
        cfg,
        &[("POSTERN_TEST_KEY", SECRET), ("POSTERN_TEST_AKID", AKID)],
    )
}

pub const PNG: &[u8] = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR";
pub const PDF: &[u8] = b"%PDF-1.4\n%\xc7\xec\x8f\xa2\n";
pub const CSV: &[u8] = b"caf\xe9;3";

/// Text + HTML with an inline image, a PDF and a Latin-1 CSV. Header To
/// names list@dest.test, which is not an envelope recipient.
pub const RICH: &[u8] = b"From: \"Billing Dept\" <billing@example.com>\r\n\
To: Bob <bob@dest.test>, list@dest.test\r\n\
Cc: Carol <carol@dest.test>\r\n\
Reply-To: help@example.com\r\n\
Subject: =?utf-8?q?Invoice_=E2=82=AC42?=\r\n\
Date: Mon, 1 Jan 2026 00:00:00 +0000\r\n\
Message-ID: <inv-42@example.com>\r\n\
X-Erp-Ref: INV-42\r\n\
MIME-Version: 1.0\r\n\
Content-Type: multipart/mixed; boundary=\"outer\"\r\n\
\r\n\
--outer\r\n\
Content-Type: multipart/related; boundary=\"rel\"\r\n\
\r\n\
--rel\r\n\
Content-Type: multipart/alternative; boundary=\"alt\"\r\n\
\r\n\
--alt\r\n\
Content-Type: text/plain; charset=utf-8\r\n\
\r\n\
Total: 42 EUR\r\n\
--alt\r\n\
Content-Type: text/html; charset=utf-8\r\n\
\r\n\
<p>Total: <b>42</b> <img src=\"cid:logo@x\"></p>\r\n\
--alt--\r\n\
--rel\r\n\
Content-Type: image/png\r\n\
Content-Transfer-Encoding: base64\r\n\
Content-ID: <logo@x>\r\n\
Content-Disposition: inline; filename=\"logo.png\"\r\n\
\r\n\
iVBORw0KGgoAAAANSUhEUg==\r\n\
--rel--\r\n\
--outer\r\n\
Content-Type: application/pdf; name=\"invoice.pdf\"\r\n\
Content-Transfer-Encoding: base64\r\n\
Content-Disposition: attachment; filename=\"invoice.pdf\"\r\n\
\r\n\
JVBERi0xLjQKJcfsj6IK\r\n\
--outer\r\n\
Content-Type: text/csv; charset=iso-8859-1\r\n\
Content-Transfer-Encoding: quoted-printable\r\n\
Content-Disposition: attachment; filename=\"prices.csv\"\r\n\
\r\n\
caf=E9;3=\r\n\
\r\n\
--outer--\r\n";

/// bob is in header To, carol in Cc, dave only in the envelope.
pub const ENVELOPE: &[&str] = &["bob@dest.test", "carol@dest.test", "dave@other.test"];

/// Submits `msg` over the plain loopback listener; returns the queue id.
pub fn submit(p: &Postern, rcpts: &[&str], msg: &[u8]) -> String {
    let mut c = SmtpClient::connect(p.port(0));
    c.greet();
    let r = c.send_message("app@example.com", rcpts, msg);
    r.expect(250, "2.0.0", "end of data");
    let id = r.queue_id().expect("queue id");
    c.quit();
    id
}

pub fn simple(subject: &str) -> Vec<u8> {
    simple_message("app@example.com", "bob@dest.test", subject)
}

pub fn json_body(req: &Recorded) -> Value {
    serde_json::from_slice(&req.body)
        .unwrap_or_else(|e| panic!("request body is not JSON ({e}): {}", show(&req.body)))
}

pub fn b64(v: &Value) -> Vec<u8> {
    B64.decode(v.as_str().expect("base64 string"))
        .expect("valid base64")
}

/// Method, path, content type and the kind's authentication header.
pub fn check_common(kind: Kind, req: &Recorded, port: u16) {
    assert_eq!(req.method, "POST");
    assert_eq!(req.path, kind.path());
    match kind {
        Kind::Sendgrid | Kind::Resend => {
            assert_eq!(req.one_header("authorization"), format!("Bearer {SECRET}"));
            assert_eq!(req.one_header("content-type"), "application/json");
        }
        Kind::Postmark => {
            assert_eq!(req.one_header("x-postmark-server-token"), SECRET);
            assert_eq!(req.one_header("content-type"), "application/json");
            assert_eq!(req.one_header("accept"), "application/json");
            assert!(req.header("authorization").is_none());
        }
        Kind::Mailgun => {
            let basic = B64.encode(format!("api:{SECRET}"));
            assert_eq!(req.one_header("authorization"), format!("Basic {basic}"));
            assert!(
                req.one_header("content-type")
                    .starts_with("multipart/form-data; boundary="),
                "{:?}",
                req.header("content-type")
            );
        }
        Kind::Ses => {
            assert_eq!(req.one_header("content-type"), "application/json");
            check_sigv4(req, port);
        }
    }
}

/// Recomputes the SigV4 signature of `req` (same time, url, signed
/// headers and body) and compares it with the one postern sent.
pub fn check_sigv4(req: &Recorded, port: u16) {
    let auth = req.one_header("authorization");
    assert!(
        auth.starts_with(&format!("AWS4-HMAC-SHA256 Credential={AKID}/")),
        "{auth}"
    );
    assert!(auth.contains("/eu-west-1/ses/aws4_request, "), "{auth}");
    assert!(
        auth.contains("SignedHeaders=content-type;host;x-amz-date, "),
        "{auth}"
    );
    let date = req.one_header("x-amz-date");
    let time = amz_date(date);
    let url = format!("https://127.0.0.1:{port}{}", req.path);
    let creds = aws_credential_types::Credentials::new(AKID, SECRET, None, None, "test");
    let identity = creds.into();
    let params = aws_sigv4::sign::v4::SigningParams::builder()
        .identity(&identity)
        .region("eu-west-1")
        .name("ses")
        .time(time)
        .settings(aws_sigv4::http_request::SigningSettings::default())
        .build()
        .expect("signing params")
        .into();
    let signable = aws_sigv4::http_request::SignableRequest::new(
        "POST",
        url.as_str(),
        [("content-type", "application/json")].into_iter(),
        aws_sigv4::http_request::SignableBody::Bytes(&req.body),
    )
    .expect("signable");
    let (instructions, _) = aws_sigv4::http_request::sign(signable, &params)
        .expect("sign")
        .into_parts();
    let want = instructions
        .headers()
        .find(|(n, _)| n.eq_ignore_ascii_case("authorization"))
        .map(|(_, v)| v.to_string())
        .expect("authorization");
    assert_eq!(auth, want, "signature does not verify");
}

/// `20260102T030405Z` → SystemTime.
pub fn amz_date(s: &str) -> std::time::SystemTime {
    let n = |r: std::ops::Range<usize>| -> i64 { s[r].parse().expect("amz date digits") };
    let (y, m, d) = (n(0..4), n(4..6), n(6..8));
    let (hh, mm, ss) = (n(9..11), n(11..13), n(13..15));
    // Days from civil (H. Hinnant).
    let y2 = if m <= 2 { y - 1 } else { y };
    let era = y2.div_euclid(400);
    let yoe = y2 - era * 400;
    let doy = (153 * ((m + 9) % 12) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let secs = days * 86_400 + hh * 3600 + mm * 60 + ss;
    std::time::UNIX_EPOCH + Duration::from_secs(secs as u64)
}

/// Waits until the log names the provider's message id.
pub fn logged(p: &Postern, text: &str) {
    let ok = wait_until(Duration::from_secs(30), || p.log().contains(text));
    assert!(ok, "log never mentions {text:?}:\n{}", p.log());
}

pub fn deliver_rich(kind: Kind) -> (Postern, Recorded, String) {
    let ca = TestCa::new();
    let (ok, id) = kind.ok();
    let up = MockUpstream::with_default(&ca, ok);
    let p = start(&ca, &config(kind, up.port, &ca.ca_pem, &up.url()));
    let queue_id = submit(&p, ENVELOPE, RICH);
    let reqs = p.delivered(&up, 1);
    p.wait_queue_empty();
    logged(&p, id);
    check_common(kind, &reqs[0], up.port);
    (p, reqs[0].clone(), queue_id)
}

/// Attachments in the rich message: (filename, type, bytes, inline cid).
pub fn check_attachment(a: &Value, name_key: &str, type_key: &str, content_key: &str, i: usize) {
    let want: [(&str, &str, &[u8]); 3] = [
        ("logo.png", "image/png", PNG),
        ("invoice.pdf", "application/pdf", PDF),
        ("prices.csv", "text/csv", CSV),
    ];
    let (name, ctype, bytes) = want[i];
    assert_eq!(a[name_key], name, "{a}");
    assert_eq!(a[type_key], ctype, "{a}");
    assert_eq!(b64(&a[content_key]), bytes, "{name} bytes");
}

/// One multipart/form-data part: (name, filename, content type, body).
pub type FormPart = (String, Option<String>, Option<String>, Vec<u8>);

pub fn form_parts(req: &Recorded) -> Vec<FormPart> {
    let ct = req.one_header("content-type");
    let boundary = ct
        .split("boundary=")
        .nth(1)
        .expect("boundary parameter")
        .trim_matches('"');
    let delim = format!("--{boundary}");
    let body = &req.body;
    let mut parts = Vec::new();
    let mut starts = Vec::new();
    let mut i = 0;
    while let Some(off) = find(&body[i..], delim.as_bytes()) {
        starts.push(i + off);
        i += off + delim.len();
    }
    assert!(starts.len() >= 2, "no multipart parts in {}", show(body));
    let last = *starts.last().unwrap();
    assert_eq!(
        &body[last..],
        format!("{delim}--\r\n").as_bytes(),
        "multipart body must end with the close delimiter"
    );
    for w in starts.windows(2) {
        // Part = after "--boundary\r\n" up to the CRLF before the next delimiter.
        let part = &body[w[0] + delim.len() + 2..w[1] - 2];
        let split = find(part, b"\r\n\r\n").expect("part headers end");
        let head = String::from_utf8_lossy(&part[..split]).into_owned();
        let content = part[split + 4..].to_vec();
        let param = |key: &str| {
            head.split(';')
                .map(str::trim)
                .find_map(|p| p.strip_prefix(&format!("{key}=\"")))
                .map(|v| v.trim_end_matches('"').to_string())
        };
        let name = param("name").expect("part name");
        let ctype = head
            .lines()
            .find_map(|l| l.strip_prefix("Content-Type: "))
            .map(str::to_string);
        parts.push((name, param("filename"), ctype, content));
    }
    parts
}

pub fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// After the queue emptied, give a duplicate delivery time to show itself.
pub fn settle() {
    std::thread::sleep(Duration::from_millis(1500));
}
