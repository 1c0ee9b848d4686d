//! The HTTP side shared by the email-API providers (ses, sendgrid, mailgun,
//! postmark, resend): one pooled HTTPS client per upstream, one way to read
//! a response, one error classifier.
//!
//! Providers differ in how they build a request and where they put the
//! message id and the error text; they agree on what a status means. That
//! agreement lives here so every provider retries, alerts and dead-letters
//! the same way:
//!
//! - 2xx: delivered; the provider's message id goes to the delivery log.
//! - 408, 429, 5xx, network errors, timeouts, and the few 4xx a provider
//!   documents as temporary (quota, paused account): transient, honouring
//!   `Retry-After`. A timeout after the request was sent is ambiguous (the
//!   provider may have accepted the message); the upstream's `on_ambiguous`
//!   decides whether it is retried.
//! - 401/403: transient (mail must not be dead-lettered because a key was
//!   rotated), with an ERROR log saying the credentials were rejected.
//! - 3xx: transient with an ERROR log: a redirect means `base_url` is
//!   wrong, which no message can fix and no message should pay for.
//! - any other 4xx: permanent, with the provider's own error text as the
//!   dead-letter reason.

use std::time::{Duration, SystemTime};

use reqwest::header::{HeaderMap, RETRY_AFTER};
use reqwest::{RequestBuilder, StatusCode, Url};

use super::http::{parse_retry_after, read_bounded, transport_error};
use super::{Delivered, DeliveryError, UpstreamError, sanitize};
pub use crate::https::Endpoint;
use crate::https::build_client;

/// Longest provider text quoted in a failure reason.
const MAX_REASON: usize = 500;
const MAX_MESSAGE_ID: usize = 200;

/// How one provider reports results; the status classes are shared.
pub(crate) trait ProviderResponse {
    /// Product name for logs and reasons ("SendGrid").
    const PROVIDER: &'static str;
    /// The provider's id for an accepted message.
    fn message_id(headers: &HeaderMap, body: &[u8]) -> Option<String>;
    /// The provider's own explanation of a refusal.
    fn error_text(headers: &HeaderMap, body: &[u8]) -> Option<String>;
    /// A 4xx the provider documents as temporary.
    fn is_temporary(_status: StatusCode, _headers: &HeaderMap, _body: &[u8]) -> bool {
        false
    }
}

/// A pooled client bound to one upstream's API endpoint (root + path).
pub(crate) struct ApiClient {
    name: String,
    url: Url,
    timeout: Duration,
    client: reqwest::Client,
}

impl std::fmt::Debug for ApiClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiClient")
            .field("name", &self.name)
            .field("url", &self.url.as_str())
            .finish_non_exhaustive()
    }
}

impl ApiClient {
    /// The client for `endpoint`'s root + `path` (starting with `/`,
    /// already percent-encoded).
    pub(crate) fn new(
        name: &str,
        endpoint: &Endpoint,
        path: &str,
    ) -> Result<ApiClient, UpstreamError> {
        let invalid = |reason: &str| UpstreamError::InvalidUrl {
            name: name.to_string(),
            url: endpoint.base_url.clone(),
            reason: reason.to_string(),
        };
        let url = Url::parse(&endpoint.base_url).map_err(|e| invalid(&e.to_string()))?;
        if url.host_str().is_none() {
            return Err(invalid("no host"));
        }
        let https = match url.scheme() {
            "https" => true,
            "http" => false,
            _ => return Err(invalid("scheme must be https")),
        };
        if !https {
            tracing::warn!(
                upstream = name,
                "upstream API uses plain http (allowed for loopback emulators only)"
            );
        }
        let client = build_client(name, endpoint.ca_file.as_deref(), https, endpoint.timeout)
            .map_err(UpstreamError::https(name))?;
        let text = format!("{}{path}", endpoint.base_url.trim_end_matches('/'));
        let url = Url::parse(&text).map_err(|e| UpstreamError::InvalidUrl {
            name: name.to_string(),
            url: text,
            reason: e.to_string(),
        })?;
        Ok(ApiClient {
            name: name.to_string(),
            url,
            timeout: endpoint.timeout,
            client,
        })
    }

    pub(crate) fn url(&self) -> &Url {
        &self.url
    }

    pub(crate) fn post(&self) -> RequestBuilder {
        self.client.post(self.url.clone())
    }

    /// Sends `request` and maps the response or failure to an outcome.
    pub(crate) async fn send<P: ProviderResponse>(
        &self,
        request: RequestBuilder,
    ) -> Result<Delivered, DeliveryError> {
        let response = request.send().await.map_err(|e| {
            transport_error(
                e,
                self.timeout,
                " (the message may or may not have been sent)",
            )
        })?;
        let (status, headers, body) = read_bounded(response).await;
        classify::<P>(&self.name, status, &headers, &body, SystemTime::now())
    }
}

/// Maps a complete response to the delivery outcome (see the module doc).
pub(crate) fn classify<P: ProviderResponse>(
    name: &str,
    status: StatusCode,
    headers: &HeaderMap,
    body: &[u8],
    now: SystemTime,
) -> Result<Delivered, DeliveryError> {
    if status.is_success() {
        let upstream_id = P::message_id(headers, body)
            .map(|id| sanitize(&id, MAX_MESSAGE_ID))
            .filter(|id| !id.is_empty());
        return Ok(Delivered { upstream_id });
    }
    let detail = P::error_text(headers, body)
        .or_else(|| Some(String::from_utf8_lossy(body).into_owned()))
        .map(|t| sanitize(&t, MAX_REASON))
        .filter(|t| !t.is_empty());
    let mut reason = format!("{} answered HTTP {}", P::PROVIDER, status.as_u16());
    if let Some(d) = &detail {
        reason.push_str(": ");
        reason.push_str(d);
    }
    let retry_after = || {
        headers
            .get(RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| parse_retry_after(v, now))
    };
    if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
        tracing::error!(
            upstream = name,
            status = status.as_u16(),
            detail = detail.as_deref().unwrap_or(""),
            "credentials rejected by {}: check this upstream's key; mail stays queued",
            P::PROVIDER
        );
        return Err(DeliveryError::Transient {
            reason: format!("{reason} (credentials rejected)"),
            retry_after: retry_after(),
        });
    }
    if status.is_redirection() {
        tracing::error!(
            upstream = name,
            status = status.as_u16(),
            "{} answered with a redirect, which is not followed: check base_url; mail stays queued",
            P::PROVIDER
        );
        return Err(DeliveryError::transient(reason));
    }
    let transient = status == StatusCode::TOO_MANY_REQUESTS
        || status == StatusCode::REQUEST_TIMEOUT
        || status.is_server_error()
        || P::is_temporary(status, headers, body);
    if transient {
        Err(DeliveryError::Transient {
            reason,
            retry_after: retry_after(),
        })
    } else {
        Err(DeliveryError::Permanent { reason })
    }
}

/// A provider's error text with its error code in front, when it gives
/// one: `"{prefix}{code}: {message}"`.
pub(crate) fn coded_message(
    body: &[u8],
    message: &str,
    code: &str,
    prefix: &str,
) -> Option<String> {
    let text = json_str(body, message)?;
    Some(match json_str(body, code) {
        Some(c) => format!("{prefix}{c}: {text}"),
        None => text,
    })
}

/// A string field of a JSON object body.
pub(crate) fn json_str(body: &[u8], key: &str) -> Option<String> {
    let v: serde_json::Value = serde_json::from_slice(body).ok()?;
    match v.get(key)? {
        serde_json::Value::String(s) => Some(s.clone()),
        serde_json::Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// A header as text, if present and printable.
pub(crate) fn header_str(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

#[cfg(test)]
mod tests;
