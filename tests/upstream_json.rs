//! The SendGrid, Postmark, Resend, Mailgun and SES kinds against a local
//! HTTPS server playing each API: the exact request (method, path, auth
//! header or SigV4 signature, content type, every JSON field or multipart
//! part, attachments decoded back to their original bytes, the
//! envelope-decides-recipients rule) and the fault handling (429 with
//! Retry-After, 500, 4xx with the provider's message, 401, connection
//! reset, wrong CA): retried or dead-lettered, never lost, never delivered
//! twice. SES against a real emulator (moto) is in upstream_ses.rs.

mod common;

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use base64::Engine;
use common::*;
use serde_json::{Value, json};

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

/// The provider kinds under test, with what each needs around it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Sendgrid,
    Postmark,
    Resend,
    Mailgun,
    Ses,
}

const SECRET: &str = "k3y-for-tests-only";
const AKID: &str = "AKIDPOSTERNTEST";

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Sendgrid => "sendgrid",
            Kind::Postmark => "postmark",
            Kind::Resend => "resend",
            Kind::Mailgun => "mailgun",
            Kind::Ses => "ses",
        }
    }

    /// Kind-specific lines of the `[upstreams.prov]` table.
    fn keys(self) -> &'static str {
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

    fn path(self) -> &'static str {
        match self {
            Kind::Sendgrid => "/v3/mail/send",
            Kind::Postmark => "/email",
            Kind::Resend => "/emails",
            Kind::Mailgun => "/v3/mg.example.com/messages.mime",
            Kind::Ses => "/v2/email/outbound-emails",
        }
    }

    /// What the real API answers on success, and the id in it.
    fn ok(self) -> (Scripted, &'static str) {
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
    fn rejection(self) -> (Scripted, &'static str) {
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
fn config(kind: Kind, port: u16, ca_pem: &Path, unused_url: &str) -> Config {
    let mut cfg = Config::new(unused_url).listeners(&["none"]);
    cfg.credentials = vec![format!(
        "{}route = \"p\"\n",
        Config::networks_credential("local", &["127.0.0.0/8"], &["*@example.com"])
    )];
    cfg.extra = format!(
        "[routes.p]\nupstreams = [\"prov\"]\n\n[upstreams.prov]\nkind = \"{}\"\n\
         base_url = \"https://127.0.0.1:{port}\"\nca_file = {}\ntimeout = \"10s\"\n{}",
        kind.name(),
        common::postern::toml_str(&ca_pem.to_string_lossy()),
        kind.keys()
    );
    cfg
}

fn start(ca: &TestCa, cfg: &Config) -> Postern {
    Postern::start_with_env(
        ca,
        cfg,
        &[("POSTERN_TEST_KEY", SECRET), ("POSTERN_TEST_AKID", AKID)],
    )
}

const PNG: &[u8] = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR";
const PDF: &[u8] = b"%PDF-1.4\n%\xc7\xec\x8f\xa2\n";
const CSV: &[u8] = b"caf\xe9;3";

/// Text + HTML with an inline image, a PDF and a Latin-1 CSV. Header To
/// names list@dest.test, which is not an envelope recipient.
const RICH: &[u8] = b"From: \"Billing Dept\" <billing@example.com>\r\n\
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
const ENVELOPE: &[&str] = &["bob@dest.test", "carol@dest.test", "dave@other.test"];

/// Submits `msg` over the plain loopback listener; returns the queue id.
fn submit(p: &Postern, rcpts: &[&str], msg: &[u8]) -> String {
    let mut c = SmtpClient::connect(p.port(0));
    c.greet();
    let r = c.send_message("app@example.com", rcpts, msg);
    r.expect(250, "2.0.0", "end of data");
    let id = r.queue_id().expect("queue id");
    c.quit();
    id
}

fn simple(subject: &str) -> Vec<u8> {
    simple_message("app@example.com", "bob@dest.test", subject)
}

fn json_body(req: &Recorded) -> Value {
    serde_json::from_slice(&req.body)
        .unwrap_or_else(|e| panic!("request body is not JSON ({e}): {}", show(&req.body)))
}

fn b64(v: &Value) -> Vec<u8> {
    B64.decode(v.as_str().expect("base64 string"))
        .expect("valid base64")
}

/// Method, path, content type and the kind's authentication header.
fn check_common(kind: Kind, req: &Recorded, port: u16) {
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
fn check_sigv4(req: &Recorded, port: u16) {
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
fn amz_date(s: &str) -> std::time::SystemTime {
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
fn logged(p: &Postern, text: &str) {
    let ok = wait_until(Duration::from_secs(30), || p.log().contains(text));
    assert!(ok, "log never mentions {text:?}:\n{}", p.log());
}

fn deliver_rich(kind: Kind) -> (Postern, Recorded, String) {
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
fn check_attachment(a: &Value, name_key: &str, type_key: &str, content_key: &str, i: usize) {
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

#[test]
fn sendgrid_request_is_exact() {
    let (_p, req, _) = deliver_rich(Kind::Sendgrid);
    let v = json_body(&req);
    assert_eq!(
        v["personalizations"],
        json!([{
            "to": [{"email": "bob@dest.test", "name": "Bob"}],
            "cc": [{"email": "carol@dest.test", "name": "Carol"}],
            "bcc": [{"email": "dave@other.test"}],
        }])
    );
    assert_eq!(
        v["from"],
        json!({"email": "billing@example.com", "name": "Billing Dept"})
    );
    assert_eq!(v["reply_to"], json!({"email": "help@example.com"}));
    assert_eq!(v["subject"], "Invoice €42");
    assert_eq!(
        v["content"],
        json!([
            {"type": "text/plain", "value": "Total: 42 EUR"},
            {"type": "text/html", "value": "<p>Total: <b>42</b> <img src=\"cid:logo@x\"></p>"},
        ])
    );
    let atts = v["attachments"].as_array().expect("attachments");
    assert_eq!(atts.len(), 3);
    for (i, a) in atts.iter().enumerate() {
        check_attachment(a, "filename", "type", "content", i);
    }
    assert_eq!(atts[0]["disposition"], "inline");
    assert_eq!(atts[0]["content_id"], "logo@x");
    assert_eq!(atts[1]["disposition"], "attachment");
    assert_eq!(v["headers"]["Message-ID"], "<inv-42@example.com>");
    assert_eq!(v["headers"]["X-Erp-Ref"], "INV-42");
    assert!(v["headers"].get("Received").is_none());
    assert_eq!(v["categories"], json!(["invoices", "erp"]));
    let text = String::from_utf8_lossy(&req.body);
    assert!(
        !text.contains("list@dest.test"),
        "non-recipient leaked: {text}"
    );
}

#[test]
fn postmark_request_is_exact() {
    let (_p, req, _) = deliver_rich(Kind::Postmark);
    let v = json_body(&req);
    assert_eq!(v["From"], "\"Billing Dept\" <billing@example.com>");
    assert_eq!(v["To"], "\"Bob\" <bob@dest.test>");
    assert_eq!(v["Cc"], "\"Carol\" <carol@dest.test>");
    assert_eq!(v["Bcc"], "dave@other.test");
    assert_eq!(v["ReplyTo"], "help@example.com");
    assert_eq!(v["Subject"], "Invoice €42");
    assert_eq!(v["TextBody"], "Total: 42 EUR");
    assert_eq!(
        v["HtmlBody"],
        "<p>Total: <b>42</b> <img src=\"cid:logo@x\"></p>"
    );
    assert_eq!(v["MessageStream"], "billing");
    let headers = v["Headers"].as_array().expect("Headers");
    assert!(
        headers.contains(&json!({"Name": "X-Erp-Ref", "Value": "INV-42"})),
        "{headers:?}"
    );
    assert!(headers.contains(&json!({"Name": "Message-ID", "Value": "<inv-42@example.com>"})));
    let atts = v["Attachments"].as_array().expect("Attachments");
    assert_eq!(atts.len(), 3);
    for (i, a) in atts.iter().enumerate() {
        check_attachment(a, "Name", "ContentType", "Content", i);
    }
    assert_eq!(atts[0]["ContentID"], "cid:logo@x");
    assert!(atts[1].get("ContentID").is_none());
    assert!(!String::from_utf8_lossy(&req.body).contains("list@dest.test"));
}

#[test]
fn resend_request_is_exact_with_idempotency_key() {
    let (_p, req, queue_id) = deliver_rich(Kind::Resend);
    assert_eq!(req.one_header("idempotency-key"), queue_id);
    let v = json_body(&req);
    assert_eq!(v["from"], "\"Billing Dept\" <billing@example.com>");
    assert_eq!(v["to"], json!(["\"Bob\" <bob@dest.test>"]));
    assert_eq!(v["cc"], json!(["\"Carol\" <carol@dest.test>"]));
    assert_eq!(v["bcc"], json!(["dave@other.test"]));
    assert_eq!(v["reply_to"], json!(["help@example.com"]));
    assert_eq!(v["subject"], "Invoice €42");
    assert_eq!(v["text"], "Total: 42 EUR");
    assert_eq!(
        v["html"],
        "<p>Total: <b>42</b> <img src=\"cid:logo@x\"></p>"
    );
    assert_eq!(v["headers"]["X-Erp-Ref"], "INV-42");
    let atts = v["attachments"].as_array().expect("attachments");
    assert_eq!(atts.len(), 3);
    for (i, a) in atts.iter().enumerate() {
        check_attachment(a, "filename", "content_type", "content", i);
    }
    assert_eq!(atts[0]["content_id"], "logo@x");
    assert!(atts[2].get("content_id").is_none());
    assert!(!String::from_utf8_lossy(&req.body).contains("list@dest.test"));
}

/// One multipart/form-data part: (name, filename, content type, body).
type FormPart = (String, Option<String>, Option<String>, Vec<u8>);

fn form_parts(req: &Recorded) -> Vec<FormPart> {
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

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

#[test]
fn mailgun_request_carries_envelope_and_exact_message() {
    let (p, req, _) = deliver_rich(Kind::Mailgun);
    let parts = form_parts(&req);
    let to: Vec<&str> = parts
        .iter()
        .filter(|(n, ..)| n == "to")
        .map(|(.., c)| std::str::from_utf8(c).expect("utf-8 to"))
        .collect();
    assert_eq!(to, ENVELOPE, "one `to` part per envelope recipient");
    let msgs: Vec<_> = parts.iter().filter(|(n, ..)| n == "message").collect();
    assert_eq!(msgs.len(), 1, "exactly one message part");
    let (_, filename, ctype, content) = msgs[0];
    assert!(filename.is_some(), "message must be a file part");
    assert_eq!(ctype.as_deref(), Some("message/rfc822"));
    assert_forwarded(content, RICH);
    assert_eq!(parts.len(), ENVELOPE.len() + 1, "no other form fields");
    drop(p);
}

#[test]
fn cc_only_and_single_hidden_recipient_become_to() {
    // Header To names nobody in the envelope; the one recipient is hidden.
    for kind in [Kind::Postmark, Kind::Resend, Kind::Sendgrid] {
        let ca = TestCa::new();
        let up = MockUpstream::with_default(&ca, kind.ok().0);
        let p = start(&ca, &config(kind, up.port, &ca.ca_pem, &up.url()));
        let msg = simple_message("app@example.com", "all-staff@example.com", "hidden");
        submit(&p, &["ops@dest.test"], &msg);
        let v = json_body(&p.delivered(&up, 1)[0]);
        let body = v.to_string();
        assert!(!body.contains("all-staff@example.com"), "{kind:?}: {body}");
        match kind {
            Kind::Postmark => assert_eq!(v["To"], "ops@dest.test"),
            Kind::Resend => assert_eq!(v["to"], json!(["ops@dest.test"])),
            _ => assert_eq!(
                v["personalizations"],
                json!([{"to": [{"email": "ops@dest.test"}]}])
            ),
        }
        p.wait_queue_empty();
    }
}

#[test]
fn ses_request_is_exact_and_signed() {
    let (_p, req, _) = deliver_rich(Kind::Ses);
    let v = json_body(&req);
    assert_eq!(v["FromEmailAddress"], "app@example.com");
    assert_eq!(v["Destination"], json!({"ToAddresses": ENVELOPE}));
    assert_eq!(v["ConfigurationSetName"], "tx");
    assert_forwarded(&b64(&v["Content"]["Raw"]["Data"]), RICH);
    let keys: Vec<&String> = v.as_object().expect("object").keys().collect();
    assert_eq!(keys.len(), 4, "no other fields: {keys:?}");
}

#[test]
fn ses_daily_quota_is_retried_not_dead_lettered() {
    let ca = TestCa::new();
    let up = MockUpstream::with_default(&ca, Kind::Ses.ok().0);
    up.push(
        Scripted::status(400)
            .header("x-amzn-ErrorType", "LimitExceededException")
            .body(br#"{"message":"Daily message quota exceeded."}"#),
    );
    let p = start(&ca, &config(Kind::Ses, up.port, &ca.ca_pem, &up.url()));
    submit(&p, &["bob@dest.test"], &simple("quota"));
    p.delivered(&up, 2);
    p.wait_queue_empty();
    settle();
    assert_eq!(up.count(), 2);
    assert!(p.dead_files().is_empty());
    assert!(
        p.log().contains("Daily message quota exceeded"),
        "{}",
        p.log()
    );
}

// ---- fault injection, for every provider ----

/// After the queue emptied, give a duplicate delivery time to show itself.
fn settle() {
    std::thread::sleep(Duration::from_millis(1500));
}

fn assert_delivered_after_retry(kind: Kind, first: Scripted) {
    let ca = TestCa::new();
    let up = MockUpstream::with_default(&ca, kind.ok().0);
    up.push(first);
    let p = start(&ca, &config(kind, up.port, &ca.ca_pem, &up.url()));
    submit(&p, &["bob@dest.test"], &simple("retry"));
    let reqs = p.delivered(&up, 2);
    p.wait_queue_empty();
    settle();
    assert_eq!(
        up.count(),
        2,
        "{kind:?}: one failure, one delivery: {reqs:#?}"
    );
    if kind == Kind::Mailgun {
        // Each request has its own random multipart boundary.
        assert_eq!(
            form_parts(&reqs[0]),
            form_parts(&reqs[1]),
            "the retry sends the same parts"
        );
    } else {
        assert_eq!(
            reqs[0].body, reqs[1].body,
            "the retry sends the same request"
        );
    }
    assert!(p.dead_files().is_empty(), "{:?}", p.dead_files());
    logged(&p, kind.ok().1);
}

fn rate_limited_then_ok(kind: Kind) {
    assert_delivered_after_retry(
        kind,
        Scripted::status(429)
            .header("Retry-After", "1")
            .body(br#"{"message":"Too many requests"}"#),
    );
}

fn server_error_then_ok(kind: Kind) {
    assert_delivered_after_retry(kind, Scripted::status(500).body(b"internal error"));
}

fn credentials_rejected_then_ok(kind: Kind) {
    let ca = TestCa::new();
    let up = MockUpstream::with_default(&ca, kind.ok().0);
    up.push(Scripted::status(401).body(br#"{"message":"unauthorized"}"#));
    let p = start(&ca, &config(kind, up.port, &ca.ca_pem, &up.url()));
    submit(&p, &["bob@dest.test"], &simple("401"));
    p.delivered(&up, 2);
    p.wait_queue_empty();
    let log = p.log();
    assert!(log.contains("credentials rejected"), "{log}");
    assert!(
        log.contains("ERROR"),
        "credentials alert must be an ERROR: {log}"
    );
    assert!(!log.contains(SECRET), "secret in the log: {log}");
    settle();
    assert_eq!(up.count(), 2);
}

fn rejection_is_dead_lettered(kind: Kind) {
    let ca = TestCa::new();
    let (bad, reason_text) = kind.rejection();
    let up = MockUpstream::with_default(&ca, bad);
    let p = start(&ca, &config(kind, up.port, &ca.ca_pem, &up.url()));
    let id = submit(&p, &["bob@dest.test"], &simple("refused"));
    p.delivered(&up, 1);
    let reason_path = p.dead_dir().join(format!("{id}.reason"));
    let ok = wait_until(Duration::from_secs(60), || reason_path.exists());
    assert!(ok, "no dead letter; log:\n{}", p.log());
    p.wait_queue_empty();
    let reason: Value =
        serde_json::from_slice(&std::fs::read(&reason_path).expect("read reason")).expect("JSON");
    let text = reason["reason"].as_str().expect("reason string");
    assert!(
        text.contains(reason_text),
        "{kind:?}: reason {text:?} lacks the provider's message {reason_text:?}"
    );
    settle();
    assert_eq!(up.count(), 1, "a permanent failure is not retried");
}

/// A TCP front that resets (RST) the first `reset_first` connections
/// during the TLS handshake and forwards every later one to `target`.
struct ResettingProxy {
    rt: Option<tokio::runtime::Runtime>,
    port: u16,
    resets: Arc<AtomicUsize>,
}

impl ResettingProxy {
    fn start(target: u16, reset_first: usize) -> ResettingProxy {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("proxy runtime");
        let listener = rt
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .expect("bind proxy");
        let port = listener.local_addr().expect("proxy addr").port();
        let resets = Arc::new(AtomicUsize::new(0));
        let counter = resets.clone();
        rt.spawn(async move {
            use tokio::io::AsyncReadExt;
            while let Ok((mut inbound, _)) = listener.accept().await {
                if counter.load(Ordering::SeqCst) < reset_first {
                    counter.fetch_add(1, Ordering::SeqCst);
                    // Wait for the ClientHello, then abort with RST.
                    let mut buf = [0u8; 512];
                    let _ = inbound.read(&mut buf).await;
                    // Zero linger never blocks on drop; it is how a socket sends RST.
                    #[allow(deprecated)]
                    let _ = inbound.set_linger(Some(Duration::ZERO));
                    drop(inbound);
                    continue;
                }
                tokio::spawn(async move {
                    if let Ok(mut outbound) =
                        tokio::net::TcpStream::connect(("127.0.0.1", target)).await
                    {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
            }
        });
        ResettingProxy {
            rt: Some(rt),
            port,
            resets,
        }
    }
}

impl Drop for ResettingProxy {
    fn drop(&mut self) {
        if let Some(rt) = self.rt.take() {
            rt.shutdown_background();
        }
    }
}

fn connection_reset_then_ok(kind: Kind) {
    let ca = TestCa::new();
    let up = MockUpstream::with_default(&ca, kind.ok().0);
    let proxy = ResettingProxy::start(up.port, 1);
    let p = start(&ca, &config(kind, proxy.port, &ca.ca_pem, &up.url()));
    submit(&p, &["bob@dest.test"], &simple("reset"));
    p.delivered(&up, 1);
    p.wait_queue_empty();
    settle();
    assert_eq!(
        proxy.resets.load(Ordering::SeqCst),
        1,
        "the first try was reset"
    );
    assert_eq!(up.count(), 1, "delivered exactly once");
    assert!(p.dead_files().is_empty());
}

fn wrong_ca_is_retried_then_delivered_once(kind: Kind) {
    let ca = TestCa::new();
    let other = TestCa::new();
    let up = MockUpstream::with_default(&ca, kind.ok().0);
    let mut p = start(&ca, &config(kind, up.port, &other.ca_pem, &up.url()));
    let id = submit(&p, &["bob@dest.test"], &simple("wrong ca"));
    // Several failed attempts, each a certificate error, none reaching the API.
    let ok = wait_until(Duration::from_secs(60), || {
        p.log().matches("cannot connect").count() >= 2
    });
    assert!(ok, "no retried connection failures:\n{}", p.log());
    assert_eq!(
        up.count(),
        0,
        "nothing may reach a server with an untrusted certificate"
    );
    assert!(p.queue_files().contains(&id), "message must stay queued");
    assert!(p.dead_files().is_empty());
    // The operator fixes ca_file; the queued message goes out once.
    p.restart(&config(kind, up.port, &ca.ca_pem, &up.url()));
    p.delivered(&up, 1);
    p.wait_queue_empty();
    settle();
    assert_eq!(up.count(), 1);
}

macro_rules! fault_tests {
    ($($module:ident => $kind:expr),* $(,)?) => {$(
        mod $module {
            use super::*;
            #[test]
            fn rate_limited_429_then_ok() { rate_limited_then_ok($kind) }
            #[test]
            fn server_error_500_then_ok() { server_error_then_ok($kind) }
            #[test]
            fn credentials_401_alert_then_ok() { credentials_rejected_then_ok($kind) }
            #[test]
            fn rejection_dead_letters_with_provider_message() { rejection_is_dead_lettered($kind) }
            #[test]
            fn connection_reset_then_ok() { super::connection_reset_then_ok($kind) }
            #[test]
            fn wrong_ca_retried_then_delivered_once() { wrong_ca_is_retried_then_delivered_once($kind) }
        }
    )*};
}

fault_tests! {
    ses_faults => Kind::Ses,
    sendgrid_faults => Kind::Sendgrid,
    postmark_faults => Kind::Postmark,
    resend_faults => Kind::Resend,
    mailgun_faults => Kind::Mailgun,
}
