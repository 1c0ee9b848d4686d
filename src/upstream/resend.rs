//! `kind = "resend"`: Resend `POST /emails`.
//!
//! Resend takes JSON (from, to, cc, bcc, reply_to, subject, html, text,
//! headers, attachments) and builds the MIME itself, so `dkim` defaults to
//! false. Every request carries `Idempotency-Key: <queue id>`: a retry
//! after a lost response is recognised by Resend and not sent twice.
//! Recipients follow the envelope as for Postmark
//! (`Recipients::with_visible_to`).

use base64::Engine as _;
use reqwest::StatusCode;
use reqwest::header::{CONTENT_TYPE, HeaderMap};
use serde::Serialize;

use super::api::{ApiClient, Endpoint, ProviderResponse, coded_message, json_str};
use super::convert::{self, Mailbox, ParsedMail, Recipients};
use super::{Delivered, DeliveryError, OutboundMessage, Provider, UpstreamError};
use crate::secret::Secret;

/// "max 40MB per email, after Base64 encoding of the attachments".
pub const MAX_MESSAGE_SIZE: u64 = 40_000_000;
const PATH: &str = "/emails";
const PROVIDER: &str = "Resend";

/// `[upstreams.NAME]` of `kind = "resend"`, validated.
#[derive(Debug, Clone)]
pub struct Settings {
    pub endpoint: Endpoint,
    pub api_key: Secret,
}

pub struct ResendUpstream {
    api: ApiClient,
    api_key: Secret,
}

#[derive(Serialize)]
struct Attachment<'a> {
    filename: &'a str,
    content: String,
    content_type: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    content_id: Option<&'a str>,
}

#[derive(Serialize)]
struct Email<'a> {
    from: String,
    to: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    cc: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    bcc: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    reply_to: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    subject: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    html: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    text: Option<&'a str>,
    #[serde(skip_serializing_if = "serde_json::Map::is_empty")]
    headers: serde_json::Map<String, serde_json::Value>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    attachments: Vec<Attachment<'a>>,
}

fn displayed(list: &[Mailbox]) -> Vec<String> {
    list.iter().map(Mailbox::display).collect()
}

fn permanent(e: convert::ConvertError) -> DeliveryError {
    DeliveryError::permanent(format!("cannot convert message for {PROVIDER}: {e}"))
}

/// The `/emails` document for `msg`.
pub(crate) fn request_body(
    mail: &ParsedMail,
    msg: &OutboundMessage<'_>,
) -> Result<Vec<u8>, DeliveryError> {
    let from = mail.sender(msg.mail_from).map_err(permanent)?;
    let r = Recipients::from_envelope(mail, msg.rcpt_to)
        .with_visible_to(PROVIDER)
        .map_err(permanent)?;
    if r.to.is_empty() {
        return Err(DeliveryError::permanent("message has no recipients"));
    }
    let (text, html) = mail.bodies();
    let body = Email {
        from: from.display(),
        to: displayed(&r.to),
        cc: displayed(&r.cc),
        bcc: displayed(&r.bcc),
        reply_to: displayed(&mail.reply_to),
        subject: mail.subject.as_deref(),
        html,
        text,
        headers: mail
            .unique_headers(&[])
            .into_iter()
            .map(|(n, v)| (n.to_string(), serde_json::Value::String(v.to_string())))
            .collect(),
        attachments: mail
            .attachments
            .iter()
            .map(|a| Attachment {
                filename: &a.filename,
                content: base64::engine::general_purpose::STANDARD.encode(&a.content),
                content_type: &a.content_type,
                content_id: a.content_id.as_deref().filter(|_| a.inline),
            })
            .collect(),
    };
    serde_json::to_vec(&body)
        .map_err(|e| DeliveryError::permanent(format!("cannot encode {PROVIDER} request: {e}")))
}

impl ResendUpstream {
    pub fn new(name: &str, settings: &Settings) -> Result<ResendUpstream, UpstreamError> {
        let api = ApiClient::new(name, &settings.endpoint, PATH)?;
        Ok(ResendUpstream {
            api,
            api_key: settings.api_key.clone(),
        })
    }
}

impl Provider for ResendUpstream {
    fn max_message_size(&self) -> Option<u64> {
        Some(MAX_MESSAGE_SIZE)
    }

    async fn send(&self, msg: &OutboundMessage<'_>) -> Result<Delivered, DeliveryError> {
        let mail = convert::parse(msg.data).map_err(permanent)?;
        let body = request_body(&mail, msg)?;
        let request = self
            .api
            .post()
            .bearer_auth(self.api_key.expose())
            .header(CONTENT_TYPE, "application/json")
            .header("Idempotency-Key", msg.id)
            .body(body);
        self.api.send::<Resend>(request).await
    }
}

/// `{"id": ...}`; errors `{"statusCode", "name", "message"}`.
struct Resend;

impl ProviderResponse for Resend {
    const PROVIDER: &'static str = PROVIDER;

    fn message_id(_: &HeaderMap, body: &[u8]) -> Option<String> {
        json_str(body, "id")
    }

    fn error_text(_: &HeaderMap, body: &[u8]) -> Option<String> {
        coded_message(body, "message", "name", "")
    }

    /// The first request with this key is still being processed; asking
    /// again later gets its result.
    fn is_temporary(status: StatusCode, _: &HeaderMap, body: &[u8]) -> bool {
        status == StatusCode::CONFLICT
            && json_str(body, "name").as_deref() == Some("concurrent_idempotent_requests")
    }
}

#[cfg(test)]
mod tests;
