//! `kind = "postmark"`: Postmark `POST /email`.
//!
//! Postmark takes JSON (From, To, Cc, Bcc, Subject, TextBody, HtmlBody,
//! ReplyTo, Headers, Attachments, MessageStream) and builds the MIME
//! itself, so `dkim` defaults to false for this kind. Recipients follow the
//! envelope (`convert::Recipients`); Postmark requires a To address, so
//! Cc-only mail is sent with those recipients as To, and a single hidden
//! recipient becomes the To (see `Recipients::with_visible_to`).

use base64::Engine as _;
use reqwest::header::{ACCEPT, CONTENT_TYPE, HeaderMap};
use serde::Serialize;

use super::api::{ApiClient, Endpoint, ProviderResponse, coded_message, json_str};
use super::convert::{self, Mailbox, ParsedMail, Recipients};
use super::{Delivered, DeliveryError, OutboundMessage, Provider, UpstreamError};
use crate::secret::Secret;

/// "Total message size, including attachments, can be 10 MB."
pub const MAX_MESSAGE_SIZE: u64 = 10_000_000;
const PATH: &str = "/email";
const PROVIDER: &str = "Postmark";

/// `[upstreams.NAME]` of `kind = "postmark"`, validated.
#[derive(Debug, Clone)]
pub struct Settings {
    pub endpoint: Endpoint,
    /// A server API token.
    pub server_token: Secret,
    /// Postmark's default stream ("outbound") when unset.
    pub message_stream: Option<String>,
    pub tag: Option<String>,
}

pub struct PostmarkUpstream {
    api: ApiClient,
    settings: Settings,
}

#[derive(Serialize)]
struct Header<'a> {
    #[serde(rename = "Name")]
    name: &'a str,
    #[serde(rename = "Value")]
    value: &'a str,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct Attachment<'a> {
    name: &'a str,
    content: String,
    content_type: &'a str,
    #[serde(rename = "ContentID", skip_serializing_if = "Option::is_none")]
    content_id: Option<String>,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct Email<'a> {
    from: String,
    to: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    cc: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    bcc: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    subject: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    text_body: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    html_body: Option<&'a str>,
    #[serde(skip_serializing_if = "String::is_empty")]
    reply_to: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    headers: Vec<Header<'a>>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    attachments: Vec<Attachment<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    message_stream: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tag: Option<&'a str>,
}

/// Postmark's address lists are comma-separated strings.
fn joined(list: &[Mailbox]) -> String {
    list.iter()
        .map(Mailbox::display)
        .collect::<Vec<_>>()
        .join(", ")
}

fn permanent(e: convert::ConvertError) -> DeliveryError {
    DeliveryError::permanent(format!("cannot convert message for {PROVIDER}: {e}"))
}

/// The `/email` document for `msg`.
pub(crate) fn request_body(
    mail: &ParsedMail,
    msg: &OutboundMessage<'_>,
    message_stream: Option<&str>,
    tag: Option<&str>,
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
        to: joined(&r.to),
        cc: joined(&r.cc),
        bcc: joined(&r.bcc),
        subject: mail.subject.as_deref(),
        text_body: text,
        html_body: html,
        reply_to: joined(&mail.reply_to),
        headers: mail
            .headers
            .iter()
            .map(|(n, v)| Header { name: n, value: v })
            .collect(),
        attachments: mail
            .attachments
            .iter()
            .map(|a| Attachment {
                name: &a.filename,
                content: base64::engine::general_purpose::STANDARD.encode(&a.content),
                content_type: &a.content_type,
                // Postmark writes the id with its `cid:` prefix.
                content_id: a
                    .content_id
                    .as_ref()
                    .filter(|_| a.inline)
                    .map(|id| format!("cid:{id}")),
            })
            .collect(),
        message_stream,
        tag,
    };
    serde_json::to_vec(&body)
        .map_err(|e| DeliveryError::permanent(format!("cannot encode {PROVIDER} request: {e}")))
}

impl PostmarkUpstream {
    pub fn new(name: &str, settings: &Settings) -> Result<PostmarkUpstream, UpstreamError> {
        let api = ApiClient::new(name, &settings.endpoint, PATH)?;
        Ok(PostmarkUpstream {
            api,
            settings: settings.clone(),
        })
    }
}

impl Provider for PostmarkUpstream {
    fn max_message_size(&self) -> Option<u64> {
        Some(MAX_MESSAGE_SIZE)
    }

    async fn send(&self, msg: &OutboundMessage<'_>) -> Result<Delivered, DeliveryError> {
        let mail = convert::parse(msg.data).map_err(permanent)?;
        let body = request_body(
            &mail,
            msg,
            self.settings.message_stream.as_deref(),
            self.settings.tag.as_deref(),
        )?;
        let request = self
            .api
            .post()
            .header(
                "X-Postmark-Server-Token",
                self.settings.server_token.expose(),
            )
            .header(CONTENT_TYPE, "application/json")
            .header(ACCEPT, "application/json")
            .body(body);
        self.api.send::<Postmark>(request).await
    }
}

/// `{"MessageID": ...}`; errors `{"ErrorCode": 300, "Message": ...}`.
struct Postmark;

impl ProviderResponse for Postmark {
    const PROVIDER: &'static str = PROVIDER;

    fn message_id(_: &HeaderMap, body: &[u8]) -> Option<String> {
        json_str(body, "MessageID")
    }

    fn error_text(_: &HeaderMap, body: &[u8]) -> Option<String> {
        coded_message(body, "Message", "ErrorCode", "ErrorCode ")
    }
}

#[cfg(test)]
mod tests;
