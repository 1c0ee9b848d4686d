//! `kind = "sendgrid"`: Twilio SendGrid v3 `POST /v3/mail/send`.
//!
//! SendGrid takes JSON, not MIME: the message is converted (see
//! `convert`) into from, reply_to, subject, content, attachments and
//! custom headers; SendGrid builds and signs the MIME itself, which is why
//! `dkim` defaults to false for this kind. Recipients follow the envelope
//! (`convert::Recipients`): one personalization with the visible To/Cc
//! recipients and the hidden ones as bcc; when no envelope recipient is
//! visible, each hidden recipient gets a personalization of its own so
//! that nobody sees anybody else's address.

use base64::Engine as _;
use reqwest::header::{CONTENT_TYPE, HeaderMap};
use serde::Serialize;

use super::api::{ApiClient, Endpoint, ProviderResponse, header_str};
use super::convert::{self, Mailbox, ParsedMail, Recipients};
use super::{Delivered, DeliveryError, OutboundMessage, Provider, UpstreamError};
use crate::secret::Secret;

/// "The total size of your email, including attachments, must be less
/// than 30MB."
pub const MAX_MESSAGE_SIZE: u64 = 30_000_000;
const PATH: &str = "/v3/mail/send";
/// Custom headers SendGrid refuses beyond those `convert` never passes.
const RESERVED: &[&str] = &["x-sg-id", "x-sg-eid"];

/// `[upstreams.NAME]` of `kind = "sendgrid"`, validated.
#[derive(Debug, Clone)]
pub struct Settings {
    pub endpoint: Endpoint,
    pub api_key: Secret,
    /// Up to 10 category names attached to every message.
    pub categories: Vec<String>,
}

pub struct SendgridUpstream {
    api: ApiClient,
    settings: Settings,
}

#[derive(Serialize)]
struct Email {
    email: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<String>,
}

impl Email {
    fn sender(m: &Mailbox) -> Email {
        Email {
            email: m.address.clone(),
            name: m.name.clone(),
        }
    }

    /// SendGrid refuses `;` and `,` in recipient (to, cc, bcc) names.
    fn recipient(m: &Mailbox) -> Email {
        Email {
            email: m.address.clone(),
            name: m
                .name
                .as_ref()
                .map(|n| {
                    n.replace([';', ','], " ")
                        .split_whitespace()
                        .collect::<Vec<_>>()
                        .join(" ")
                })
                .filter(|n| !n.is_empty()),
        }
    }
}

fn emails(list: &[Mailbox]) -> Vec<Email> {
    list.iter().map(Email::recipient).collect()
}

#[derive(Serialize)]
struct Personalization {
    to: Vec<Email>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    cc: Vec<Email>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    bcc: Vec<Email>,
}

#[derive(Serialize)]
struct Content<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    value: &'a str,
}

#[derive(Serialize)]
struct Attachment<'a> {
    content: String,
    #[serde(rename = "type")]
    content_type: &'a str,
    filename: &'a str,
    disposition: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    content_id: Option<&'a str>,
}

#[derive(Serialize)]
struct Mail<'a> {
    personalizations: Vec<Personalization>,
    from: Email,
    #[serde(skip_serializing_if = "Option::is_none")]
    reply_to: Option<Email>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    reply_to_list: Vec<Email>,
    #[serde(skip_serializing_if = "Option::is_none")]
    subject: Option<&'a str>,
    content: Vec<Content<'a>>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    attachments: Vec<Attachment<'a>>,
    #[serde(skip_serializing_if = "serde_json::Map::is_empty")]
    headers: serde_json::Map<String, serde_json::Value>,
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    categories: &'a [String],
}

/// The `/v3/mail/send` document for `msg`.
pub(crate) fn request_body(
    mail: &ParsedMail,
    msg: &OutboundMessage<'_>,
    categories: &[String],
) -> Result<Vec<u8>, DeliveryError> {
    let from = mail.sender(msg.mail_from).map_err(permanent)?;
    let mut r = Recipients::from_envelope(mail, msg.rcpt_to);
    if r.to.is_empty() {
        r.to = std::mem::take(&mut r.cc);
    }
    let personalizations = if !r.to.is_empty() {
        vec![Personalization {
            to: emails(&r.to),
            cc: emails(&r.cc),
            bcc: emails(&r.bcc),
        }]
    } else {
        r.bcc
            .iter()
            .map(|b| Personalization {
                to: vec![Email::recipient(b)],
                cc: Vec::new(),
                bcc: Vec::new(),
            })
            .collect()
    };
    if personalizations.is_empty() {
        return Err(DeliveryError::permanent("message has no recipients"));
    }
    let (text, html) = mail.bodies();
    let mut content = Vec::new();
    // SendGrid wants text/plain before text/html.
    if let Some(t) = text {
        content.push(Content {
            kind: "text/plain",
            value: t,
        });
    }
    if let Some(h) = html {
        content.push(Content {
            kind: "text/html",
            value: h,
        });
    }
    let (reply_to, reply_to_list) = match mail.reply_to.as_slice() {
        [] => (None, Vec::new()),
        [one] => (Some(Email::sender(one)), Vec::new()),
        many => (None, many.iter().map(Email::sender).collect()),
    };
    let body = Mail {
        personalizations,
        from: Email::sender(&from),
        reply_to,
        reply_to_list,
        subject: mail.subject.as_deref(),
        content,
        attachments: mail
            .attachments
            .iter()
            .map(|a| {
                // Inline needs a content id to be referred to.
                let inline = a.inline && a.content_id.is_some();
                Attachment {
                    content: base64::engine::general_purpose::STANDARD.encode(&a.content),
                    content_type: &a.content_type,
                    filename: &a.filename,
                    disposition: if inline { "inline" } else { "attachment" },
                    content_id: a.content_id.as_deref().filter(|_| inline),
                }
            })
            .collect(),
        headers: mail
            .unique_headers(RESERVED)
            .into_iter()
            .map(|(n, v)| (n.to_string(), serde_json::Value::String(v.to_string())))
            .collect(),
        categories,
    };
    serde_json::to_vec(&body)
        .map_err(|e| DeliveryError::permanent(format!("cannot encode SendGrid request: {e}")))
}

fn permanent(e: convert::ConvertError) -> DeliveryError {
    DeliveryError::permanent(format!("cannot convert message for SendGrid: {e}"))
}

impl SendgridUpstream {
    pub fn new(name: &str, settings: &Settings) -> Result<SendgridUpstream, UpstreamError> {
        let api = ApiClient::new(name, &settings.endpoint, PATH)?;
        Ok(SendgridUpstream {
            api,
            settings: settings.clone(),
        })
    }
}

impl Provider for SendgridUpstream {
    fn max_message_size(&self) -> Option<u64> {
        Some(MAX_MESSAGE_SIZE)
    }

    async fn send(&self, msg: &OutboundMessage<'_>) -> Result<Delivered, DeliveryError> {
        let mail = convert::parse(msg.data).map_err(permanent)?;
        let body = request_body(&mail, msg, &self.settings.categories)?;
        let request = self
            .api
            .post()
            .bearer_auth(self.settings.api_key.expose())
            .header(CONTENT_TYPE, "application/json")
            .body(body);
        self.api.send::<Sendgrid>(request).await
    }
}

/// 202 with `X-Message-Id`; errors as `{"errors":[{"message","field"}]}`.
struct Sendgrid;

impl ProviderResponse for Sendgrid {
    const PROVIDER: &'static str = "SendGrid";

    fn message_id(headers: &HeaderMap, _: &[u8]) -> Option<String> {
        header_str(headers, "x-message-id")
    }

    fn error_text(_: &HeaderMap, body: &[u8]) -> Option<String> {
        let v: serde_json::Value = serde_json::from_slice(body).ok()?;
        let list = v.get("errors")?.as_array()?;
        let parts: Vec<String> = list
            .iter()
            .filter_map(|e| {
                let message = e.get("message")?.as_str()?;
                Some(match e.get("field").and_then(|f| f.as_str()) {
                    Some(field) if !field.is_empty() => format!("{field}: {message}"),
                    _ => message.to_string(),
                })
            })
            .collect();
        (!parts.is_empty()).then(|| parts.join("; "))
    }
}

#[cfg(test)]
mod tests;
