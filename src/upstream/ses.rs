//! `kind = "ses"`: Amazon SES v2 `SendEmail` with the raw message.
//!
//! SES takes the message as it is (base64 in `Content.Raw.Data`), so the
//! bytes postern spooled, including its DKIM signature, are the bytes SES
//! sends. The envelope recipients go in `Destination.ToAddresses` (SES
//! delivers to exactly those and does not add header recipients), the
//! envelope sender in `FromEmailAddress`. Requests are signed with AWS
//! Signature V4 (service `ses`) by the `aws-sigv4` crate.

use std::time::SystemTime;

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
use aws_sigv4::sign::v4;
use base64::Engine as _;
use reqwest::StatusCode;
use reqwest::header::{CONTENT_TYPE, HeaderMap};
use serde::Serialize;

use super::api::{ApiClient, Endpoint, ProviderResponse, header_str, json_str};
use super::{Delivered, DeliveryError, OutboundMessage, Provider, UpstreamError};
use crate::secret::Secret;

/// SES v2 accepts messages up to 40 MB (attachments included).
pub const MAX_MESSAGE_SIZE: u64 = 40_000_000;
const SERVICE: &str = "ses";
const PATH: &str = "/v2/email/outbound-emails";

/// `[upstreams.NAME]` of `kind = "ses"`, validated.
#[derive(Debug, Clone)]
pub struct Settings {
    pub endpoint: Endpoint,
    pub region: String,
    pub access_key_id: Secret,
    pub secret_access_key: Secret,
    /// For temporary credentials.
    pub session_token: Option<Secret>,
    /// Sent as `ConfigurationSetName`.
    pub configuration_set: Option<String>,
}

pub struct SesUpstream {
    api: ApiClient,
    region: String,
    credentials: Credentials,
    configuration_set: Option<String>,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct SendEmail<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    from_email_address: Option<&'a str>,
    destination: Destination<'a>,
    content: Content,
    #[serde(skip_serializing_if = "Option::is_none")]
    configuration_set_name: Option<&'a str>,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct Destination<'a> {
    to_addresses: &'a [String],
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct Content {
    raw: Raw,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct Raw {
    data: String,
}

impl SesUpstream {
    pub fn new(name: &str, settings: &Settings) -> Result<SesUpstream, UpstreamError> {
        let api = ApiClient::new(name, &settings.endpoint, PATH)?;
        Ok(SesUpstream {
            api,
            region: settings.region.clone(),
            credentials: Credentials::new(
                settings.access_key_id.expose(),
                settings.secret_access_key.expose(),
                settings
                    .session_token
                    .as_ref()
                    .map(|t| t.expose().to_string()),
                None,
                "postern-config",
            ),
            configuration_set: settings.configuration_set.clone(),
        })
    }

    fn body(&self, msg: &OutboundMessage<'_>) -> Result<Vec<u8>, DeliveryError> {
        let body = SendEmail {
            // Empty for bounces (null sender): SES then uses the From header.
            from_email_address: Some(msg.mail_from).filter(|f| !f.is_empty()),
            destination: Destination {
                to_addresses: msg.rcpt_to,
            },
            content: Content {
                raw: Raw {
                    data: base64::engine::general_purpose::STANDARD.encode(msg.data),
                },
            },
            configuration_set_name: self.configuration_set.as_deref(),
        };
        serde_json::to_vec(&body)
            .map_err(|e| DeliveryError::permanent(format!("cannot encode SES request: {e}")))
    }
}

impl Provider for SesUpstream {
    fn max_message_size(&self) -> Option<u64> {
        Some(MAX_MESSAGE_SIZE)
    }

    async fn send(&self, msg: &OutboundMessage<'_>) -> Result<Delivered, DeliveryError> {
        let body = self.body(msg)?;
        let content_type = "application/json";
        let signed = sign_v4(
            &self.credentials,
            &self.region,
            SERVICE,
            "POST",
            self.api.url().as_str(),
            &[("content-type", content_type)],
            &body,
            SystemTime::now(),
        )
        .map_err(|e| DeliveryError::transient(format!("cannot sign SES request: {e}")))?;
        let mut request = self
            .api
            .post()
            .header(CONTENT_TYPE, content_type)
            .body(body);
        for (name, value) in signed {
            request = request.header(name, value);
        }
        self.api.send::<Ses>(request).await
    }
}

/// The headers (x-amz-date, authorization, x-amz-security-token) that sign
/// a request with AWS Signature V4. `headers` are the extra headers to sign
/// besides `host`, which comes from `url`.
#[allow(clippy::too_many_arguments)]
pub(crate) fn sign_v4(
    credentials: &Credentials,
    region: &str,
    service: &str,
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: &[u8],
    time: SystemTime,
) -> Result<Vec<(&'static str, String)>, String> {
    let identity = credentials.clone().into();
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(region)
        .name(service)
        .time(time)
        .settings(SigningSettings::default())
        .build()
        .map_err(|e| e.to_string())?
        .into();
    // The payload hash is most of the signing cost (the body is the whole
    // message, base64): ring's assembly SHA-256 takes about half the time of
    // the pure-Rust one aws-sigv4 would use for `SignableBody::Bytes`.
    let request = SignableRequest::new(
        method,
        url,
        headers.iter().copied(),
        SignableBody::Precomputed(sha256_hex(body)),
    )
    .map_err(|e| e.to_string())?;
    let (instructions, _signature) = sign(request, &params)
        .map_err(|e| e.to_string())?
        .into_parts();
    let (out, _params) = instructions.into_parts();
    Ok(out
        .into_iter()
        .map(|h| (h.name(), h.value().to_string()))
        .collect())
}

/// Lower-case hex SHA-256, as SigV4 writes the payload hash.
fn sha256_hex(data: &[u8]) -> String {
    use std::fmt::Write as _;
    let digest = ring::digest::digest(&ring::digest::SHA256, data);
    let mut out = String::with_capacity(64);
    for b in digest.as_ref() {
        let _ = write!(out, "{b:02x}");
    }
    out
}

/// SES v2 error documents: `{"message": ...}` with the error name in the
/// `x-amzn-ErrorType` header (`MessageRejected:http://...`).
struct Ses;

fn error_type(headers: &HeaderMap, body: &[u8]) -> Option<String> {
    header_str(headers, "x-amzn-errortype")
        .or_else(|| json_str(body, "__type"))
        .map(|t| {
            let t = t.split(':').next().unwrap_or("");
            t.rsplit('#').next().unwrap_or(t).to_string()
        })
        .filter(|t| !t.is_empty())
}

impl ProviderResponse for Ses {
    const PROVIDER: &'static str = "SES";

    fn message_id(_: &HeaderMap, body: &[u8]) -> Option<String> {
        json_str(body, "MessageId")
    }

    fn error_text(headers: &HeaderMap, body: &[u8]) -> Option<String> {
        let message = json_str(body, "message").or_else(|| json_str(body, "Message"));
        match (error_type(headers, body), message) {
            (Some(t), Some(m)) => Some(format!("{t}: {m}")),
            (t, m) => t.or(m),
        }
    }

    /// A 400 for the daily quota or a paused account says nothing about
    /// the message: it will go out once the account can send again.
    fn is_temporary(_: StatusCode, headers: &HeaderMap, body: &[u8]) -> bool {
        matches!(
            error_type(headers, body).as_deref(),
            Some(
                "LimitExceededException"
                    | "SendingPausedException"
                    | "AccountSuspendedException"
                    | "TooManyRequestsException"
            )
        )
    }
}

#[cfg(test)]
mod tests;
