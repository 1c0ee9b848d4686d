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
mod tests {
    use super::*;

    #[test]
    fn form_has_one_to_per_recipient_and_the_message_file() {
        let rcpt = vec!["a@x.test".to_string(), "b@y.test".to_string()];
        let msg = OutboundMessage {
            id: "q1",
            mail_from: "app@example.com",
            rcpt_to: &rcpt,
            data: b"Subject: s\r\n\r\nbody\r\n",
        };
        let body = form_body("BB", &msg, &[]).unwrap();
        assert_eq!(
            String::from_utf8(body).unwrap(),
            "--BB\r\nContent-Disposition: form-data; name=\"to\"\r\n\r\na@x.test\r\n\
             --BB\r\nContent-Disposition: form-data; name=\"to\"\r\n\r\nb@y.test\r\n\
             --BB\r\nContent-Disposition: form-data; name=\"message\"; filename=\"message.mime\"\r\n\
             Content-Type: message/rfc822\r\n\r\nSubject: s\r\n\r\nbody\r\n\r\n--BB--\r\n"
        );
    }

    #[test]
    fn operator_tags_are_o_tag_fields_before_the_message() {
        let rcpt = vec!["a@x.test".to_string()];
        let msg = OutboundMessage {
            id: "q1",
            mail_from: "s@x.test",
            rcpt_to: &rcpt,
            data: b"Subject: s\r\n\r\nhi\r\n",
        };
        let body = form_body("BB", &msg, &["invoices".into(), "erp".into()]).unwrap();
        let text = String::from_utf8(body).unwrap();
        let tag = "--BB\r\nContent-Disposition: form-data; name=\"o:tag\"\r\n\r\n";
        let first = text.find(&format!("{tag}invoices\r\n")).expect("first tag");
        let second = text.find(&format!("{tag}erp\r\n")).expect("second tag");
        let message = text.find("name=\"message\"").expect("message part");
        assert!(first < second && second < message, "{text}");
    }

    #[test]
    fn domain_must_be_a_host_name() {
        let cfg = |domain: &str| Settings {
            endpoint: Endpoint {
                base_url: "https://api.mailgun.net".into(),
                timeout: std::time::Duration::from_secs(5),
                ca_file: None,
            },
            domain: domain.into(),
            api_key: Secret::for_test("key-secret"),
            tags: Vec::new(),
        };
        assert!(MailgunUpstream::new("mg", &cfg("../admin")).is_err());
        let up = MailgunUpstream::new("mg", &cfg("mg.example.com")).unwrap();
        assert_eq!(
            up.api.url().as_str(),
            "https://api.mailgun.net/v3/mg.example.com/messages.mime"
        );
        assert!(!format!("{:?}", cfg("x")).contains("key-secret"));
    }
}
