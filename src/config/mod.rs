//! Configuration: TOML schema, validation, secret references and includes.
//!
//! `load` turns one main file (plus its `include`d files) into a validated
//! [`Config`] or a list of located errors. Everything downstream works on the
//! validated types only, so a running daemon never meets a dangling route or
//! an unresolved secret.

pub mod dkim;
mod error;
pub mod inspect;
mod load;
mod schema;
pub mod secret;
pub mod units;
mod upstreams;
pub mod validation;

pub use error::{ConfigError, ConfigErrors, Loc};
pub use load::{DEMO_CONFIG, load, load_str};
pub use schema::{BareNewlineSetting, LogFormat, TlsMode};
pub use secret::Secret;

use ipnet::IpNet;
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

/// One application's identity and what it may do.
#[derive(Debug, Clone)]
pub struct Credential {
    pub name: String,
    /// Set for credentials that log in with AUTH.
    pub login: Option<Login>,
    /// Source networks trusted without AUTH.
    pub networks: Vec<IpNet>,
    /// Envelope-sender patterns: `user@domain`, `*@domain`, or `*` for any.
    pub allowed_senders: Vec<String>,
    /// From-header patterns (same syntax); empty means `allowed_senders`.
    pub allowed_from: Vec<String>,
    pub route: String,
}

#[derive(Debug, Clone)]
pub struct Login {
    pub username: String,
    /// argon2id PHC string.
    pub secret_hash: String,
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
}

#[derive(Debug, Clone)]
pub enum UpstreamKind {
    Http(HttpUpstream),
    Directory { path: PathBuf },
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

#[cfg(test)]
mod tests;
