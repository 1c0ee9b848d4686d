//! What `[[dkim]]` and `[dkim_policy]` configure, as the signer uses it:
//! built by `config` (which reads and parses the keys at load time), owned
//! here.

use super::{Algorithm, PrivateKey};
use serde::Deserialize;
use std::sync::Arc;
use std::time::SystemTime;

/// What happens to mail whose From domain has no key valid now.
#[derive(Deserialize, Debug, Clone, Copy, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum UnsignedPolicy {
    /// Pass it on unsigned.
    #[default]
    Allow,
    /// Answer `550 5.7.1 No DKIM key for domain D`.
    Reject,
}

/// One `[[dkim]]` entry, key loaded.
#[derive(Debug, Clone)]
pub struct Key {
    /// Lower-case A-label form.
    pub domain: String,
    pub selector: String,
    pub algorithm: Algorithm,
    pub key: Arc<PrivateKey>,
    /// Inclusive start of the key's validity; evaluated for each message.
    pub not_before: Option<SystemTime>,
    /// Exclusive end of the key's validity.
    pub not_after: Option<SystemTime>,
}

/// The keys and the policy for mail no key can sign.
#[derive(Debug, Clone, Default)]
pub struct Settings {
    /// In configuration order (main file first, then includes).
    pub keys: Vec<Key>,
    pub unsigned: UnsignedPolicy,
}
