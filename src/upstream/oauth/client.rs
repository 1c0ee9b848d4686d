//! HTTP plumbing shared by the OAuth providers: the client (TLS with the
//! configured CA, no redirects), bounded response reading, and the
//! provider's own error text for failure reasons.

use std::path::Path;
use std::time::Duration;

use reqwest::header::HeaderMap;
use reqwest::{StatusCode, Url};
use serde_json::Value;

use super::super::http::{read_bounded, transport_error};
use super::super::{DeliveryError, UpstreamError, sanitize};
use super::MAX_REASON;
use crate::https::build_client;

/// An HTTPS client for one upstream: system roots plus `ca_file`, no
/// redirects (a redirect would resend credentials elsewhere), a timeout per
/// request.
pub fn api_client(
    name: &str,
    ca_file: Option<&Path>,
    timeout: Duration,
) -> Result<reqwest::Client, UpstreamError> {
    build_client(name, ca_file, true, timeout).map_err(UpstreamError::https(name))
}

/// Parses an `https://` URL (config, or one a provider handed out). Plain
/// http is refused: bearer tokens travel on every request.
pub fn https_url(name: &str, what: &str, url: &str) -> Result<Url, UpstreamError> {
    let invalid = |reason: &str| UpstreamError::InvalidUrl {
        name: name.to_string(),
        url: url.to_string(),
        reason: format!("{what}: {reason}"),
    };
    let parsed = Url::parse(url).map_err(|e| invalid(&e.to_string()))?;
    if parsed.scheme() != "https" {
        return Err(invalid("must be https"));
    }
    if parsed.host_str().is_none() {
        return Err(invalid("no host"));
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err(invalid("credentials in the url are not allowed"));
    }
    Ok(parsed)
}

/// A response read into memory (bounded).
#[derive(Debug)]
pub struct ApiResponse {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

impl ApiResponse {
    /// The JSON body, if it is JSON.
    pub fn json(&self) -> Option<Value> {
        serde_json::from_slice(&self.body).ok()
    }
}

/// Reads status, headers and a bounded body (see [`read_bounded`]).
pub async fn read_response(response: reqwest::Response) -> ApiResponse {
    let (status, headers, body) = read_bounded(response).await;
    ApiResponse {
        status,
        headers,
        body,
    }
}

/// A transport failure (connect, TLS, timeout, reset) as a transient error.
pub fn request_error(err: reqwest::Error, timeout: Duration) -> DeliveryError {
    transport_error(err, timeout, "")
}

/// The provider's own words: `{"error":{"code","message"}}` (Graph, Google
/// APIs) or `{"error","error_description"}` (token endpoints); else the
/// body text.
pub fn provider_message(body: &[u8]) -> Option<String> {
    let text = match serde_json::from_slice::<Value>(body) {
        Ok(v) => match v.get("error") {
            Some(Value::Object(e)) => {
                let code = e.get("code").map(|c| match c {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                });
                let msg = e.get("message").and_then(Value::as_str);
                match (code, msg) {
                    (Some(c), Some(m)) => format!("{c}: {m}"),
                    (None, Some(m)) => m.to_string(),
                    (Some(c), None) => c,
                    (None, None) => String::from_utf8_lossy(body).into_owned(),
                }
            }
            Some(Value::String(code)) => match v.get("error_description").and_then(Value::as_str) {
                Some(d) => format!("{code}: {d}"),
                None => code.clone(),
            },
            _ => String::from_utf8_lossy(body).into_owned(),
        },
        Err(_) => String::from_utf8_lossy(body).into_owned(),
    };
    Some(sanitize(&text, MAX_REASON)).filter(|t| !t.is_empty())
}

/// Google answers some rate limits with 403; those are not a credentials
/// problem and must not raise the alarm.
pub(super) fn is_rate_limit(body: &[u8]) -> bool {
    let Ok(v) = serde_json::from_slice::<Value>(body) else {
        return false;
    };
    let reasons = v
        .pointer("/error/errors")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|e| e.get("reason").and_then(Value::as_str));
    let status = v.pointer("/error/status").and_then(Value::as_str);
    status == Some("RESOURCE_EXHAUSTED")
        || reasons.into_iter().any(|r| {
            r.contains("RateLimitExceeded")
                || r.contains("rateLimitExceeded")
                || r == "quotaExceeded"
        })
}
