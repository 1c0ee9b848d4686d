use super::*;
use std::time::{Duration, UNIX_EPOCH};

/// 2015-08-30T12:36:00Z, the time of AWS's SigV4 test suite.
fn suite_time() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_440_938_160)
}

fn suite_credentials(token: Option<&str>) -> Credentials {
    Credentials::new(
        "AKIDEXAMPLE",
        "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
        token.map(str::to_string),
        None,
        "test",
    )
}

fn header<'a>(h: &'a [(&'static str, String)], name: &str) -> &'a str {
    h.iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
        .unwrap_or_else(|| panic!("no {name} in {h:?}"))
}

/// AWS SigV4 test suite, case `post-vanilla`.
#[test]
fn sigv4_matches_aws_test_suite_post_vanilla() {
    let h = sign_v4(
        &suite_credentials(None),
        "us-east-1",
        "service",
        "POST",
        "https://example.amazonaws.com/",
        &[],
        b"",
        suite_time(),
    )
    .unwrap();
    assert_eq!(header(&h, "x-amz-date"), "20150830T123600Z");
    assert_eq!(
        header(&h, "authorization"),
        "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, \
             SignedHeaders=host;x-amz-date, \
             Signature=5da7c1a2acd57cee7505fc6676e4e544621c30862966e37dddb68e92efbe5d6b"
    );
}

/// AWS SigV4 test suite, case `get-vanilla-with-session-token`.
#[test]
fn sigv4_matches_aws_test_suite_session_token() {
    let token = "6e86291e8372ff2a2260956d9b8aae1d763fbf315fa00fa31553b73ebf194267";
    let h = sign_v4(
        &suite_credentials(Some(token)),
        "us-east-1",
        "service",
        "GET",
        "https://example.amazonaws.com/",
        &[],
        b"",
        suite_time(),
    )
    .unwrap();
    assert_eq!(header(&h, "x-amz-security-token"), token);
    assert_eq!(
        header(&h, "authorization"),
        "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, \
             SignedHeaders=host;x-amz-date;x-amz-security-token, \
             Signature=07ec1639c89043aa0e3e2de82b96708f198cceab042d4a97044c66dd9f74e7f8"
    );
}

/// AWS SigV4 test suite, case `post-x-www-form-urlencoded`: a signed
/// request with a body, so the payload hash is part of the signature.
#[test]
fn sigv4_matches_aws_test_suite_with_body() {
    let content_type = "application/x-www-form-urlencoded";
    let h = sign_v4(
        &suite_credentials(None),
        "us-east-1",
        "service",
        "POST",
        "https://example.amazonaws.com/",
        &[("content-type", content_type)],
        b"Param1=value1",
        suite_time(),
    )
    .unwrap();
    assert_eq!(
        header(&h, "authorization"),
        "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, \
             SignedHeaders=content-type;host;x-amz-date, \
             Signature=ff11897932ad3f4e8b18135d722051e5ac45fc38421b1da7b9d196a0fe09473a"
    );
    assert_eq!(
        sha256_hex(b""),
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    );
}

#[test]
fn ses_request_signs_content_type_and_port() {
    let h = sign_v4(
        &suite_credentials(None),
        "eu-west-1",
        SERVICE,
        "POST",
        "https://127.0.0.1:8443/v2/email/outbound-emails",
        &[("content-type", "application/json")],
        b"{}",
        suite_time(),
    )
    .unwrap();
    let auth = header(&h, "authorization");
    assert!(
        auth.starts_with(
            "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/eu-west-1/ses/aws4_request, \
                 SignedHeaders=content-type;host;x-amz-date, Signature="
        ),
        "{auth}"
    );
}

#[test]
fn body_carries_envelope_and_raw_message() {
    let up = SesUpstream::new(
        "ses",
        &Settings {
            endpoint: Endpoint {
                base_url: "https://email.eu-west-1.amazonaws.com".into(),
                timeout: Duration::from_secs(5),
                ca_file: None,
            },
            region: "eu-west-1".into(),
            access_key_id: Secret::for_test("AKID"),
            secret_access_key: Secret::for_test("sekrit"),
            session_token: None,
            configuration_set: Some("tx".into()),
        },
    )
    .unwrap();
    let rcpt = vec!["a@x.test".to_string(), "b@y.test".to_string()];
    let msg = OutboundMessage {
        id: "q1",
        mail_from: "app@example.com",
        rcpt_to: &rcpt,
        data: b"Subject: s\r\n\r\nb\r\n",
    };
    let v: serde_json::Value = serde_json::from_slice(&up.body(&msg).unwrap()).unwrap();
    assert_eq!(
        v,
        serde_json::json!({
            "FromEmailAddress": "app@example.com",
            "Destination": {"ToAddresses": ["a@x.test", "b@y.test"]},
            "Content": {"Raw": {"Data": "U3ViamVjdDogcw0KDQpiDQo="}},
            "ConfigurationSetName": "tx",
        })
    );
    let bounce = OutboundMessage {
        mail_from: "",
        ..msg
    };
    let v: serde_json::Value = serde_json::from_slice(&up.body(&bounce).unwrap()).unwrap();
    assert!(v.get("FromEmailAddress").is_none(), "{v}");
}

#[test]
fn ses_errors() {
    let mut h = HeaderMap::new();
    h.insert(
        "x-amzn-errortype",
        "MessageRejected:http://internal.amazon.com/coral/com.amazonaws.sesv2/"
            .parse()
            .unwrap(),
    );
    let body = br#"{"message":"Email address is not verified."}"#;
    assert_eq!(
        Ses::error_text(&h, body).as_deref(),
        Some("MessageRejected: Email address is not verified.")
    );
    assert!(!Ses::is_temporary(StatusCode::BAD_REQUEST, &h, body));
    let quota = br#"{"__type":"LimitExceededException","message":"Daily quota"}"#;
    assert!(Ses::is_temporary(
        StatusCode::BAD_REQUEST,
        &HeaderMap::new(),
        quota
    ));
    assert_eq!(
        Ses::message_id(&HeaderMap::new(), br#"{"MessageId":"0100-abc"}"#).as_deref(),
        Some("0100-abc")
    );
}
