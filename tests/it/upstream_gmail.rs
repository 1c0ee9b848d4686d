//! `kind = "gmail"` end to end: the real postern binary with a service
//! account key made in the test delivers to a local HTTPS server playing
//! Google's token endpoint and the Gmail upload API. Checked: the JWT
//! assertion (verified with the key's public half; iss, sub, scope, aud),
//! the exact upload request and body, 401/403 handling and faults.

use std::time::Duration;

use crate::common::*;
use crate::common_oauth::*;
use crate::gmail_setup::*;
use serde_json::json;

fn submit(p: &Postern, ca: &TestCa, rcpts: &[&str], msg: &[u8]) -> String {
    let mut c = SmtpClient::connect(p.port(0));
    c.greet_starttls(ca);
    c.auth_plain("app", PASSWORD).expect(235, "2.7.0", "AUTH");
    let r = c.send_message("app@example.com", rcpts, msg);
    r.expect_code(250, "end of DATA");
    c.quit();
    r.queue_id().expect("queue id")
}

fn gmail_of(s: &Sent) -> &[u8] {
    match s {
        Sent::Gmail { user, mime } => {
            assert_eq!(user, USER);
            mime
        }
        other => panic!("expected a Gmail upload, got {other:?}"),
    }
}

fn uploads(mock: &ProviderMock) -> Vec<Recorded> {
    mock.requests()
        .into_iter()
        .filter(|r| r.path.starts_with("/upload/gmail/"))
        .collect()
}

#[test]
fn assertion_and_upload_are_exact() {
    let ca = TestCa::new();
    let mock = ProviderMock::start(&ca);
    let p = start(&ca, &mock);
    let msg = b"Date: Mon, 2 Mar 2026 10:00:00 +0000\r\nFrom: App <app@example.com>\r\nTo: Bob <bob@dest.test>, carol@dest.test\r\nSubject: gmail exact\r\nMessage-ID: <g1@example.com>\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"b\"\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nHello Gmail.\r\n--b\r\nContent-Type: application/pdf; name=\"x.pdf\"\r\nContent-Disposition: attachment; filename=\"x.pdf\"\r\nContent-Transfer-Encoding: base64\r\n\r\nJVBERi0xLjQK\r\n--b--\r\n";
    let id = submit(&p, &ca, &["bob@dest.test", "carol@dest.test"], msg);
    let sent = mock.wait_sent(1);
    p.wait_queue_empty();
    assert!(mock.violations().is_empty(), "{:?}", mock.violations());

    let ups = uploads(&mock);
    assert_eq!(ups.len(), 1);
    let r = &ups[0];
    assert_eq!(r.method, "POST");
    assert_eq!(
        r.path,
        format!("/upload/gmail/v1/users/{USER}/messages/send?uploadType=media")
    );
    assert_eq!(r.one_header("content-type"), "message/rfc822");
    assert_eq!(r.one_header("authorization"), "Bearer tok-1");
    assert_forwarded(gmail_of(&sent[0]), msg);
    assert_forwarded(&r.body, msg);

    let tokens = mock.token_requests();
    assert_eq!(tokens.len(), 1);
    assert_eq!(tokens[0].path, "/oauth2/token");
    let fields = form(&tokens[0].body);
    assert_eq!(fields.len(), 2, "{fields:?}");
    assert_eq!(
        fields[0],
        (
            "grant_type".to_string(),
            "urn:ietf:params:oauth:grant-type:jwt-bearer".to_string()
        )
    );
    assert_eq!(fields[1].0, "assertion");
    let (header, claims, signed, sig) = jwt_parts(&fields[1].1);
    assert_eq!(
        header,
        json!({"alg": "RS256", "typ": "JWT", "kid": "kid-123"})
    );
    ring::signature::UnparsedPublicKey::new(
        &ring::signature::RSA_PKCS1_2048_8192_SHA256,
        &rsa_key().1,
    )
    .verify(signed.as_bytes(), &sig)
    .expect("assertion verifies with the service account's public key");
    assert_eq!(claims["iss"], "relay@postern-test.iam.gserviceaccount.com");
    assert_eq!(claims["sub"], USER);
    assert_eq!(
        claims["scope"],
        "https://www.googleapis.com/auth/gmail.send"
    );
    assert_eq!(claims["aud"], "https://oauth2.googleapis.com/token");
    let iat = claims["iat"].as_i64().expect("iat");
    let exp = claims["exp"].as_i64().expect("exp");
    assert!(exp > iat && exp - iat <= 3600, "iat {iat} exp {exp}");

    p.wait_log_line(&[&id, "delivered", "gm-"]);
    let log = p.log();
    assert!(log.contains(&id));
    assert!(
        !log.contains("PRIVATE KEY") && !log.contains("tok-1"),
        "{log}"
    );
}

#[test]
fn envelope_only_recipient_becomes_bcc() {
    let ca = TestCa::new();
    let mock = ProviderMock::start(&ca);
    let p = start(&ca, &mock);
    let msg = dated_message("app@example.com", "bob@dest.test", "gmail bcc");
    submit(&p, &ca, &["bob@dest.test", "hidden@other.test"], &msg);
    let sent = mock.wait_sent(1);
    let mime = gmail_of(&sent[0]);
    let rest = mime
        .strip_prefix(b"Bcc: hidden@other.test\r\n".as_slice())
        .unwrap_or_else(|| panic!("no Bcc first:\n{}", show(&mime[..mime.len().min(200)])));
    assert_forwarded(rest, &msg);
}

#[test]
fn api_401_refreshes_once_and_403_alerts() {
    let ca = TestCa::new();
    let mock = ProviderMock::start(&ca);
    let p = start(&ca, &mock);
    submit(
        &p,
        &ca,
        &["bob@dest.test"],
        &dated_message("app@example.com", "bob@dest.test", "g1"),
    );
    mock.wait_sent(1);
    mock.revoke_all();
    submit(
        &p,
        &ca,
        &["bob@dest.test"],
        &dated_message("app@example.com", "bob@dest.test", "g2"),
    );
    mock.wait_sent(2);
    assert_eq!(mock.token_requests().len(), 2);
    assert_eq!(uploads(&mock).len(), 3);

    // 403 (delegation not granted) is retried and raises the alarm once.
    for _ in 0..2 {
        mock.push_api_fault(Fault::status(
            403,
            r#"{"error":{"code":403,"message":"Delegation denied","errors":[{"reason":"forbidden"}]}}"#,
        ));
    }
    submit(
        &p,
        &ca,
        &["bob@dest.test"],
        &dated_message("app@example.com", "bob@dest.test", "g3"),
    );
    mock.wait_sent(3);
    p.wait_queue_empty();
    let log = p.log();
    assert_eq!(log.matches("credentials rejected").count(), 1, "{log}");
    assert!(log.contains("Delegation denied"), "{log}");
    assert_eq!(mock.sent().len(), 3, "each message delivered once");
}

#[test]
fn rate_limit_and_server_errors_are_retried_then_delivered_once() {
    let ca = TestCa::new();
    let mock = ProviderMock::start(&ca);
    mock.push_api_fault(Fault::retry_after(429, 1));
    mock.push_api_fault(Fault::status(
        403,
        r#"{"error":{"code":403,"message":"User-rate limit exceeded","errors":[{"reason":"userRateLimitExceeded"}]}}"#,
    ));
    mock.push_api_fault(Fault::status(500, "backend error"));
    mock.push_api_fault(Fault::Reset);
    mock.push_token_fault(Fault::status(503, ""));
    let p = start(&ca, &mock);
    let msg = dated_message("app@example.com", "bob@dest.test", "gmail faults");
    submit(&p, &ca, &["bob@dest.test"], &msg);
    let sent = mock.wait_sent(1);
    p.wait_queue_empty();
    assert_eq!(sent.len(), 1);
    assert_forwarded(gmail_of(&sent[0]), &msg);
    assert_eq!(uploads(&mock).len(), 5, "four failures, then delivered");
    let log = p.log();
    assert!(
        !log.contains("credentials rejected"),
        "rate limits are not a credentials problem:\n{log}"
    );
    assert!(p.dead_files().is_empty());
}

#[test]
fn permanent_error_keeps_googles_message() {
    let ca = TestCa::new();
    let mock = ProviderMock::start(&ca);
    mock.push_api_fault(Fault::status(
        400,
        r#"{"error":{"code":400,"message":"Invalid To header","status":"INVALID_ARGUMENT"}}"#,
    ));
    let p = start(&ca, &mock);
    let id = submit(
        &p,
        &ca,
        &["bob@dest.test"],
        &dated_message("app@example.com", "bob@dest.test", "bad"),
    );
    let reason_path = p.dead_dir().join(format!("{id}.reason"));
    assert!(
        wait_until(Duration::from_secs(60), || reason_path.exists()),
        "not dead-lettered; log:\n{}",
        p.log()
    );
    let reason = std::fs::read_to_string(&reason_path).unwrap();
    assert!(reason.contains("400: Invalid To header"), "{reason}");
    assert!(mock.sent().is_empty());
}
