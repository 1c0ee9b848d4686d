//! `kind = "gmail"`: sends through the Gmail API as a Google Workspace user.
//!
//! A service account with domain-wide delegation signs an RS256 assertion
//! naming the user to act as (`sub`) and the `gmail.send` scope, and trades
//! it for an access token. The message goes unchanged (media upload,
//! `message/rfc822`) to `users/{user}/messages/send`; Gmail takes up to
//! 35 MB that way and answers with its message id.

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use mail_parser::MessageParser;
use reqwest::Url;
use reqwest::header::CONTENT_TYPE;
use serde::Deserialize;
use serde_json::Value;

use super::jwt::RsaSigner;
use super::oauth::{Grant, TokenCache, api_client, https_url};
use super::recipients::{envelope_only_headers, with_envelope_bcc};
use super::{Delivered, DeliveryError, OutboundMessage, UpstreamError, sanitize};
use crate::inspect::recipients::HeaderRecipients;

pub const DEFAULT_BASE_URL: &str = "https://gmail.googleapis.com";
pub const DEFAULT_TOKEN_URI: &str = "https://oauth2.googleapis.com/token";
pub const SEND_SCOPE: &str = "https://www.googleapis.com/auth/gmail.send";
/// Gmail's limit for `messages.send` media uploads.
pub const MAX_MESSAGE_SIZE: u64 = 35 * 1024 * 1024;

/// The fields postern needs from a service account's JSON key file.
#[derive(Clone, Deserialize)]
pub struct ServiceAccountKey {
    pub client_email: String,
    pub private_key: String,
    #[serde(default)]
    pub private_key_id: Option<String>,
    #[serde(default)]
    pub token_uri: Option<String>,
}

impl fmt::Debug for ServiceAccountKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServiceAccountKey")
            .field("client_email", &self.client_email)
            .field("private_key", &"<redacted>")
            .finish_non_exhaustive()
    }
}

impl ServiceAccountKey {
    /// Parses the key file and checks that its key can sign. The error
    /// never quotes the file (it is a secret).
    pub fn parse(json: &str) -> Result<(ServiceAccountKey, RsaSigner), String> {
        let key: ServiceAccountKey = serde_json::from_str(json).map_err(|e| {
            format!(
                "not a service account JSON key (line {}, column {}: {}); download one in the Google Cloud console under IAM > Service accounts > Keys",
                e.line(),
                e.column(),
                match e.classify() {
                    serde_json::error::Category::Data => "missing client_email or private_key",
                    _ => "invalid JSON",
                }
            )
        })?;
        if !key.client_email.contains('@') {
            return Err("client_email is not an address".to_string());
        }
        let signer = RsaSigner::from_pem(&key.private_key).map_err(|e| e.to_string())?;
        Ok((key, signer))
    }
}

/// Settings of one `kind = "gmail"` upstream, secrets resolved.
#[derive(Clone)]
pub struct GmailConfig {
    /// Contents of the service account JSON key file.
    pub service_account_key: String,
    /// The Workspace user to send as.
    pub user: String,
    pub base_url: Option<String>,
    /// Token endpoint; default: the key's `token_uri`.
    pub token_url: Option<String>,
    pub timeout: Duration,
    pub ca_file: Option<PathBuf>,
    pub header_recipients: HeaderRecipients,
}

impl fmt::Debug for GmailConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GmailConfig")
            .field("service_account_key", &"<redacted>")
            .field("user", &self.user)
            .field("base_url", &self.base_url)
            .field("token_url", &self.token_url)
            .field("timeout", &self.timeout)
            .field("ca_file", &self.ca_file)
            .field("header_recipients", &self.header_recipients)
            .finish()
    }
}

impl GmailConfig {
    /// From the validated `[upstreams.NAME]` table.
    pub fn from_config(c: &crate::config::GmailUpstream) -> GmailConfig {
        GmailConfig {
            service_account_key: c.service_account_key.expose().to_string(),
            user: c.user.clone(),
            base_url: Some(c.endpoint.base_url.clone()),
            token_url: c.token_url.clone(),
            timeout: c.endpoint.timeout,
            ca_file: c.endpoint.ca_file.clone(),
            header_recipients: c.header_recipients,
        }
    }
}

/// One service account acting as one user.
pub struct GmailUpstream {
    name: String,
    header_recipients: HeaderRecipients,
    send_url: Url,
    client: reqwest::Client,
    tokens: TokenCache,
}

impl fmt::Debug for GmailUpstream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GmailUpstream")
            .field("name", &self.name)
            .field("send_url", &self.send_url.as_str())
            .field("tokens", &self.tokens)
            .finish_non_exhaustive()
    }
}

impl GmailUpstream {
    pub fn new(name: &str, config: GmailConfig) -> Result<Self, UpstreamError> {
        let (key, signer) =
            ServiceAccountKey::parse(&config.service_account_key).map_err(|reason| {
                UpstreamError::Other {
                    name: name.to_string(),
                    reason: format!("service_account_key: {reason}"),
                }
            })?;
        let mut send_url = https_url(
            name,
            "base_url",
            config.base_url.as_deref().unwrap_or(DEFAULT_BASE_URL),
        )?;
        send_url
            .path_segments_mut()
            .map_err(|_| UpstreamError::InvalidUrl {
                name: name.to_string(),
                url: config.base_url.clone().unwrap_or_default(),
                reason: "base_url cannot take a path".to_string(),
            })?
            .pop_if_empty()
            .extend([
                "upload",
                "gmail",
                "v1",
                "users",
                &config.user,
                "messages",
                "send",
            ]);
        send_url.set_query(Some("uploadType=media"));
        // The assertion's audience is the endpoint Google issued the key
        // for; `token_url` only changes where it is posted.
        let audience = key
            .token_uri
            .clone()
            .unwrap_or_else(|| DEFAULT_TOKEN_URI.to_string());
        let token_url = https_url(
            name,
            "token_url",
            config.token_url.as_deref().unwrap_or(&audience),
        )?;
        let grant = Grant::JwtBearer {
            issuer: key.client_email,
            subject: config.user.clone(),
            scope: SEND_SCOPE.to_string(),
            audience,
            key_id: key.private_key_id,
            signer: Arc::new(signer),
        };
        let client = api_client(name, config.ca_file.as_deref(), config.timeout)?;
        Ok(GmailUpstream {
            name: name.to_string(),
            header_recipients: config.header_recipients,
            send_url,
            tokens: TokenCache::new(name, client.clone(), token_url, grant, config.timeout),
            client,
        })
    }

    async fn send(&self, msg: &OutboundMessage<'_>) -> Result<Delivered, DeliveryError> {
        let data = envelope_only_headers(
            &self.name,
            msg.id,
            msg.data,
            msg.rcpt_to,
            self.header_recipients,
        )?;
        let parsed = MessageParser::default().parse(&data[..]);
        let data = with_envelope_bcc(&data, parsed.as_ref(), msg.rcpt_to).into_owned();
        drop(parsed);
        let r = self
            .tokens
            .send(|| {
                self.client
                    .post(self.send_url.clone())
                    .header(CONTENT_TYPE, "message/rfc822")
                    .body(data.to_vec())
            })
            .await?;
        self.tokens.check("messages.send", &r)?;
        let id = r
            .json()
            .and_then(|v| {
                v.get("id")
                    .and_then(Value::as_str)
                    .map(|s| sanitize(s, 200))
            })
            .filter(|s| !s.is_empty());
        Ok(Delivered { upstream_id: id })
    }
}

super::provider_upstream!(GmailUpstream, MAX_MESSAGE_SIZE);
