//! Configuration: TOML schema, validation, secret references and includes.
//!
//! `load` turns one main file (plus its `include`d files) into a validated
//! [`Config`] or a list of located errors. Everything downstream works on the
//! validated types only, so a running daemon never meets a dangling route or
//! an unresolved secret.

mod credential;
pub mod dkim;
mod error;
pub mod inspect;
mod load;
pub mod quota;
mod schema;
pub mod secret;
pub mod units;
mod upstream_api;
mod upstream_ctx;
mod upstream_oauth;
mod upstreams;
pub mod validation;

pub use credential::{Credential, Login, SecretHash};
pub use error::{ConfigError, ConfigErrors, Loc};
pub use load::{DEMO_CONFIG, load, load_str};
pub use schema::{BareNewlineSetting, LogFormat, TlsMode};
pub use secret::Secret;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// Default location of the main configuration file.
pub const DEFAULT_PATH: &str = "/etc/postern/postern.toml";

/// The whole validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub server: Server,
    pub tls: Option<TlsSource>,
    pub listeners: Vec<Listener>,
    pub delivery: Delivery,
    pub log: Log,
    pub credentials: BTreeMap<String, Credential>,
    pub routes: BTreeMap<String, Route>,
    pub upstreams: BTreeMap<String, Upstream>,
    pub dkim: dkim::DkimConfig,
    pub inspect: inspect::InspectConfig,
    pub validation: validation::ValidationConfig,
    /// `[quota]`: rate limits per credential, sender, domain, IP.
    pub quota: quota::QuotaConfig,
    /// `[abuse]`: AUTH lockout and connection rate.
    pub abuse: quota::AbuseConfig,
    /// Every file that was read, main file first.
    pub files: Vec<PathBuf>,
}

#[derive(Debug, Clone)]
pub struct Server {
    pub hostname: String,
    pub state_dir: PathBuf,
    pub max_message_size: u64,
    pub max_recipients: usize,
    pub bare_newline: BareNewlineSetting,
    pub max_line_length: usize,
    pub command_timeout: Duration,
    pub data_timeout: Duration,
    pub max_bad_commands: u32,
    pub max_connections: usize,
    pub max_connections_per_ip: usize,
    pub shutdown_timeout: Duration,
    /// A reply (or batch of pipelined replies) not written within this
    /// closes the connection: a client that never reads holds no slot.
    pub write_timeout: Duration,
    /// Implicit TLS and STARTTLS handshakes must finish within this.
    pub tls_handshake_timeout: Duration,
    /// A session open this long gets `421 4.4.2` and is closed.
    pub max_session_duration: Duration,
    /// NOOP, RSET, HELP, VRFY, EXPN and repeated EHLO/HELO allowed per
    /// session before each further one counts as a bad command.
    pub max_junk_commands: u32,
    /// RCPT commands per session, over all its transactions.
    pub max_rcpt_commands: u32,
}

#[derive(Debug, Clone)]
pub enum TlsSource {
    Files {
        certificate: PathBuf,
        private_key: PathBuf,
    },
    /// A throwaway certificate generated at start, for demos and first tests.
    SelfSigned,
}

#[derive(Debug, Clone)]
pub struct Listener {
    pub address: SocketAddr,
    pub tls: TlsMode,
}

#[derive(Debug, Clone)]
pub struct Delivery {
    pub workers: usize,
    pub retry_initial: Duration,
    pub retry_max: Duration,
    pub max_age: Duration,
}

#[derive(Debug, Clone)]
pub struct Log {
    pub format: LogFormat,
    pub level: String,
}

#[derive(Debug, Clone)]
pub struct Route {
    pub upstreams: Vec<String>,
}

/// One configured upstream: its kind-specific settings plus options every
/// kind shares.
#[derive(Debug, Clone)]
pub struct Upstream {
    pub kind: UpstreamKind,
    /// Deliver postern's DKIM signatures through this upstream (default
    /// true; false for APIs that rebuild the message and sign themselves).
    pub dkim: bool,
    /// At most this many requests in flight to this upstream.
    pub max_concurrency: Option<usize>,
    /// At most this many messages per period, evenly spaced.
    pub rate: Option<crate::quota::Rate>,
    /// What a request that timed out after being sent means.
    pub on_ambiguous: OnAmbiguous,
    /// Consecutive transient failures that open the circuit breaker.
    pub breaker_failures: u32,
    /// How long an open breaker skips the upstream before one probe.
    pub breaker_cooldown: Duration,
}

/// `on_ambiguous`: the upstream may or may not have taken the message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OnAmbiguous {
    /// Try again (possibly a duplicate; logged as such).
    #[default]
    Retry,
    /// Never risk a duplicate: move the message to dead letters.
    DeadLetter,
}

#[derive(Debug, Clone)]
pub enum UpstreamKind {
    Http(HttpUpstream),
    Directory { path: PathBuf },
    Ses(SesUpstream),
    Sendgrid(SendgridUpstream),
    Mailgun(MailgunUpstream),
    Postmark(PostmarkUpstream),
    Resend(ResendUpstream),
    Msgraph(MsgraphUpstream),
    Gmail(GmailUpstream),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HttpFormat {
    Raw,
    Json,
}

#[derive(Debug, Clone)]
pub enum HttpAuth {
    Bearer(Secret),
    Basic { username: String, password: Secret },
}

#[derive(Debug, Clone)]
pub struct HttpUpstream {
    pub url: String,
    pub format: HttpFormat,
    pub auth: Option<HttpAuth>,
    pub timeout: Duration,
    pub ca_file: Option<PathBuf>,
}

/// Where and how a provider API is reached (every provider kind has one).
#[derive(Debug, Clone)]
pub struct ApiEndpoint {
    /// API root without trailing slash: the provider's default (for its
    /// region) or the `base_url` override.
    pub base_url: String,
    pub timeout: Duration,
    pub ca_file: Option<PathBuf>,
}

/// `kind = "ses"`: Amazon SES v2 with a raw MIME message.
#[derive(Debug, Clone)]
pub struct SesUpstream {
    pub endpoint: ApiEndpoint,
    pub region: String,
    pub access_key_id: Secret,
    pub secret_access_key: Secret,
    pub session_token: Option<Secret>,
    pub configuration_set: Option<String>,
}

/// `kind = "sendgrid"`.
#[derive(Debug, Clone)]
pub struct SendgridUpstream {
    pub endpoint: ApiEndpoint,
    pub api_key: Secret,
    pub categories: Vec<String>,
}

/// `kind = "mailgun"`; the region is folded into `endpoint.base_url`.
#[derive(Debug, Clone)]
pub struct MailgunUpstream {
    pub endpoint: ApiEndpoint,
    pub domain: String,
    pub api_key: Secret,
}

/// `kind = "postmark"`.
#[derive(Debug, Clone)]
pub struct PostmarkUpstream {
    pub endpoint: ApiEndpoint,
    pub server_token: Secret,
    pub message_stream: Option<String>,
}

/// `kind = "resend"`.
#[derive(Debug, Clone)]
pub struct ResendUpstream {
    pub endpoint: ApiEndpoint,
    pub api_key: Secret,
}

/// `kind = "msgraph"`: Microsoft Graph, OAuth client credentials.
#[derive(Debug, Clone)]
pub struct MsgraphUpstream {
    /// Default `https://graph.microsoft.com`.
    pub endpoint: ApiEndpoint,
    /// Default `https://login.microsoftonline.com/{tenant_id}/oauth2/v2.0/token`.
    pub token_url: Option<String>,
    pub tenant_id: String,
    pub client_id: String,
    pub credential: MsgraphCredential,
    /// Send as this mailbox; default: the message's From address.
    pub mailbox: Option<String>,
    pub save_to_sent_items: bool,
}

/// How a msgraph upstream proves its identity to Entra ID.
#[derive(Debug, Clone)]
pub enum MsgraphCredential {
    Secret(Secret),
    /// PEM certificate registered with the app, and its private key.
    Certificate {
        certificate: PathBuf,
        key: Secret,
    },
}

/// `kind = "gmail"`: Gmail API, service account with domain-wide delegation.
#[derive(Debug, Clone)]
pub struct GmailUpstream {
    /// Default `https://gmail.googleapis.com`.
    pub endpoint: ApiEndpoint,
    /// Default: the key's `token_uri`.
    pub token_url: Option<String>,
    /// The service account's JSON key file contents.
    pub service_account_key: Secret,
    /// The Workspace user to send as (`sub` of the assertion).
    pub user: String,
}

#[cfg(test)]
mod credential_tests;
#[cfg(test)]
mod test_util;
#[cfg(test)]
mod tests;
