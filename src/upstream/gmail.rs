//! `kind = "gmail"`: sends through the Gmail API as a Google Workspace user.
//!
//! A service account with domain-wide delegation signs an RS256 assertion
//! naming the user to act as (`sub`) and the `gmail.send` scope, and trades
//! it for an access token. The message goes unchanged (media upload,
//! `message/rfc822`) to `users/{user}/messages/send`; Gmail takes up to
//! 35 MB that way and answers with its message id.

use std::sync::Arc;

use mail_parser::MessageParser;
use reqwest::Url;
use reqwest::header::CONTENT_TYPE;
use serde::Deserialize;
use serde_json::Value;

use super::api::Endpoint;
use super::jwt::RsaSigner;
use super::oauth::{TokenCache, TokenGrant, api_client, https_url};
use super::recipients::{envelope_only_headers, with_envelope_bcc};
use super::{Delivered, DeliveryError, OutboundMessage, Provider, UpstreamError, sanitize};
use crate::inspect::recipients::HeaderRecipients;
use crate::secret::Secret;

pub const DEFAULT_BASE_URL: &str = "https://gmail.googleapis.com";
pub const DEFAULT_TOKEN_URI: &str = "https://oauth2.googleapis.com/token";
pub const SEND_SCOPE: &str = "https://www.googleapis.com/auth/gmail.send";
/// Gmail's limit for `messages.send` media uploads.
pub const MAX_MESSAGE_SIZE: u64 = 35 * 1024 * 1024;

/// The parts of a service account's JSON key file postern reads.
#[derive(Deserialize)]
struct KeyFile {
    client_email: String,
    private_key: String,
    #[serde(default)]
    private_key_id: Option<String>,
    #[serde(default)]
    token_uri: Option<String>,
}

/// A service account key, parsed and checked to sign when the
/// configuration is loaded, so a bad key is a located config error.
#[derive(Debug, Clone)]
pub struct ServiceAccount {
    pub client_email: String,
    pub key_id: Option<String>,
    /// The endpoint Google issued the key for (the assertion's audience).
    pub token_uri: Option<String>,
    pub signer: Arc<RsaSigner>,
}

impl ServiceAccount {
    /// Parses the key file (a secret: errors never quote it).
    pub fn parse(json: &Secret) -> Result<ServiceAccount, String> {
        let key: KeyFile = serde_json::from_str(json.expose()).map_err(|e| {
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
        Ok(ServiceAccount {
            client_email: key.client_email,
            key_id: key.private_key_id,
            token_uri: key.token_uri,
            signer: Arc::new(signer),
        })
    }
}

/// `[upstreams.NAME]` of `kind = "gmail"`, validated.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Default `https://gmail.googleapis.com`.
    pub endpoint: Endpoint,
    /// Default: the key's `token_uri`.
    pub token_url: Option<String>,
    pub key: ServiceAccount,
    /// The Workspace user to send as (`sub` of the assertion).
    pub user: String,
    pub header_recipients: HeaderRecipients,
}

/// One service account acting as one user.
pub struct GmailUpstream {
    name: String,
    header_recipients: HeaderRecipients,
    send_url: Url,
    client: reqwest::Client,
    tokens: TokenCache,
}

impl GmailUpstream {
    pub fn new(name: &str, config: &Settings) -> Result<Self, UpstreamError> {
        let key = &config.key;
        let mut send_url = https_url(name, "base_url", &config.endpoint.base_url)?;
        send_url
            .path_segments_mut()
            .map_err(|_| UpstreamError::InvalidUrl {
                name: name.to_string(),
                url: config.endpoint.base_url.clone(),
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
        let grant = TokenGrant::JwtBearer {
            issuer: key.client_email.clone(),
            subject: config.user.clone(),
            scope: SEND_SCOPE.to_string(),
            audience,
            key_id: key.key_id.clone(),
            signer: Arc::clone(&key.signer),
        };
        let timeout = config.endpoint.timeout;
        let client = api_client(name, config.endpoint.ca_file.as_deref(), timeout)?;
        Ok(GmailUpstream {
            name: name.to_string(),
            header_recipients: config.header_recipients,
            send_url,
            tokens: TokenCache::new(name, client.clone(), token_url, grant, timeout),
            client,
        })
    }
}

impl Provider for GmailUpstream {
    fn token_status(&self) -> Option<super::oauth::TokenStatus> {
        Some(self.tokens.status())
    }

    fn max_message_size(&self) -> Option<u64> {
        Some(MAX_MESSAGE_SIZE)
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
