//! `kind = "msgraph"`: sends through Microsoft Graph as a Microsoft 365
//! mailbox.
//!
//! Graph authenticates the app with OAuth client credentials (a client
//! secret, or a certificate-signed assertion) and sends as a mailbox: the
//! message's From address, or a fixed `mailbox` (shared mailboxes). A
//! message that fits one request (Graph: 4 MB) goes as base64 MIME to
//! `sendMail`, byte for byte. A larger one becomes a draft (the MIME minus
//! its largest attachments), the attachments are added to it (upload
//! sessions for the big ones), and the draft is sent; that path needs the
//! `Mail.ReadWrite` permission besides `Mail.Send`.
//!
//! `save_to_sent_items = false` needs Graph's JSON form (the MIME form
//! always saves), so such messages are converted (see `convert`).

pub(crate) mod convert;

use std::sync::Arc;

use base64::Engine as _;
use mail_parser::{Message, MessageParser};
use reqwest::Url;
use reqwest::header::{CONTENT_LENGTH, CONTENT_RANGE, CONTENT_TYPE, HeaderMap};
use serde_json::{Value, json};

use super::api::Endpoint;
use super::jwt::{RsaSigner, cert_thumbprint_s256};
use super::oauth::{ApiResponse, TokenCache, TokenGrant, api_client, https_url};
use super::recipients::{envelope_only_headers, with_envelope_bcc};
use super::{Delivered, DeliveryError, OutboundMessage, Provider, UpstreamError, sanitize};
use crate::inspect::recipients::HeaderRecipients;
use crate::secret::Secret;
use convert::{Offloaded, base64_len, json_message, split_for_draft};

pub const DEFAULT_BASE_URL: &str = "https://graph.microsoft.com";
/// Largest base64 request body sent in one piece; Graph refuses requests
/// over 4 MB, and JSON or headers need some room.
const MAX_INLINE_BASE64: usize = 3 * 1024 * 1024;
/// Attachments from this size on go through an upload session; smaller
/// ones are posted in one request (Graph's documented split).
const UPLOAD_SESSION_MIN: usize = 3 * 1024 * 1024;
/// Upload chunk: a multiple of 320 KiB and under Graph's 4 MB per PUT.
const UPLOAD_CHUNK: usize = 10 * 320 * 1024;
/// Graph's largest attachment, and so the largest message worth accepting.
pub const MAX_MESSAGE_SIZE: u64 = 150 * 1024 * 1024;
const MAX_ID: usize = 300;

/// How the app proves its identity to Entra ID.
#[derive(Debug, Clone)]
pub enum AppCredential {
    ClientSecret(Secret),
    /// A certificate registered with the app (its SHA-256 thumbprint goes
    /// in the assertion header) and its private key, parsed at load time.
    Certificate {
        thumbprint: String,
        signer: Arc<RsaSigner>,
    },
}

impl AppCredential {
    /// The `client_certificate` PEM's thumbprint; the error names what is wrong.
    pub fn thumbprint(certificate_pem: &str) -> Result<String, String> {
        cert_thumbprint_s256(certificate_pem).map_err(|e| e.to_string())
    }

    /// The `client_key`, checked to sign.
    pub fn signer(key: &Secret) -> Result<Arc<RsaSigner>, String> {
        RsaSigner::from_pem(key.expose())
            .map(Arc::new)
            .map_err(|e| e.to_string())
    }
}

/// `[upstreams.NAME]` of `kind = "msgraph"`, validated.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Default `https://graph.microsoft.com`.
    pub endpoint: Endpoint,
    /// Default `https://login.microsoftonline.com/{tenant_id}/oauth2/v2.0/token`.
    pub token_url: Option<String>,
    pub tenant_id: String,
    pub client_id: String,
    pub credential: AppCredential,
    /// Send as this mailbox; default: the message's From address.
    pub mailbox: Option<String>,
    pub save_to_sent_items: bool,
    pub header_recipients: HeaderRecipients,
}

/// One Graph app registration with its token cache and connection pool.
pub struct MsgraphUpstream {
    name: String,
    header_recipients: HeaderRecipients,
    base: Url,
    mailbox: Option<String>,
    save_to_sent_items: bool,
    client: reqwest::Client,
    tokens: TokenCache,
}

/// The `.default` scope of the Graph cloud `base` belongs to: national
/// clouds have their own Graph host; anything else (a proxy, a test
/// server) talks to the global one.
fn scope_for(base: &Url) -> String {
    match base.host_str() {
        Some(
            h @ ("graph.microsoft.us"
            | "dod-graph.microsoft.us"
            | "microsoftgraph.chinacloudapi.cn"),
        ) => {
            format!("https://{h}/.default")
        }
        _ => format!("{DEFAULT_BASE_URL}/.default"),
    }
}

impl MsgraphUpstream {
    pub fn new(name: &str, config: &Settings) -> Result<Self, UpstreamError> {
        let base = https_url(name, "base_url", &config.endpoint.base_url)?;
        let token_url = match &config.token_url {
            Some(u) => u.clone(),
            None => format!(
                "https://login.microsoftonline.com/{}/oauth2/v2.0/token",
                config.tenant_id
            ),
        };
        let token_url = https_url(name, "token_url", &token_url)?;
        let scope = scope_for(&base);
        let grant = match &config.credential {
            AppCredential::ClientSecret(secret) => TokenGrant::ClientSecret {
                client_id: config.client_id.clone(),
                secret: secret.clone(),
                scope,
            },
            AppCredential::Certificate { thumbprint, signer } => TokenGrant::ClientAssertion {
                client_id: config.client_id.clone(),
                signer: Arc::clone(signer),
                thumbprint: thumbprint.clone(),
                scope,
                audience: token_url.to_string(),
            },
        };
        let timeout = config.endpoint.timeout;
        let client = api_client(name, config.endpoint.ca_file.as_deref(), timeout)?;
        Ok(MsgraphUpstream {
            name: name.to_string(),
            header_recipients: config.header_recipients,
            base,
            mailbox: config.mailbox.clone(),
            save_to_sent_items: config.save_to_sent_items,
            tokens: TokenCache::new(name, client.clone(), token_url, grant, timeout),
            client,
        })
    }

    /// `{base}/v1.0/users/{mailbox}/{rest...}`, each segment escaped.
    fn url(&self, mailbox: &str, rest: &[&str]) -> Result<Url, DeliveryError> {
        let mut url = self.base.clone();
        url.path_segments_mut()
            .map_err(|_| DeliveryError::permanent("base_url cannot take a path"))?
            .pop_if_empty()
            .extend(["v1.0", "users", mailbox])
            .extend(rest);
        Ok(url)
    }

    /// The configured mailbox, else the From address, else the envelope sender.
    fn mailbox_for(
        &self,
        parsed: Option<&Message<'_>>,
        msg: &OutboundMessage<'_>,
    ) -> Result<String, DeliveryError> {
        if let Some(m) = &self.mailbox {
            return Ok(m.clone());
        }
        parsed
            .and_then(|p| p.from())
            .and_then(|a| a.first())
            .and_then(|a| a.address())
            .map(str::trim)
            .filter(|a| a.contains('@') && !a.chars().any(char::is_control))
            .or(Some(msg.mail_from).filter(|s| !s.is_empty()))
            .map(str::to_string)
            .ok_or_else(|| {
                DeliveryError::permanent(
                    "no From address to choose the Graph mailbox; set `mailbox` on the upstream",
                )
            })
    }
}

impl Provider for MsgraphUpstream {
    fn token_status(&self) -> Option<super::oauth::TokenStatus> {
        Some(self.tokens.status())
    }

    fn max_message_size(&self) -> Option<u64> {
        Some(MAX_MESSAGE_SIZE)
    }

    async fn send(&self, msg: &OutboundMessage<'_>) -> Result<Delivered, DeliveryError> {
        let parsed = MessageParser::default().parse(msg.data);
        let mailbox = self.mailbox_for(parsed.as_ref(), msg)?;
        let fits = base64_len(with_envelope_bcc(msg.data, parsed.as_ref(), msg.rcpt_to).len())
            <= MAX_INLINE_BASE64;
        if let (Some(p), false, true) = (&parsed, self.save_to_sent_items, fits) {
            // The JSON form carries exactly the envelope recipients.
            return self.send_json(&mailbox, p, msg.rcpt_to).await;
        }
        // MIME sends (sendMail and the draft) deliver to the header recipients.
        let restricted = envelope_only_headers(
            &self.name,
            msg.id,
            msg.data,
            msg.rcpt_to,
            self.header_recipients,
        )?;
        let parsed = match restricted {
            std::borrow::Cow::Borrowed(_) => parsed,
            std::borrow::Cow::Owned(_) => MessageParser::default().parse(&restricted[..]),
        };
        let data = with_envelope_bcc(&restricted, parsed.as_ref(), msg.rcpt_to);
        if base64_len(data.len()) <= MAX_INLINE_BASE64 {
            self.send_mime(&mailbox, &data).await
        } else {
            // Offsets must refer to the bytes that are sent: parse again.
            let Some(parsed) = MessageParser::default().parse(&data[..]) else {
                return Err(DeliveryError::permanent(
                    "message too large for one Graph request and not parsable into parts",
                ));
            };
            self.send_large(&mailbox, &data, &parsed).await
        }
    }
}

impl MsgraphUpstream {
    async fn send_mime(&self, mailbox: &str, data: &[u8]) -> Result<Delivered, DeliveryError> {
        let body = base64::engine::general_purpose::STANDARD.encode(data);
        self.send_mail(mailbox, "text/plain", body.into_bytes())
            .await
    }

    async fn send_json(
        &self,
        mailbox: &str,
        parsed: &Message<'_>,
        rcpt_to: &[String],
    ) -> Result<Delivered, DeliveryError> {
        let body = encode_json(
            &json!({"message": json_message(parsed, rcpt_to), "saveToSentItems": false}),
        )?;
        self.send_mail(mailbox, "application/json", body).await
    }

    /// `sendMail`, which answers 202 with no body: the id is Graph's
    /// `request-id`.
    async fn send_mail(
        &self,
        mailbox: &str,
        content_type: &str,
        body: Vec<u8>,
    ) -> Result<Delivered, DeliveryError> {
        let url = self.url(mailbox, &["sendMail"])?;
        let r = self
            .post("sendMail", &url, Some(content_type), body)
            .await?;
        Ok(Delivered {
            upstream_id: request_id(&r.headers),
        })
    }

    /// POSTs `body` with a valid token and fails unless Graph accepted it;
    /// `what` names the step in failure reasons. Without a content type the
    /// body is empty and only `Content-Length: 0` is sent.
    async fn post(
        &self,
        what: &str,
        url: &Url,
        content_type: Option<&str>,
        body: Vec<u8>,
    ) -> Result<ApiResponse, DeliveryError> {
        let r = self
            .tokens
            .send(|| {
                let request = self.client.post(url.clone());
                match content_type {
                    Some(t) => request.header(CONTENT_TYPE, t),
                    None => request.header(CONTENT_LENGTH, "0"),
                }
                .body(body.clone())
            })
            .await?;
        self.tokens.check(what, &r)?;
        Ok(r)
    }

    /// Draft without the big attachments, attachments one by one, send.
    /// A failure after the draft exists deletes it, so retries do not pile
    /// up drafts in the mailbox.
    async fn send_large(
        &self,
        mailbox: &str,
        data: &[u8],
        parsed: &Message<'_>,
    ) -> Result<Delivered, DeliveryError> {
        let (draft, attachments) =
            split_for_draft(data, parsed, MAX_INLINE_BASE64).map_err(DeliveryError::permanent)?;
        if let Some(big) = attachments
            .iter()
            .find(|a| a.bytes.len() as u64 > MAX_MESSAGE_SIZE)
        {
            return Err(DeliveryError::permanent(format!(
                "attachment {:?} is {} MiB; Graph accepts at most {} MiB",
                sanitize(&big.name, 100),
                big.bytes.len() >> 20,
                MAX_MESSAGE_SIZE >> 20
            )));
        }
        let url = self.url(mailbox, &["messages"])?;
        let body = base64::engine::general_purpose::STANDARD.encode(&draft);
        let r = self
            .post("create draft", &url, Some("text/plain"), body.into_bytes())
            .await
            .map_err(nothing_sent)?;
        let id = r
            .json()
            .and_then(|v| v.get("id").and_then(Value::as_str).map(str::to_string))
            .filter(|id| !id.is_empty() && id.len() <= MAX_ID * 4)
            .ok_or_else(|| DeliveryError::transient("create draft: answer has no message id"))?;
        tracing::debug!(upstream = %self.name, attachments = attachments.len(), "Graph draft created for a large message");
        let result = self.complete_draft(mailbox, &id, &attachments).await;
        if result.is_err() {
            self.delete_draft(mailbox, &id).await;
        }
        result.map(|()| Delivered {
            upstream_id: Some(sanitize(&id, MAX_ID)),
        })
    }

    async fn complete_draft(
        &self,
        mailbox: &str,
        id: &str,
        attachments: &[Offloaded],
    ) -> Result<(), DeliveryError> {
        for a in attachments {
            if a.bytes.len() < UPLOAD_SESSION_MIN {
                self.post_attachment(mailbox, id, a).await
            } else {
                self.upload_attachment(mailbox, id, a).await
            }
            .map_err(nothing_sent)?;
        }
        let url = self.url(mailbox, &["messages", id, "send"])?;
        self.post("send draft", &url, None, Vec::new()).await?;
        Ok(())
    }

    async fn post_attachment(
        &self,
        mailbox: &str,
        id: &str,
        a: &Offloaded,
    ) -> Result<(), DeliveryError> {
        let url = self.url(mailbox, &["messages", id, "attachments"])?;
        let mut v = json!({
            "@odata.type": "#microsoft.graph.fileAttachment",
            "name": a.name,
            "contentType": a.content_type,
            "contentBytes": base64::engine::general_purpose::STANDARD.encode(&a.bytes),
            "isInline": a.is_inline,
        });
        if let Some(cid) = &a.content_id {
            v["contentId"] = Value::from(cid.as_str());
        }
        self.post(
            "add attachment",
            &url,
            Some("application/json"),
            encode_json(&v)?,
        )
        .await?;
        Ok(())
    }

    async fn upload_attachment(
        &self,
        mailbox: &str,
        id: &str,
        a: &Offloaded,
    ) -> Result<(), DeliveryError> {
        let url = self.url(
            mailbox,
            &["messages", id, "attachments", "createUploadSession"],
        )?;
        let mut item = json!({
            "attachmentType": "file",
            "name": a.name,
            "size": a.bytes.len(),
            "contentType": a.content_type,
            "isInline": a.is_inline,
        });
        if let Some(cid) = &a.content_id {
            item["contentId"] = Value::from(cid.as_str());
        }
        let body = encode_json(&json!({ "AttachmentItem": item }))?;
        let r = self
            .post(
                "create upload session",
                &url,
                Some("application/json"),
                body,
            )
            .await?;
        let upload_url = r
            .json()
            .and_then(|v| {
                v.get("uploadUrl")
                    .and_then(Value::as_str)
                    .map(str::to_string)
            })
            .ok_or_else(|| DeliveryError::transient("create upload session: no uploadUrl"))?;
        // The URL carries its own token: never shown, never sent elsewhere.
        let upload_url = https_url(&self.name, "uploadUrl", &upload_url).map_err(|_| {
            DeliveryError::transient("create upload session: uploadUrl is not https")
        })?;
        let total = a.bytes.len();
        let mut start = 0;
        // Each round moves forward (or the server resets us to an earlier
        // offset); bound the rounds so a confused server cannot loop us.
        for _ in 0..(total / UPLOAD_CHUNK + 1) * 3 {
            let end = (start + UPLOAD_CHUNK).min(total);
            let r = self
                .tokens
                .execute(
                    self.client
                        .put(upload_url.clone())
                        .header(CONTENT_TYPE, "application/octet-stream")
                        .header(CONTENT_RANGE, format!("bytes {start}-{}/{total}", end - 1))
                        .body(a.bytes[start..end].to_vec()),
                )
                .await?;
            if matches!(r.status.as_u16(), 401 | 403) {
                return Err(DeliveryError::transient(format!(
                    "attachment upload: HTTP {} (upload session expired or refused)",
                    r.status.as_u16()
                )));
            }
            // A refused range is a hiccup of this session, not a verdict on
            // the message (createUploadSession already judged that): the
            // whole message is tried again with a new draft.
            if let Err(e) = self.tokens.check("attachment upload", &r) {
                return Err(match e {
                    DeliveryError::Permanent { reason } => DeliveryError::transient(reason),
                    transient => transient,
                });
            }
            if r.status == reqwest::StatusCode::CREATED {
                return Ok(());
            }
            start = next_expected(&r.body).filter(|&n| n < total).unwrap_or(end);
            if end == total && start == total {
                // All bytes sent and accepted without a 201: Graph's own
                // completion signal is missing, but nothing is left to send.
                return Ok(());
            }
        }
        Err(DeliveryError::transient(
            "attachment upload: server kept asking for ranges already sent",
        ))
    }

    async fn delete_draft(&self, mailbox: &str, id: &str) {
        let Ok(url) = self.url(mailbox, &["messages", id]) else {
            return;
        };
        match self.tokens.send(|| self.client.delete(url.clone())).await {
            Ok(r) if r.status.is_success() => {}
            Ok(r) => {
                tracing::warn!(upstream = %self.name, status = r.status.as_u16(), "cannot delete the unsent Graph draft; it stays in the mailbox's Drafts")
            }
            Err(e) => {
                tracing::warn!(upstream = %self.name, reason = %e, "cannot delete the unsent Graph draft; it stays in the mailbox's Drafts")
            }
        }
    }
}

/// The first `nextExpectedRanges` start ("2097152-" or "2097152").
fn next_expected(body: &[u8]) -> Option<usize> {
    let v: Value = serde_json::from_slice(body).ok()?;
    let first = v.get("nextExpectedRanges")?.as_array()?.first()?.as_str()?;
    first.split('-').next()?.trim().parse().ok()
}

fn encode_json(v: &Value) -> Result<Vec<u8>, DeliveryError> {
    serde_json::to_vec(v).map_err(|e| DeliveryError::permanent(format!("cannot encode JSON: {e}")))
}

/// Graph's `request-id` (sendMail answers 202 with no body).
fn request_id(headers: &HeaderMap) -> Option<String> {
    headers
        .get("request-id")
        .and_then(|v| v.to_str().ok())
        .map(|v| sanitize(v, MAX_ID))
        .filter(|v| !v.is_empty())
}

/// A timeout while building the draft cannot have sent anything (only
/// "send draft" can), so it is an ordinary transient failure, not an
/// ambiguous one that `on_ambiguous = "dead-letter"` would give up on.
fn nothing_sent(e: DeliveryError) -> DeliveryError {
    if e.is_ambiguous() {
        DeliveryError::transient(e.reason().to_string())
    } else {
        e
    }
}
