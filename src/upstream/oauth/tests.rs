//! Unit tests for token parsing, form encoding, grants and the classifier.

use super::*;
use crate::https::tls_config;
use reqwest::header::HeaderMap;

#[test]
fn token_answer_parsing() {
    let (t, life) =
        parse_token(br#"{"token_type":"Bearer","expires_in":3599,"access_token":"abc.def"}"#)
            .unwrap();
    assert_eq!((t.as_str(), life), ("abc.def", Duration::from_secs(3599)));
    let (_, life) = parse_token(br#"{"access_token":"x","expires_in":"120"}"#).unwrap();
    assert_eq!(life, Duration::from_secs(120));
    let (_, life) = parse_token(br#"{"access_token":"x"}"#).unwrap();
    assert_eq!(life, DEFAULT_LIFETIME);
    assert!(parse_token(b"<html>").is_err());
    assert!(parse_token(br#"{"expires_in":1}"#).is_err());
    assert!(parse_token(br#"{"access_token":"a\r\nX-Evil: 1"}"#).is_err());
    assert!(parse_token(br#"{"access_token":"a","token_type":"mac"}"#).is_err());
}

#[test]
fn form_encoding_escapes_reserved_characters() {
    let body = form_encode(&[
        ("scope", "https://graph.microsoft.com/.default".into()),
        ("client_secret", "a+b&c=d e~".into()),
    ]);
    assert_eq!(
        body,
        "scope=https%3A%2F%2Fgraph.microsoft.com%2F.default&client_secret=a%2Bb%26c%3Dd+e%7E"
    );
}

#[test]
fn client_secret_grant_fields_and_redacted_debug() {
    let g = TokenGrant::ClientSecret {
        client_id: "cid".into(),
        secret: crate::secret::Secret::for_test("s3cret"),
        scope: "sc".into(),
    };
    assert_eq!(
        g.form(0).unwrap(),
        vec![
            ("client_id", "cid".to_string()),
            ("scope", "sc".to_string()),
            ("client_secret", "s3cret".to_string()),
            ("grant_type", "client_credentials".to_string()),
        ]
    );
    assert!(!format!("{g:?}").contains("s3cret"));
}

#[test]
fn provider_messages() {
    assert_eq!(
        provider_message(
            br#"{"error":{"code":"ErrorInvalidRecipients","message":"At least one recipient is not valid."}}"#
        )
        .as_deref(),
        Some("ErrorInvalidRecipients: At least one recipient is not valid.")
    );
    assert_eq!(
        provider_message(br#"{"error":{"code":400,"message":"Recipient address required"}}"#)
            .as_deref(),
        Some("400: Recipient address required")
    );
    assert_eq!(
        provider_message(br#"{"error":"invalid_client","error_description":"AADSTS7000215"}"#)
            .as_deref(),
        Some("invalid_client: AADSTS7000215")
    );
    assert_eq!(
        provider_message(b"plain\r\ntext").as_deref(),
        Some("plain  text")
    );
    assert_eq!(provider_message(b""), None);
}

#[test]
fn google_rate_limit_403_is_recognised() {
    assert!(is_rate_limit(
        br#"{"error":{"code":403,"errors":[{"reason":"userRateLimitExceeded"}]}}"#
    ));
    assert!(!is_rate_limit(
        br#"{"error":{"code":403,"errors":[{"reason":"insufficientPermissions"}]}}"#
    ));
    assert!(!is_rate_limit(b"nope"));
}

fn cache() -> TokenCache {
    let tls = tls_config("t", None, false).unwrap();
    let client = reqwest::Client::builder()
        .tls_backend_preconfigured(tls)
        .build()
        .unwrap();
    TokenCache::new(
        "t",
        client,
        Url::parse("https://127.0.0.1:9/token").unwrap(),
        TokenGrant::ClientSecret {
            client_id: "c".into(),
            secret: crate::secret::Secret::for_test("s"),
            scope: "x".into(),
        },
        Duration::from_secs(1),
    )
}

fn response(status: u16, headers: &[(&'static str, &str)], body: &str) -> ApiResponse {
    let mut map = HeaderMap::new();
    for (k, v) in headers {
        map.insert(*k, v.parse().unwrap());
    }
    ApiResponse {
        status: StatusCode::from_u16(status).unwrap(),
        headers: map,
        body: body.as_bytes().to_vec(),
    }
}

#[test]
fn classifier_maps_statuses() {
    let c = cache();
    assert!(c.check("x", &response(202, &[], "")).is_ok());
    match c.check("send", &response(429, &[("retry-after", "7")], "")) {
        Err(DeliveryError::Transient { retry_after, .. }) => {
            assert_eq!(retry_after, Some(Duration::from_secs(7)))
        }
        other => panic!("{other:?}"),
    }
    assert!(
        !c.check("s", &response(503, &[], ""))
            .unwrap_err()
            .is_permanent()
    );
    let e = c
        .check(
            "s",
            &response(
                401,
                &[],
                r#"{"error":{"code":"InvalidAuthenticationToken","message":"expired"}}"#,
            ),
        )
        .unwrap_err();
    assert!(!e.is_permanent());
    assert!(c.alerted.load(Ordering::Relaxed));
    assert!(
        !c.check("s", &response(403, &[], ""))
            .unwrap_err()
            .is_permanent()
    );
    let e = c
        .check(
            "sendMail",
            &response(
                400,
                &[],
                r#"{"error":{"code":"ErrorMimeContentInvalid","message":"bad mime"}}"#,
            ),
        )
        .unwrap_err();
    assert_eq!(
        e,
        DeliveryError::permanent("sendMail: HTTP 400: ErrorMimeContentInvalid: bad mime")
    );
    // A success re-arms the alarm.
    assert!(c.check("x", &response(200, &[], "")).is_ok());
    assert!(!c.alerted.load(Ordering::Relaxed));
}

#[tokio::test]
async fn rejected_token_is_not_reused_and_failures_are_shared() {
    let c = cache();
    {
        let mut s = c.state.lock().await;
        s.generation = 1;
        s.current = Some(Cached {
            token: AccessToken {
                value: "old".into(),
                generation: 1,
            },
            refresh_at: Instant::now() + Duration::from_secs(60),
            expires_at: Instant::now() + Duration::from_secs(120),
            rejected: false,
        });
    }
    let t = c.token().await.unwrap();
    assert_eq!(&*t.value, "old");
    c.reject(&t).await;
    // The endpoint (port 9, discard) cannot answer: the rejected token must
    // not come back, and the failure is remembered for the next caller.
    let e1 = c.token().await.unwrap_err();
    assert!(!e1.is_permanent());
    assert!(
        e1.reason().starts_with("token request to 127.0.0.1"),
        "{e1}"
    );
    // The next caller within the hold gets the same reason without a new
    // request, marked so the circuit breaker does not count it again, and
    // told to come back when the hold ends.
    let e2 = c.token().await.unwrap_err();
    match &e2 {
        DeliveryError::NotAttempted {
            reason,
            retry_after,
        } => {
            assert_eq!(reason, e1.reason());
            assert!(*retry_after <= FAILURE_HOLD && !retry_after.is_zero());
        }
        other => panic!("expected NotAttempted, got {other:?}"),
    }
}

#[tokio::test]
async fn status_shows_no_token_then_the_failed_refresh() {
    let c = cache();
    let s = c.status();
    assert_eq!(s.state, "none");
    assert_eq!((s.expires_in_s, s.last_error.as_deref()), (None, None));
    // Nothing listens on the discard port: the fetch fails.
    assert!(c.token().await.is_err());
    let s = c.status();
    assert_eq!(s.state, "none");
    assert!(s.last_error.is_some(), "{s:?}");
    assert!(s.last_error_age_s.is_some_and(|a| a < 60), "{s:?}");
    let json = serde_json::to_value(&s).unwrap();
    assert!(json.get("expires_in_s").is_none(), "{json}");
}
