//! A `[credentials.NAME]` entry as the access layer uses it: built by
//! `config` (which checks every pattern, network and hash at load time),
//! owned here.

use crate::validate::DomainPattern;
use ipnet::IpNet;
use std::time::SystemTime;

/// One application's identity and what it may do.
#[derive(Debug, Clone)]
pub struct Credential {
    pub name: String,
    /// Set for credentials that log in with AUTH.
    pub login: Option<Login>,
    /// Without `login`: source networks trusted without AUTH. With it: the
    /// only networks the login may be used from (empty: anywhere).
    pub networks: Vec<IpNet>,
    /// Envelope-sender patterns: `user@domain`, `*@domain`, or `*` for any.
    pub allowed_senders: Vec<String>,
    /// From-header patterns (same syntax); empty means `allowed_senders`.
    pub allowed_from: Vec<String>,
    /// Recipient domains this credential may send to (empty: any).
    pub allowed_recipient_domains: Vec<DomainPattern>,
    pub denied_recipient_domains: Vec<DomainPattern>,
    /// Stricter than `[server]`'s, when set.
    pub max_recipients: Option<usize>,
    pub max_message_size: Option<u64>,
    pub route: String,
    /// After this instant the credential no longer works.
    pub expires: Option<SystemTime>,
    pub disabled: bool,
    /// `quota = { ... }`: overrides `[quota.credential]` for this credential.
    pub quota: Option<crate::quota::Limits>,
}

impl Credential {
    /// Neither disabled nor past `expires`.
    pub fn is_active(&self, now: SystemTime) -> bool {
        !self.disabled && self.expires.is_none_or(|e| now < e)
    }
}

#[derive(Debug, Clone)]
pub struct Login {
    pub username: String,
    /// Every accepted secret; at least one.
    pub secrets: Vec<SecretHash>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretHash {
    /// argon2id PHC string.
    pub phc: String,
    pub expires: Option<SystemTime>,
}

impl SecretHash {
    pub fn is_active(&self, now: SystemTime) -> bool {
        self.expires.is_none_or(|e| now < e)
    }
}
