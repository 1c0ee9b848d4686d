//! What `[validation]` configures, as the checks use it: built by `config`
//! (which checks every pattern, url, secret and file at load time), owned
//! here.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use super::DomainPattern;
use crate::secret::Secret;

/// What to answer when the hook cannot give a verdict.
#[derive(Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum OnError {
    /// Accept the recipient (verification is best effort).
    #[default]
    Accept,
    /// `451 4.4.3`, so the client retries later.
    Tempfail,
}

#[derive(Debug, Clone)]
pub struct Settings {
    pub allowed_recipient_domains: Vec<DomainPattern>,
    pub denied_recipient_domains: Vec<DomainPattern>,
    pub check_recipient_domain: bool,
    /// Accept recipients whose quoted local part holds characters that an
    /// address-list parser could split on (`"a, b@evil"@example.com`).
    pub allow_quoted_local_parts: bool,
    /// Upper bound for one recipient's DNS check (all queries together).
    pub dns_timeout: Duration,
    /// One DNS server for all lookups instead of the system's.
    pub resolver: Option<SocketAddr>,
    pub hook: Option<HookSettings>,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            allowed_recipient_domains: Vec::new(),
            denied_recipient_domains: Vec::new(),
            check_recipient_domain: false,
            allow_quoted_local_parts: false,
            dns_timeout: DEFAULT_DNS_TIMEOUT,
            resolver: None,
            hook: None,
        }
    }
}

#[derive(Debug, Clone)]
pub struct HookSettings {
    /// An `https://` URL.
    pub url: String,
    pub timeout: Duration,
    pub on_error: OnError,
    pub bearer_token: Option<Secret>,
    pub ca_file: Option<PathBuf>,
}

pub const DEFAULT_DNS_TIMEOUT: Duration = Duration::from_secs(5);
pub const DEFAULT_HOOK_TIMEOUT: Duration = Duration::from_secs(5);

/// `"127.0.0.1:5353"`, `"[::1]:53"` or a bare IP (port 53).
pub fn parse_resolver(text: &str) -> Result<SocketAddr, String> {
    let t = text.trim();
    t.parse::<SocketAddr>()
        .or_else(|_| t.parse::<IpAddr>().map(|ip| SocketAddr::new(ip, 53)))
        .map_err(|_| {
            format!("{t:?} is not a DNS server address like \"127.0.0.1:53\" or \"[::1]:53\"")
        })
}
