//! `[[dkim]]` signing keys and `[dkim_policy]`.
//!
//! Keys are read and parsed here, at load time, so `check-config` catches a
//! bad PEM file, a key of the wrong algorithm or a duplicate selector at its
//! line, and the running daemon never meets an unusable key.

use super::error::{ConfigError, ConfigErrors, Loc};
use super::load::{File, singleton};
use super::units::to_system_time;
use crate::dkim::{Algorithm, Key, PrivateKey, Settings, UnsignedPolicy};
use crate::secret;
use serde::Deserialize;
use std::sync::Arc;
use std::time::SystemTime;
use toml::Spanned;
use toml::value::Datetime;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDkimKey {
    pub domain: Spanned<String>,
    pub selector: Spanned<String>,
    pub algorithm: Spanned<String>,
    /// Secret reference (`file:`, `env:`, `credential:`) to PEM text.
    pub private_key: Spanned<String>,
    pub not_before: Option<Spanned<Datetime>>,
    pub not_after: Option<Spanned<Datetime>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawDkimPolicy {
    pub unsigned: Option<UnsignedPolicy>,
}

pub(super) fn build(files: &[File], errors: &mut ConfigErrors) -> Settings {
    let policy = singleton(files, "dkim_policy", |r| r.dkim_policy.as_ref(), errors);
    let unsigned = policy.and_then(|(_, p)| p.unsigned).unwrap_or_default();
    let mut keys: Vec<(Key, Loc)> = Vec::new();
    for f in files {
        for entry in &f.raw.dkim {
            if let Some(k) = build_key(f, entry.get_ref(), &keys, errors) {
                keys.push((k, f.loc(entry)));
            }
        }
    }
    let any_entry = files.iter().any(|f| !f.raw.dkim.is_empty());
    if unsigned == UnsignedPolicy::Reject
        && !any_entry
        && let Some((f, _)) = policy
    {
        let loc = files
            .iter()
            .find_map(|g| g.raw.dkim_policy.as_ref().map(|p| g.loc(p)))
            .unwrap_or_else(|| Loc::file_start(&f.path));
        errors.push(ConfigError::new(
            loc,
            "dkim_policy.unsigned",
            "unsigned = \"reject\" but no [[dkim]] keys are configured: every message would be rejected",
        ));
    }
    Settings {
        keys: keys.into_iter().map(|(k, _)| k).collect(),
        unsigned,
    }
}

fn build_key(
    f: &File,
    raw: &RawDkimKey,
    earlier: &[(Key, Loc)],
    errors: &mut ConfigErrors,
) -> Option<Key> {
    let before = errors.0.len();
    let domain = crate::dkim::normalize_domain(raw.domain.get_ref())
        .map_err(|e| errors.push(ConfigError::new(f.loc(&raw.domain), "dkim.domain", e)))
        .ok();
    let selector = crate::dkim::check_selector(raw.selector.get_ref())
        .map_err(|e| errors.push(ConfigError::new(f.loc(&raw.selector), "dkim.selector", e)))
        .ok();
    let algorithm = Algorithm::parse(raw.algorithm.get_ref());
    if algorithm.is_none() {
        errors.push(ConfigError::new(
            f.loc(&raw.algorithm),
            "dkim.algorithm",
            format!(
                "unknown algorithm {:?}; use \"rsa\" or \"ed25519\"",
                raw.algorithm.get_ref()
            ),
        ));
    }
    let key = match (algorithm, secret::resolve(raw.private_key.get_ref())) {
        (_, Err(e)) => {
            errors.push(ConfigError::new(
                f.loc(&raw.private_key),
                "dkim.private_key",
                e,
            ));
            None
        }
        (Some(alg), Ok(pem)) => PrivateKey::from_pem(alg, pem.expose())
            .map_err(|e| {
                errors.push(ConfigError::new(
                    f.loc(&raw.private_key),
                    "dkim.private_key",
                    e.to_string(),
                ))
            })
            .ok(),
        (None, Ok(_)) => None,
    };
    let mut time = |t: &Option<Spanned<Datetime>>, k: &str| -> Option<SystemTime> {
        let t = t.as_ref()?;
        to_system_time(t.get_ref())
            .map_err(|e| errors.push(ConfigError::new(f.loc(t), format!("dkim.{k}"), e)))
            .ok()
    };
    let not_before = time(&raw.not_before, "not_before");
    let not_after = time(&raw.not_after, "not_after");
    if let (Some(b), Some(a), Some(loc)) = (not_before, not_after, raw.not_after.as_ref())
        && a <= b
    {
        errors.push(ConfigError::new(
            f.loc(loc),
            "dkim.not_after",
            "not_after must be later than not_before",
        ));
    }
    if let (Some(d), Some(s)) = (&domain, &selector)
        && let Some((_, loc)) = earlier
            .iter()
            .find(|(k, _)| &k.domain == d && k.selector.eq_ignore_ascii_case(s))
    {
        errors.push(ConfigError::new(
            f.loc(&raw.selector),
            "dkim.selector",
            format!("selector {s:?} of domain {d} is already configured at {loc}; one DNS name holds one key"),
        ));
    }
    if errors.0.len() > before {
        return None;
    }
    Some(Key {
        domain: domain?,
        selector: selector?,
        algorithm: algorithm?,
        key: Arc::new(key?),
        not_before,
        not_after,
    })
}

#[cfg(test)]
mod tests;
