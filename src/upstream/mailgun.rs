//! `kind = "mailgun"`: Mailgun `POST /v3/{domain}/messages.mime`.
//!
//! Mailgun takes the raw message as it is (a `message` file part) plus the
//! envelope recipients (`to`, one form field per recipient), so the bytes
//! postern spooled and signed are the bytes Mailgun sends, and only the
//! envelope recipients receive them. Auth is HTTP basic `api:KEY`; the
//! region (`us`/`eu`) only selects the API host at config time.

use reqwest::header::{CONTENT_TYPE, HeaderMap};
use ring::rand::{SecureRandom, SystemRandom};

use super::api::{ApiClient, Endpoint, ProviderResponse, json_str};
use super::{Delivered, DeliveryError, OutboundMessage, Provider, UpstreamError};
use crate::secret::Secret;

/// "The maximum message size Mailgun supports is 25MB."
pub const MAX_MESSAGE_SIZE: u64 = 25_000_000;

/// `[upstreams.NAME]` of `kind = "mailgun"`, validated.
#[derive(Debug, Clone)]
pub struct Settings {
    /// `https://api.mailgun.net`, `https://api.eu.mailgun.net` or an override.
    pub endpoint: Endpoint,
    /// The sending domain as configured in Mailgun (`mg.example.com`).
    pub domain: String,
    pub api_key: Secret,
    /// `o:tag` fields on every message.
    pub tags: Vec<String>,
}

pub struct MailgunUpstream {
    api: ApiClient,
    settings: Settings,
    rng: SystemRandom,
}

impl MailgunUpstream {
    pub fn new(name: &str, settings: &Settings) -> Result<MailgunUpstream, UpstreamError> {
        let domain_ok = !settings.domain.is_empty()
            && settings
                .domain
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-');
        if !domain_ok {
            return Err(UpstreamError::Other {
                name: name.to_string(),
                reason: format!("invalid mailgun domain {:?}", settings.domain),
            });
        }
        let path = format!("/v3/{}/messages.mime", settings.domain);
        let api = ApiClient::new(name, &settings.endpoint, &path)?;
        Ok(MailgunUpstream {
            api,
            settings: settings.clone(),
            rng: SystemRandom::new(),
        })
    }

    /// A boundary that occurs nowhere in the parts.
    fn boundary(&self, msg: &OutboundMessage<'_>) -> Result<String, DeliveryError> {
        for _ in 0..4 {
            let mut random = [0u8; 16];
            self.rng
                .fill(&mut random)
                .map_err(|_| DeliveryError::transient("system random number generator failed"))?;
            let hex: String = random.iter().map(|b| format!("{b:02x}")).collect();
            let boundary = format!("postern-{hex}");
            let clash = contains(msg.data, boundary.as_bytes())
                || msg.rcpt_to.iter().any(|r| r.contains(&boundary));
            if !clash {
                return Ok(boundary);
            }
        }
        Err(DeliveryError::transient(
            "cannot find a multipart boundary absent from the message",
        ))
    }
}

impl Provider for MailgunUpstream {
    fn max_message_size(&self) -> Option<u64> {
        Some(MAX_MESSAGE_SIZE)
    }

    async fn send(&self, msg: &OutboundMessage<'_>) -> Result<Delivered, DeliveryError> {
        let boundary = self.boundary(msg)?;
        let body = form_body(&boundary, msg, &self.settings.tags)?;
        let request = self
            .api
            .post()
            .basic_auth("api", Some(self.settings.api_key.expose()))
            .header(
                CONTENT_TYPE,
                format!("multipart/form-data; boundary={boundary}"),
            )
            .body(body);
        self.api.send::<Mailgun>(request).await
    }
}

/// multipart/form-data (RFC 7578): one `to` field per envelope recipient,
/// the operator's `o:tag` fields, then the message as a file part.
fn form_body(
    boundary: &str,
    msg: &OutboundMessage<'_>,
    tags: &[String],
) -> Result<Vec<u8>, DeliveryError> {
    if msg.rcpt_to.is_empty() {
        return Err(DeliveryError::permanent("message has no recipients"));
    }
    let mut body = Vec::with_capacity(msg.data.len() + 512);
    for rcpt in msg.rcpt_to {
        if rcpt.contains(['\r', '\n']) {
            return Err(DeliveryError::permanent("recipient contains a line break"));
        }
        body.extend_from_slice(
            format!(
                "--{boundary}\r\nContent-Disposition: form-data; name=\"to\"\r\n\r\n{rcpt}\r\n"
            )
            .as_bytes(),
        );
    }
    for tag in tags {
        body.extend_from_slice(
            format!(
                "--{boundary}\r\nContent-Disposition: form-data; name=\"o:tag\"\r\n\r\n{tag}\r\n"
            )
            .as_bytes(),
        );
    }
    body.extend_from_slice(
        format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"message\"; \
             filename=\"message.mime\"\r\nContent-Type: message/rfc822\r\n\r\n"
        )
        .as_bytes(),
    );
    body.extend_from_slice(msg.data);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    Ok(body)
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

/// `{"id": "<...>", "message": "Queued. Thank you."}`; errors `{"message"}`.
struct Mailgun;

impl ProviderResponse for Mailgun {
    const PROVIDER: &'static str = "Mailgun";

    fn message_id(_: &HeaderMap, body: &[u8]) -> Option<String> {
        json_str(body, "id")
    }

    fn error_text(_: &HeaderMap, body: &[u8]) -> Option<String> {
        json_str(body, "message")
    }
}

#[cfg(test)]
mod tests;
