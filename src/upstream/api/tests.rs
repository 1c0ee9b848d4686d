use super::*;
use reqwest::header::HeaderValue;

struct Demo;
impl ProviderResponse for Demo {
    const PROVIDER: &'static str = "Demo";
    fn message_id(_: &HeaderMap, body: &[u8]) -> Option<String> {
        json_str(body, "id")
    }
    fn error_text(_: &HeaderMap, body: &[u8]) -> Option<String> {
        json_str(body, "message")
    }
    fn is_temporary(status: StatusCode, _: &HeaderMap, body: &[u8]) -> bool {
        status == StatusCode::CONFLICT && json_str(body, "name").as_deref() == Some("busy")
    }
}

fn run(status: u16, headers: &[(&str, &str)], body: &str) -> Result<Delivered, DeliveryError> {
    let mut h = HeaderMap::new();
    for (n, v) in headers {
        h.insert(
            reqwest::header::HeaderName::from_bytes(n.as_bytes()).unwrap(),
            HeaderValue::from_str(v).unwrap(),
        );
    }
    classify::<Demo>(
        "up",
        StatusCode::from_u16(status).unwrap(),
        &h,
        body.as_bytes(),
        SystemTime::UNIX_EPOCH,
    )
}

#[test]
fn success_carries_the_provider_id() {
    let d = run(202, &[], r#"{"id":"abc\n123"}"#).unwrap();
    assert_eq!(d.upstream_id.as_deref(), Some("abc 123"));
    assert_eq!(run(200, &[], "").unwrap().upstream_id, None);
}

#[test]
fn status_classes() {
    let e = run(429, &[("retry-after", "7")], r#"{"message":"slow down"}"#).unwrap_err();
    assert_eq!(
        e,
        DeliveryError::Transient {
            reason: "Demo answered HTTP 429: slow down".into(),
            retry_after: Some(Duration::from_secs(7)),
        }
    );
    assert!(!run(500, &[], "oops").unwrap_err().is_permanent());
    assert!(!run(503, &[], "").unwrap_err().is_permanent());
    assert!(!run(408, &[], "").unwrap_err().is_permanent());
    let e = run(401, &[], r#"{"message":"bad key"}"#).unwrap_err();
    assert!(!e.is_permanent());
    assert!(e.reason().contains("credentials rejected"), "{e}");
    assert!(!run(403, &[], "").unwrap_err().is_permanent());
    assert!(
        !run(301, &[("location", "https://x/")], "")
            .unwrap_err()
            .is_permanent()
    );
    let e = run(422, &[], r#"{"message":"invalid \"to\" address"}"#).unwrap_err();
    assert_eq!(
        e,
        DeliveryError::permanent("Demo answered HTTP 422: invalid \"to\" address")
    );
    // Not JSON: the body text itself, sanitized.
    let e = run(400, &[], "plain\r\nerror").unwrap_err();
    assert_eq!(
        e,
        DeliveryError::permanent("Demo answered HTTP 400: plain  error")
    );
    assert!(
        run(409, &[], r#"{"name":"other"}"#)
            .unwrap_err()
            .is_permanent()
    );
    assert!(
        !run(409, &[], r#"{"name":"busy"}"#)
            .unwrap_err()
            .is_permanent()
    );
}
