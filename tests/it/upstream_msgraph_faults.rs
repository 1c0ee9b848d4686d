//! `kind = "msgraph"` under faults, against the real binary: 429 with
//! Retry-After, 500, connection reset, a request that is never answered,
//! the token endpoint down, refused credentials, a permanent API error and
//! an untrusted certificate: retried or dead-lettered, never lost, never
//! delivered twice when Graph answered.

use crate::common::*;
use crate::common_oauth::*;
use crate::msgraph_setup::*;
use std::time::Duration;

fn fault_then_delivered(fault: Fault, what: &str) {
    let ca = TestCa::new();
    let mock = ProviderMock::start(&ca);
    mock.push_api_fault(fault);
    let p = start(&ca, &config(&ca, &mock, &secret_auth(), ""));
    let msg = dated_message("app@example.com", "bob@dest.test", what);
    submit(&p, &ca, &["bob@dest.test"], &msg);
    let sent = mock.wait_sent(1);
    p.wait_queue_empty();
    assert_eq!(sent.len(), 1, "delivered exactly once");
    assert_eq!(
        api_requests(&mock, "/sendMail").len(),
        2,
        "failed once, then delivered"
    );
    assert_forwarded(mime_of(&sent[0]).1, &msg);
    assert!(p.dead_files().is_empty());
    let log = p.log();
    assert!(log.contains("deferred"), "{log}");
    assert!(!log.contains("credentials rejected"), "{log}");
}

#[test]
fn fault_429_with_retry_after_then_delivered_once() {
    fault_then_delivered(Fault::retry_after(429, 1), "429");
}

#[test]
fn fault_500_then_delivered_once() {
    fault_then_delivered(
        Fault::status(
            500,
            r#"{"error":{"code":"ErrorInternalServerError","message":"boom"}}"#,
        ),
        "500",
    );
}

#[test]
fn fault_connection_reset_then_delivered_once() {
    fault_then_delivered(Fault::Reset, "reset");
}

/// sendMail taken but never answered: with the default `on_ambiguous =
/// "retry"` it is sent again (logged as a possible duplicate).
#[test]
fn fault_timeout_is_retried_as_a_possible_duplicate() {
    let ca = TestCa::new();
    let mock = ProviderMock::start(&ca);
    mock.push_api_fault(Fault::Hang);
    let mut cfg = config(&ca, &mock, &secret_auth(), "");
    cfg.extra = cfg.extra.replace("timeout = \"10s\"", "timeout = \"2s\"");
    let p = start(&ca, &cfg);
    let msg = dated_message("app@example.com", "bob@dest.test", "timeout");
    submit(&p, &ca, &["bob@dest.test"], &msg);
    let sent = mock.wait_sent(1);
    p.wait_queue_empty();
    assert_eq!(
        api_requests(&mock, "/sendMail").len(),
        2,
        "hung once, then sent"
    );
    assert_forwarded(mime_of(&sent[0]).1, &msg);
    assert!(p.dead_files().is_empty());
    assert!(p.log().contains("possible duplicate"), "{}", p.log());
}

#[test]
fn token_endpoint_down_is_retried_then_delivered() {
    let ca = TestCa::new();
    let mock = ProviderMock::start(&ca);
    mock.push_token_fault(Fault::status(503, ""));
    mock.push_token_fault(Fault::Reset);
    mock.push_token_fault(Fault::retry_after(429, 1));
    // Three real failures stay under the breaker's default of five:
    // attempts during the token back-off make no request and do not count.
    let p = start(&ca, &config(&ca, &mock, &secret_auth(), ""));
    let msg = dated_message("app@example.com", "bob@dest.test", "token down");
    submit(&p, &ca, &["bob@dest.test"], &msg);
    let sent = mock.wait_sent(1);
    p.wait_queue_empty();
    assert_eq!(
        mock.token_requests().len(),
        4,
        "three failures, then a token"
    );
    assert_eq!(api_requests(&mock, "/sendMail").len(), 1);
    assert_forwarded(mime_of(&sent[0]).1, &msg);
    let log = p.log();
    assert!(
        log.contains("token request to 127.0.0.1: HTTP 503"),
        "{log}"
    );
    assert!(!log.contains("credentials rejected"), "{log}");
}

#[test]
fn refused_credentials_alert_once_and_recover() {
    let ca = TestCa::new();
    let mock = ProviderMock::start(&ca);
    let refusal = r#"{"error":"invalid_client","error_description":"AADSTS7000215: Invalid client secret provided."}"#;
    for _ in 0..3 {
        mock.push_token_fault(Fault::status(401, refusal));
    }
    let p = start(&ca, &config(&ca, &mock, &secret_auth(), ""));
    submit(
        &p,
        &ca,
        &["bob@dest.test"],
        &dated_message("app@example.com", "bob@dest.test", "creds"),
    );
    mock.wait_sent(1);
    p.wait_queue_empty();
    let log = p.log();
    assert_eq!(log.matches("credentials rejected").count(), 1, "{log}");
    assert!(log.contains("AADSTS7000215"), "{log}");
    assert!(p.dead_files().is_empty());
}

#[test]
fn permanent_api_error_dead_letters_with_the_provider_message() {
    let ca = TestCa::new();
    let mock = ProviderMock::start(&ca);
    mock.push_api_fault(Fault::status(
        400,
        r#"{"error":{"code":"ErrorInvalidRecipients","message":"At least one recipient is not valid."}}"#,
    ));
    let p = start(&ca, &config(&ca, &mock, &secret_auth(), ""));
    let id = submit(
        &p,
        &ca,
        &["bob@dest.test"],
        &dated_message("app@example.com", "bob@dest.test", "perm"),
    );
    let reason_path = p.dead_dir().join(format!("{id}.reason"));
    assert!(
        wait_until(Duration::from_secs(60), || reason_path.exists()),
        "not dead-lettered; log:\n{}",
        p.log()
    );
    let reason = std::fs::read_to_string(&reason_path).unwrap();
    assert!(
        reason.contains("ErrorInvalidRecipients: At least one recipient is not valid."),
        "{reason}"
    );
    assert_eq!(api_requests(&mock, "/sendMail").len(), 1, "no retry");
    assert!(mock.sent().is_empty());
}

#[test]
fn wrong_ca_is_retried_and_delivered_once_after_the_fix() {
    let ca = TestCa::new();
    let other = TestCa::new();
    let mock = ProviderMock::start(&ca);
    let mut cfg = config(&ca, &mock, &secret_auth(), "");
    cfg.extra = cfg.extra.replace(
        &ca.ca_pem.display().to_string(),
        &other.ca_pem.display().to_string(),
    );
    let mut p = start(&ca, &cfg);
    let msg = dated_message("app@example.com", "bob@dest.test", "wrong ca");
    submit(&p, &ca, &["bob@dest.test"], &msg);
    assert!(
        wait_until(Duration::from_secs(60), || p
            .log()
            .matches("deferred")
            .count()
            >= 2),
        "no retries; log:\n{}",
        p.log()
    );
    assert!(mock.requests().is_empty(), "nothing got past TLS");
    assert_eq!(
        p.queue_files().iter().filter(|f| !f.contains('.')).count(),
        1
    );
    assert!(p.dead_files().is_empty());
    let log = p.log();
    assert!(log.to_lowercase().contains("certificate"), "{log}");

    p.restart(&config(&ca, &mock, &secret_auth(), ""));
    let sent = mock.wait_sent(1);
    p.wait_queue_empty();
    assert_eq!(sent.len(), 1);
    assert_forwarded(mime_of(&sent[0]).1, &msg);
    assert_eq!(api_requests(&mock, "/sendMail").len(), 1);
}
