//! The validated `[admin]`, `[admin.console]` and `[admin.saml]` settings.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

/// `[admin]`: where the admin listener (metrics, health, console) runs.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    pub address: std::net::SocketAddr,
    /// Required for `/metrics` when set; always set off loopback.
    pub bearer_token: Option<crate::secret::Secret>,
    /// Off loopback the listener serves HTTPS with `[tls]`'s certificate.
    pub https: bool,
    /// `[admin.console]`: the browser console, when configured.
    pub console: Option<Console>,
}

/// `[admin.console]`.
#[derive(Debug, Clone, PartialEq)]
pub struct Console {
    /// What browsers use, without a trailing slash (`https://relay.corp:9587`).
    pub public_url: String,
    /// A session unused this long ends.
    pub idle_timeout: Duration,
    /// A session ends this long after sign-in, used or not.
    pub absolute_timeout: Duration,
    /// Break-glass accounts for when the IdP is down; empty by default.
    pub local_admins: Vec<LocalAdmin>,
    /// `[admin.saml]`: sign-in through the identity provider.
    pub saml: Option<Saml>,
}

/// One `[[admin.console.local_admins]]` entry: always the admin role.
#[derive(Clone, PartialEq)]
pub struct LocalAdmin {
    pub username: String,
    /// An argon2id PHC string (`postern hash-secret` makes one).
    pub password_hash: String,
}

impl std::fmt::Debug for LocalAdmin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalAdmin")
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

/// `[admin.saml]`, with the IdP metadata already read and checked.
#[derive(Debug, Clone, PartialEq)]
pub struct Saml {
    pub idp_metadata_path: PathBuf,
    /// The metadata document as read at load (it has a signing certificate
    /// and an HTTP-Redirect single sign-on service: config checked).
    pub idp_metadata_xml: String,
    pub idp_entity_id: String,
    pub sp_entity_id: String,
    /// PEM certificate published in the SP metadata, for signed requests.
    pub sp_certificate: Option<String>,
    /// PEM private key signing the AuthnRequests when set.
    pub sp_private_key: Option<crate::secret::Secret>,
    /// The assertion attribute whose values pick the role.
    pub role_attribute: String,
    /// Attribute value to role; a person gets the highest role matched.
    pub roles: BTreeMap<String, Role>,
    pub allow_idp_initiated: bool,
}

/// What a signed-in person may do; ordered, each includes the ones before.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Reads every page but message bodies.
    Viewer,
    /// Also retries, holds, releases, purges, suspends and resumes.
    Operator,
    /// Also reloads the configuration and views message bodies.
    Admin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Operator => "operator",
            Role::Admin => "admin",
        }
    }
}
