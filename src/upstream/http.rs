//! `kind = "http"`: POSTs each message to an operator-chosen URL.
//!
//! The generic upstream for anything that accepts mail over HTTP(S): an
//! in-house API, a webhook, a test server. The body is either the raw
//! message (`format = "raw"`, envelope in `X-Postern-*` headers) or a JSON
//! document with the message base64-encoded (`format = "json"`).
//!
//! The response decides what happens next: 2xx is delivered; 408, 429, 5xx,
//! timeouts and connection failures are worth retrying; any other status
//! means the receiver rejected this message and retrying will not help. A
//! timeout after the request went out is reported as ambiguous (the
//! receiver may have taken the message), see `transport_error`.

#[cfg(test)]
mod tests;

use std::path::PathBuf;
use std::str::FromStr;
use std::time::{Duration, SystemTime};

use crate::https::{build_client, error_chain};
use base64::Engine as _;
use reqwest::header::{CONTENT_TYPE, HeaderMap, HeaderValue, RETRY_AFTER};
use reqwest::{StatusCode, Url};
use serde::{Deserialize, Serialize};

use super::{Delivered, DeliveryError, OutboundMessage, Provider, UpstreamError, sanitize};
use crate::secret::Secret;

/// Response bodies are read only this far: enough for an id or an error
/// message, not enough for a hostile server to exhaust memory.
const MAX_RESPONSE_BODY: usize = 64 * 1024;
/// Longest response body quoted in a failure reason.
const MAX_REASON_BODY: usize = 500;
const MAX_UPSTREAM_ID: usize = 200;

/// Request body layout.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// `message/rfc822` body, envelope in headers.
    #[default]
    Raw,
    /// JSON `{"queue_id","mail_from","rcpt_to","raw"}` with base64 `raw`.
    Json,
}

impl FromStr for Format {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "raw" => Ok(Format::Raw),
            "json" => Ok(Format::Json),
            other => Err(format!(
                "unknown format {other:?} (expected \"raw\" or \"json\")"
            )),
        }
    }
}

/// Credentials sent with every request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HttpAuth {
    Bearer(Secret),
    Basic { username: String, password: Secret },
}

/// `[upstreams.NAME]` of `kind = "http"`, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    pub url: String,
    pub format: Format,
    pub auth: Option<HttpAuth>,
    /// Whole-request timeout (connect, send, response).
    pub timeout: Duration,
    /// Extra trusted CA certificates (PEM), added to the system roots.
    pub ca_file: Option<PathBuf>,
}

/// One HTTP endpoint with its own connection pool.
pub struct HttpUpstream {
    url: Url,
    format: Format,
    auth: Option<HttpAuth>,
    timeout: Duration,
    client: reqwest::Client,
}

impl HttpUpstream {
    pub fn new(name: &str, config: &Settings) -> Result<Self, UpstreamError> {
        let invalid = |reason: &str| UpstreamError::InvalidUrl {
            name: name.to_string(),
            url: redact_userinfo(&config.url),
            reason: reason.to_string(),
        };
        let url = Url::parse(&config.url).map_err(|e| invalid(&e.to_string()))?;
        let https = match url.scheme() {
            "https" => true,
            "http" => false,
            _ => return Err(invalid("scheme must be https or http")),
        };
        if url.host_str().is_none() {
            return Err(invalid("no host"));
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(invalid(
                "credentials in the url are not allowed; use bearer_token or basic_username/basic_password",
            ));
        }
        if !https {
            tracing::warn!(
                upstream = name,
                "upstream uses plain http: mail and credentials travel unencrypted"
            );
        }
        let client = build_client(name, config.ca_file.as_deref(), https, config.timeout)
            .map_err(UpstreamError::https(name))?;
        Ok(HttpUpstream {
            url,
            format: config.format,
            auth: config.auth.clone(),
            timeout: config.timeout,
            client,
        })
    }
}

impl Provider for HttpUpstream {
    async fn send(&self, msg: &OutboundMessage<'_>) -> Result<Delivered, DeliveryError> {
        let mut request = self.client.post(self.url.clone());
        request = match self.format {
            Format::Raw => {
                let mut r = request
                    .header(CONTENT_TYPE, "message/rfc822")
                    .header("X-Postern-Queue-Id", header_value("queue id", msg.id)?)
                    .header(
                        "X-Postern-Mail-From",
                        header_value("sender", msg.mail_from)?,
                    );
                // One header per recipient: a joined list could be split
                // differently by the receiver (a quoted local part may hold
                // a comma).
                for rcpt in msg.rcpt_to {
                    r = r.header("X-Postern-Rcpt-To", header_value("recipient", rcpt)?);
                }
                r.body(msg.data.to_vec())
            }
            Format::Json => request
                .header(CONTENT_TYPE, "application/json")
                .body(json_body(msg)?),
        };
        request = match &self.auth {
            Some(HttpAuth::Bearer(token)) => request.bearer_auth(token.expose()),
            Some(HttpAuth::Basic { username, password }) => {
                request.basic_auth(username, Some(password.expose()))
            }
            None => request,
        };
        let response = request
            .send()
            .await
            .map_err(|e| transport_error(e, self.timeout, ""))?;
        let (status, headers, body) = read_bounded(response).await;
        classify(status, &headers, &body, SystemTime::now())
    }
}

#[derive(Serialize)]
struct JsonBody<'a> {
    queue_id: &'a str,
    mail_from: &'a str,
    rcpt_to: &'a [String],
    raw: String,
}

fn json_body(msg: &OutboundMessage<'_>) -> Result<Vec<u8>, DeliveryError> {
    let body = JsonBody {
        queue_id: msg.id,
        mail_from: msg.mail_from,
        rcpt_to: msg.rcpt_to,
        raw: base64::engine::general_purpose::STANDARD.encode(msg.data),
    };
    serde_json::to_vec(&body)
        .map_err(|e| DeliveryError::permanent(format!("cannot encode JSON body: {e}")))
}

/// `https://user:pw@host/` → `https://***@host/`, so a rejected url can be
/// shown in an error without leaking the password it carried.
fn redact_userinfo(url: &str) -> String {
    let Some(start) = url.find("://").map(|i| i + 3) else {
        return url.to_string();
    };
    let authority_end = url[start..]
        .find(['/', '?', '#'])
        .map_or(url.len(), |i| start + i);
    match url[start..authority_end].rfind('@') {
        Some(at) => format!("{}***{}", &url[..start], &url[start + at..]),
        None => url.to_string(),
    }
}

/// UTF-8 addresses (SMTPUTF8) pass as raw bytes; control characters cannot
/// be sent in a header, and will not become sendable by retrying.
fn header_value(what: &str, value: &str) -> Result<HeaderValue, DeliveryError> {
    HeaderValue::from_bytes(value.as_bytes()).map_err(|_| {
        DeliveryError::permanent(format!(
            "{what} contains characters not allowed in an HTTP header"
        ))
    })
}

/// Maps a complete response to the delivery outcome.
pub(crate) fn classify(
    status: StatusCode,
    headers: &HeaderMap,
    body: &[u8],
    now: SystemTime,
) -> Result<Delivered, DeliveryError> {
    if status.is_success() {
        return Ok(Delivered {
            upstream_id: upstream_id(headers, body),
        });
    }
    let text = String::from_utf8_lossy(body);
    let text = sanitize(&text, MAX_REASON_BODY);
    let mut reason = format!("HTTP {}", status.as_u16());
    if status.is_redirection() {
        let location = headers
            .get(reqwest::header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        reason.push_str(&format!(
            " redirect to {:?} (redirects are not followed; fix the upstream url)",
            sanitize(location, 200)
        ));
    } else if !text.is_empty() {
        reason.push_str(": ");
        reason.push_str(&text);
    }
    let retryable = status == StatusCode::TOO_MANY_REQUESTS
        || status == StatusCode::REQUEST_TIMEOUT
        || status.is_server_error();
    if retryable {
        let retry_after = headers
            .get(RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| parse_retry_after(v, now));
        Err(DeliveryError::Transient {
            reason,
            retry_after,
        })
    } else {
        Err(DeliveryError::Permanent { reason })
    }
}

/// `X-Message-Id`, else `id` / `message_id` from a JSON object body.
fn upstream_id(headers: &HeaderMap, body: &[u8]) -> Option<String> {
    let clean = |s: &str| Some(sanitize(s, MAX_UPSTREAM_ID)).filter(|s| !s.is_empty());
    if let Some(id) = headers
        .get("x-message-id")
        .and_then(|v| v.to_str().ok())
        .and_then(clean)
    {
        return Some(id);
    }
    let json: serde_json::Value = serde_json::from_slice(body).ok()?;
    ["id", "message_id"]
        .iter()
        .find_map(|key| match json.get(key)? {
            serde_json::Value::String(s) => clean(s),
            serde_json::Value::Number(n) => Some(n.to_string()),
            _ => None,
        })
}

/// RFC 9110 Retry-After: delay-seconds or an HTTP-date.
pub(crate) fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) {
        // Absurdly long values saturate; the retry policy caps them anyway.
        return Some(Duration::from_secs(value.parse().unwrap_or(u64::MAX)));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

/// Status, headers and at most [`MAX_RESPONSE_BODY`] bytes: enough for an
/// id or an error, not enough for a hostile server to exhaust memory. A
/// body that breaks off is kept as far as it came: the status still decides.
pub(crate) async fn read_bounded(
    mut response: reqwest::Response,
) -> (StatusCode, HeaderMap, Vec<u8>) {
    let status = response.status();
    let headers = response.headers().clone();
    let mut body = Vec::new();
    while let Ok(Some(chunk)) = response.chunk().await {
        body.extend_from_slice(&chunk);
        if body.len() >= MAX_RESPONSE_BODY {
            body.truncate(MAX_RESPONSE_BODY);
            break;
        }
    }
    (status, headers, body)
}

/// A transport failure (connect, TLS, timeout, reset) as a transient error;
/// `timeout_note` follows the "no response within ..." text. A timeout once
/// the connection was up is `Ambiguous`: the request may have reached the
/// upstream, which may have taken the message and not answered in time.
/// Token requests wrap this error as transient (a token is safe to fetch
/// twice).
pub(crate) fn transport_error(
    err: reqwest::Error,
    timeout: Duration,
    timeout_note: &str,
) -> DeliveryError {
    // without_url: urls are config, may carry keys in query strings, and
    // upload urls carry a pre-authenticated token.
    let err = err.without_url();
    let reason = if err.is_timeout() {
        format!(
            "no response within {}{timeout_note}",
            humantime::format_duration(timeout)
        )
    } else if err.is_connect() {
        format!("cannot connect: {}", error_chain(&err))
    } else {
        format!("request failed: {}", error_chain(&err))
    };
    let reason = sanitize(&reason, MAX_REASON_BODY);
    if err.is_timeout() && !err.is_connect() {
        DeliveryError::ambiguous(reason)
    } else {
        DeliveryError::transient(reason)
    }
}
