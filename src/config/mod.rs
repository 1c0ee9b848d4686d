//! Configuration: TOML schema, validation, secret references and includes.
//!
//! `load` turns one main file (plus its `include`d files) into a validated
//! [`Config`] or a list of located errors. Everything downstream works on the
//! validated types only, so a running daemon never meets a dangling route or
//! an unresolved secret.

pub mod abuse;
mod admin;
mod alerts;
mod cluster;
mod console;
mod credential;
pub mod dkim;
mod error;
pub mod inspect;
mod load;
pub mod quota;
mod schema;
pub mod units;
mod upstream_api;
mod upstream_ctx;
mod upstream_oauth;
mod upstreams;
pub mod validation;

pub use error::{ConfigError, ConfigErrors, Loc};
pub use load::{DEMO_CONFIG, load, load_str};
pub use schema::{LogFormat, TlsMode};

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
    pub delivery: crate::deliver::Settings,
    pub log: Log,
    pub credentials: BTreeMap<String, crate::access::Credential>,
    pub routes: BTreeMap<String, Route>,
    pub upstreams: BTreeMap<String, UpstreamEntry>,
    pub dkim: crate::dkim::Settings,
    pub inspect: crate::inspect::Settings,
    pub validation: crate::validate::Settings,
    /// `[quota]`: rate limits per credential, sender, domain, IP.
    pub quota: crate::quota::Settings,
    /// `[admin]`: the metrics and health listener, when configured.
    pub admin: Option<crate::admin::Settings>,
    /// `[alerts]`: anomaly detectors, when configured.
    pub alerts: Option<crate::alerts::Settings>,
    /// `[abuse]`: AUTH lockout and connection rate.
    pub abuse: crate::access::abuse::Settings,
    /// `[cluster]`: shared state in Redis, when configured.
    pub cluster: Option<crate::cluster::Settings>,
    /// Every file that was read, main file first.
    pub files: Vec<PathBuf>,
}

#[derive(Debug, Clone)]
pub struct Server {
    pub hostname: String,
    pub state_dir: PathBuf,
    pub max_message_size: u64,
    /// Space the spool's file system must keep free after a new message
    /// (`SIZE=` counted in): below it MAIL gets `452 4.3.1`.
    pub min_free_space: u64,
    pub max_recipients: usize,
    pub bare_newline: crate::smtp::data::BareNewline,
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
    /// `proxy_protocol = true`: the load balancers whose PROXY header is
    /// believed; None when the listener takes clients directly.
    pub proxy: Option<std::sync::Arc<crate::cluster::proxy::Trusted>>,
}

#[derive(Debug, Clone)]
pub struct Log {
    pub format: LogFormat,
    pub level: String,
    /// The audit events, also as JSON lines in this file.
    pub audit_file: Option<PathBuf>,
}

#[derive(Debug, Clone)]
pub struct Route {
    pub upstreams: Vec<String>,
}

/// One configured upstream: its kind's own settings plus options every
/// kind shares.
#[derive(Debug, Clone)]
pub struct UpstreamEntry {
    pub settings: crate::upstream::Settings,
    /// Deliver postern's DKIM signatures through this upstream (default
    /// true; false for APIs that rebuild the message and sign themselves).
    pub dkim: bool,
    /// At most this many requests in flight to this upstream.
    pub max_concurrency: Option<usize>,
    /// At most this many messages per period, evenly spaced.
    pub rate: Option<crate::quota::Rate>,
    /// What a request that timed out after being sent means.
    pub on_ambiguous: crate::deliver::OnAmbiguous,
    /// Consecutive transient failures that open the circuit breaker.
    pub breaker_failures: u32,
    /// How long an open breaker skips the upstream before one probe.
    pub breaker_cooldown: Duration,
    /// Keep provider control headers of client messages (default false:
    /// they are stripped before signing unless every upstream of the
    /// message's route passes them).
    pub pass_control_headers: bool,
}

#[cfg(test)]
mod test_util;
#[cfg(test)]
mod tests;
