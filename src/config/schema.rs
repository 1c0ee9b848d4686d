//! The TOML file shape, exactly as an operator writes it.
//!
//! These types mirror the file one to one (`deny_unknown_fields` everywhere,
//! so a typo is an error, not a silently ignored key). Positions are kept
//! (`Spanned`) on values that later checks refer to, so that a dangling
//! reference or an unresolvable secret can be reported at its line.

use super::units::{Dur, Size};
use serde::Deserialize;
use std::collections::BTreeMap;
use toml::Spanned;

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawFile {
    #[serde(default)]
    pub include: Vec<Spanned<String>>,
    pub server: Option<Spanned<RawServer>>,
    pub tls: Option<Spanned<RawTls>>,
    #[serde(default)]
    pub listeners: Vec<Spanned<RawListener>>,
    pub delivery: Option<Spanned<RawDelivery>>,
    pub log: Option<Spanned<RawLog>>,
    #[serde(default)]
    pub credentials: BTreeMap<String, Spanned<RawCredential>>,
    #[serde(default)]
    pub routes: BTreeMap<String, Spanned<RawRoute>>,
    #[serde(default)]
    pub upstreams: BTreeMap<String, Spanned<RawUpstream>>,
    #[serde(default)]
    pub dkim: Vec<Spanned<super::dkim::RawDkimKey>>,
    pub dkim_policy: Option<Spanned<super::dkim::RawDkimPolicy>>,
    pub inspect: Option<Spanned<super::inspect::RawInspect>>,
    pub validation: Option<Spanned<super::validation::RawValidation>>,
    pub quota: Option<Spanned<super::quota::RawQuota>>,
    pub abuse: Option<Spanned<super::abuse::RawAbuse>>,
    pub admin: Option<Spanned<super::admin::RawAdmin>>,
    pub alerts: Option<Spanned<super::alerts::RawAlerts>>,
    pub cluster: Option<Spanned<super::cluster::RawCluster>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawServer {
    pub hostname: Option<String>,
    pub state_dir: Option<Spanned<String>>,
    pub max_message_size: Option<Size>,
    pub min_free_space: Option<Size>,
    pub max_recipients: Option<Spanned<usize>>,
    pub bare_newline: Option<crate::smtp::data::BareNewline>,
    pub max_line_length: Option<usize>,
    pub command_timeout: Option<Dur>,
    pub data_timeout: Option<Dur>,
    pub max_bad_commands: Option<u32>,
    pub max_connections: Option<usize>,
    pub max_connections_per_ip: Option<usize>,
    pub shutdown_timeout: Option<Dur>,
    pub write_timeout: Option<Spanned<Dur>>,
    pub tls_handshake_timeout: Option<Spanned<Dur>>,
    pub max_session_duration: Option<Spanned<Dur>>,
    pub max_junk_commands: Option<Spanned<u32>>,
    pub max_rcpt_commands: Option<Spanned<u32>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTls {
    pub certificate: Option<Spanned<String>>,
    pub private_key: Option<Spanned<String>>,
    #[serde(default)]
    pub self_signed: bool,
}

#[derive(Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum TlsMode {
    Starttls,
    Implicit,
    None,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawListener {
    pub address: Spanned<String>,
    pub tls: TlsMode,
    /// Connections start with a PROXY v1/v2 header from a load balancer.
    #[serde(default)]
    pub proxy_protocol: bool,
    /// The load balancers allowed to send that header (CIDRs).
    pub trusted_proxies: Option<Spanned<Vec<String>>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawDelivery {
    pub workers: Option<usize>,
    pub retry_initial: Option<Dur>,
    pub retry_max: Option<Dur>,
    pub max_age: Option<Dur>,
}

#[derive(Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Auto,
    Journald,
    Json,
    Text,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawLog {
    pub format: Option<LogFormat>,
    pub level: Option<Spanned<String>>,
    pub audit_file: Option<Spanned<String>>,
}

pub use super::credential::RawCredential;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRoute {
    pub upstreams: Vec<Spanned<String>>,
}

/// One flat table for every upstream kind: serde's internally tagged enums
/// lose positions and give poor "unknown key" errors, so the per-kind key
/// check happens in `load` with a message that names the kind.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawUpstream {
    pub kind: Spanned<String>,
    pub url: Option<Spanned<String>>,
    pub format: Option<Spanned<String>>,
    pub bearer_token: Option<Spanned<String>>,
    pub basic_username: Option<Spanned<String>>,
    pub basic_password: Option<Spanned<String>>,
    pub timeout: Option<Dur>,
    pub ca_file: Option<Spanned<String>>,
    pub path: Option<Spanned<String>>,
    /// Whether messages through this upstream carry postern's DKIM
    /// signatures (false for APIs that rebuild the message).
    pub dkim: Option<bool>,
    /// API root override for the provider kinds (tests, proxies, regions).
    pub base_url: Option<Spanned<String>>,
    /// ses: AWS region; mailgun: "us" or "eu".
    pub region: Option<Spanned<String>>,
    pub access_key_id: Option<Spanned<String>>,
    pub secret_access_key: Option<Spanned<String>>,
    pub session_token: Option<Spanned<String>>,
    pub configuration_set: Option<Spanned<String>>,
    /// sendgrid, mailgun, resend.
    pub api_key: Option<Spanned<String>>,
    pub categories: Option<Spanned<Vec<String>>>,
    /// mailgun: `o:tag` values; postmark: `Tag`.
    pub tags: Option<Spanned<Vec<String>>>,
    pub tag: Option<Spanned<String>>,
    pub domain: Option<Spanned<String>>,
    pub server_token: Option<Spanned<String>>,
    pub message_stream: Option<Spanned<String>>,
    /// msgraph and gmail: OAuth token endpoint override.
    pub token_url: Option<Spanned<String>>,
    /// msgraph: Entra app registration and the mailbox to send as.
    pub tenant_id: Option<Spanned<String>>,
    pub client_id: Option<Spanned<String>>,
    pub client_secret: Option<Spanned<String>>,
    pub client_certificate: Option<Spanned<String>>,
    pub client_key: Option<Spanned<String>>,
    pub mailbox: Option<Spanned<String>>,
    pub save_to_sent_items: Option<bool>,
    /// gmail: service account JSON key (secret reference) and the user to send as.
    pub service_account_key: Option<Spanned<String>>,
    pub user: Option<Spanned<String>>,
    /// Outbound pacing (any kind): requests in flight, and `"30/min"`.
    pub max_concurrency: Option<Spanned<i64>>,
    pub rate: Option<Spanned<String>>,
    /// A request that timed out after it was sent: `"retry"` or `"dead-letter"`.
    pub on_ambiguous: Option<Spanned<String>>,
    /// Circuit breaker: consecutive transient failures that open it, and
    /// how long it stays open before one probe.
    pub breaker_failures: Option<Spanned<i64>>,
    pub breaker_cooldown: Option<Dur>,
    /// msgraph and gmail: `"refuse"` or `"drop"` header-only recipients.
    pub header_recipients: Option<Spanned<String>>,
    /// Any kind: let client messages steer the provider account with its
    /// control headers (X-SES-*, X-Mailgun-*, X-SMTPAPI, X-PM-*).
    pub pass_control_headers: Option<bool>,
}
