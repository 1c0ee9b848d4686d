//! `[credentials.NAME]`: one application's identity and its scope.
//!
//! Everything a credential may restrict is validated here, so the access
//! layer only ever sees patterns that parse, hashes that are argon2id and
//! instants instead of TOML datetimes. A credential without `username` is
//! trusted by source network; one with `username` logs in with AUTH and its
//! `networks` (if any) restrict where the login may be used from.

use super::error::{ConfigError, ConfigErrors};
use super::load::{File, sender_pattern};
use super::units::{Size, to_system_time};
use super::{Route, quota};
use crate::access::{Credential, Login, SecretHash};
use crate::validate::DomainPattern;
use ipnet::IpNet;
use serde::Deserialize;
use std::collections::BTreeMap;
use toml::Spanned;
use toml::value::Datetime;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCredential {
    pub username: Option<String>,
    pub secret_hash: Option<Spanned<String>>,
    /// Several valid secrets at once, for rotation without downtime.
    #[serde(default)]
    pub secret_hashes: Vec<Spanned<RawSecret>>,
    #[serde(default)]
    pub networks: Vec<Spanned<String>>,
    #[serde(default)]
    pub allowed_senders: Vec<Spanned<String>>,
    /// From-header address patterns; when empty, `allowed_senders` applies.
    #[serde(default)]
    pub allowed_from: Vec<Spanned<String>>,
    #[serde(default)]
    pub allowed_recipient_domains: Vec<Spanned<String>>,
    #[serde(default)]
    pub denied_recipient_domains: Vec<Spanned<String>>,
    pub max_recipients: Option<Spanned<i64>>,
    pub max_message_size: Option<Spanned<Size>>,
    pub route: Option<Spanned<String>>,
    pub expires: Option<Spanned<Datetime>>,
    #[serde(default)]
    pub disabled: bool,
    /// Overrides of `[quota.credential]` for this credential.
    pub quota: Option<Spanned<quota::RawLimits>>,
}

/// `"$argon2id$..."` or `{ hash = "$argon2id$...", expires = 2027-01-31T00:00:00Z }`.
#[derive(Deserialize)]
#[serde(untagged)]
pub enum RawSecret {
    Hash(String),
    Entry(RawSecretEntry),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSecretEntry {
    pub hash: String,
    pub expires: Option<Datetime>,
}

/// Checks that a PHC string is an argon2id hash postern can verify.
fn check_phc(phc: &str) -> Result<(), String> {
    match argon2::password_hash::PasswordHash::new(phc) {
        Ok(h) if h.algorithm.as_str() == "argon2id" => Ok(()),
        Ok(h) => Err(format!(
            "hash algorithm {} is not supported; use `postern hash-secret` (argon2id)",
            h.algorithm
        )),
        Err(e) => Err(format!(
            "not a PHC hash string ({e}); generate one with `postern hash-secret` or `postern token new`"
        )),
    }
}

/// `secret_hash` and `secret_hashes` together, validated.
fn secrets(
    f: &File,
    raw: &RawCredential,
    key: &dyn Fn(&str) -> String,
    errors: &mut ConfigErrors,
) -> Vec<SecretHash> {
    let mut out = Vec::new();
    if let Some(h) = &raw.secret_hash {
        match check_phc(h.get_ref()) {
            Ok(()) => out.push(SecretHash {
                phc: h.get_ref().clone(),
                expires: None,
            }),
            Err(e) => errors.push(ConfigError::new(f.loc(h), key("secret_hash"), e)),
        }
    }
    for s in &raw.secret_hashes {
        let (phc, expires) = match s.get_ref() {
            RawSecret::Hash(h) => (h, None),
            RawSecret::Entry(e) => (&e.hash, e.expires.as_ref()),
        };
        let expires = match expires.map(to_system_time) {
            None => None,
            Some(Ok(t)) => Some(t),
            Some(Err(e)) => {
                errors.push(ConfigError::new(f.loc(s), key("secret_hashes"), e));
                continue;
            }
        };
        match check_phc(phc) {
            Ok(()) => out.push(SecretHash {
                phc: phc.clone(),
                expires,
            }),
            Err(e) => errors.push(ConfigError::new(f.loc(s), key("secret_hashes"), e)),
        }
    }
    out
}

fn domain_patterns(
    f: &File,
    list: &[Spanned<String>],
    key: &str,
    errors: &mut ConfigErrors,
) -> Vec<DomainPattern> {
    list.iter()
        .filter_map(|p| {
            DomainPattern::parse(p.get_ref())
                .map_err(|e| errors.push(ConfigError::new(f.loc(p), key, e)))
                .ok()
        })
        .collect()
}

fn sender_patterns(
    f: &File,
    list: &[Spanned<String>],
    key: &str,
    errors: &mut ConfigErrors,
) -> Vec<String> {
    list.iter()
        .filter_map(|p| {
            sender_pattern(p.get_ref())
                .map_err(|e| errors.push(ConfigError::new(f.loc(p), key, e)))
                .ok()
        })
        .collect()
}

pub(super) fn build(
    name: &str,
    f: &File,
    c: &Spanned<RawCredential>,
    routes: &BTreeMap<String, Route>,
    files: &[File],
    errors: &mut ConfigErrors,
) -> Option<Credential> {
    let key = |k: &str| format!("credentials.{name}.{k}");
    let raw = c.get_ref();
    let has_secret = raw.secret_hash.is_some() || !raw.secret_hashes.is_empty();
    let login = match (&raw.username, has_secret) {
        (Some(u), true) => Some(Login {
            username: u.clone(),
            secrets: secrets(f, raw, &key, errors),
        }),
        (None, false) => None,
        _ => {
            errors.push(ConfigError::new(
                f.loc(c),
                key("username"),
                "username and secret_hash (or secret_hashes) must be set together",
            ));
            None
        }
    };
    let mut networks = Vec::new();
    for n in &raw.networks {
        let text = n.get_ref().trim();
        let parsed = text
            .parse::<IpNet>()
            .or_else(|_| text.parse::<std::net::IpAddr>().map(IpNet::from));
        match parsed {
            Ok(net) => networks.push(net.trunc()),
            Err(_) => errors.push(ConfigError::new(
                f.loc(n),
                key("networks"),
                format!("{text:?} is not a CIDR network like \"192.168.10.0/24\""),
            )),
        }
    }
    if raw.networks.is_empty() && raw.username.is_none() && !has_secret {
        errors.push(ConfigError::new(f.loc(c), format!("credentials.{name}"), "a credential needs username + secret_hash (AUTH) or networks (trusted source addresses)"));
    }
    let allowed_senders = sender_patterns(f, &raw.allowed_senders, &key("allowed_senders"), errors);
    let allowed_from = sender_patterns(f, &raw.allowed_from, &key("allowed_from"), errors);
    if raw.allowed_senders.is_empty() {
        errors.push(ConfigError::new(
            f.loc(c),
            key("allowed_senders"),
            "allowed_senders is required (use [\"*\"] to allow any sender)",
        ));
    }
    let allowed_recipient_domains = domain_patterns(
        f,
        &raw.allowed_recipient_domains,
        &key("allowed_recipient_domains"),
        errors,
    );
    let denied_recipient_domains = domain_patterns(
        f,
        &raw.denied_recipient_domains,
        &key("denied_recipient_domains"),
        errors,
    );
    let max_recipients = raw.max_recipients.as_ref().and_then(|n| {
        usize::try_from(*n.get_ref())
            .ok()
            .filter(|&v| v >= 1)
            .or_else(|| {
                errors.push(ConfigError::new(
                    f.loc(n),
                    key("max_recipients"),
                    format!("{} is not a positive number", n.get_ref()),
                ));
                None
            })
    });
    let max_message_size = raw.max_message_size.as_ref().and_then(|s| {
        let v = s.get_ref().0;
        if v == 0 {
            errors.push(ConfigError::new(
                f.loc(s),
                key("max_message_size"),
                "0 would refuse every message; use disabled = true to stop a credential",
            ));
            return None;
        }
        Some(v)
    });
    let expires = raw.expires.as_ref().and_then(|e| {
        to_system_time(e.get_ref())
            .map_err(|msg| errors.push(ConfigError::new(f.loc(e), key("expires"), msg)))
            .ok()
    });
    let route = raw
        .route
        .as_ref()
        .map_or_else(|| "default".to_string(), |r| r.get_ref().clone());
    if !routes.contains_key(&route) && !files.iter().any(|f| f.raw.routes.contains_key(&route)) {
        let loc = raw.route.as_ref().map_or_else(|| f.loc(c), |r| f.loc(r));
        let hint = if raw.route.is_none() {
            " (a credential without `route` uses the route named \"default\")"
        } else {
            ""
        };
        errors.push(ConfigError::new(
            loc,
            key("route"),
            format!("route {route:?} is not defined{hint}"),
        ));
    }
    let quota = raw
        .quota
        .as_ref()
        .map(|q| quota::build_credential_quota(f, q, &key("quota"), errors));
    Some(Credential {
        name: name.to_string(),
        login,
        networks,
        allowed_senders,
        allowed_from,
        allowed_recipient_domains,
        denied_recipient_domains,
        max_recipients,
        max_message_size,
        route,
        expires,
        disabled: raw.disabled,
        quota,
    })
}

#[cfg(test)]
mod tests;
