//! `[admin.console]` and `[admin.saml]`, built into `admin::Console`.
//!
//! The checks that make a SAML setup refuse to start rather than run
//! unsafely live here: samael skips signature verification when the IdP
//! metadata has no signing certificate, so metadata without one is an
//! error, as is a role table that maps nothing.

use std::collections::BTreeMap;

use serde::Deserialize;
use toml::Spanned;

use super::error::{ConfigError, ConfigErrors};
use super::load::File;
use super::units::Dur;
use crate::admin::settings::{Console, LocalAdmin, Role, Saml};
use crate::secret;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConsole {
    pub public_url: Spanned<String>,
    pub idle_timeout: Option<Spanned<Dur>>,
    pub absolute_timeout: Option<Spanned<Dur>>,
    #[serde(default)]
    pub local_admins: Vec<Spanned<RawLocalAdmin>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLocalAdmin {
    pub username: String,
    pub password_hash: Spanned<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSaml {
    pub idp_metadata: Spanned<String>,
    pub sp_entity_id: Option<String>,
    pub sp_certificate: Option<Spanned<String>>,
    pub sp_private_key: Option<Spanned<String>>,
    pub role_attribute: Option<String>,
    pub roles: Spanned<BTreeMap<String, Role>>,
    #[serde(default)]
    pub allow_idp_initiated: bool,
}

pub const DEFAULT_IDLE: std::time::Duration = std::time::Duration::from_secs(30 * 60);
pub const DEFAULT_ABSOLUTE: std::time::Duration = std::time::Duration::from_secs(8 * 3600);

pub(super) fn build(
    f: &File,
    raw: &RawConsole,
    saml: Option<&Spanned<RawSaml>>,
    https: bool,
    errors: &mut ConfigErrors,
) -> Option<Console> {
    let url = raw.public_url.get_ref().trim_end_matches('/').to_string();
    let scheme_ok = url.starts_with("https://") || (!https && url.starts_with("http://"));
    if !scheme_ok || url.parse::<url::Url>().is_err() {
        errors.push(ConfigError::new(
            f.loc(&raw.public_url),
            "admin.console.public_url",
            "not an https:// URL (http:// only with the admin listener on loopback); e.g. \"https://relay.example.com:9587\"",
        ));
        return None;
    }
    let idle_timeout = raw
        .idle_timeout
        .as_ref()
        .map_or(DEFAULT_IDLE, |d| d.get_ref().0);
    let absolute_timeout = raw
        .absolute_timeout
        .as_ref()
        .map_or(DEFAULT_ABSOLUTE, |d| d.get_ref().0);
    if idle_timeout.is_zero() || absolute_timeout < idle_timeout {
        errors.push(ConfigError::new(
            f.loc(&raw.public_url),
            "admin.console.idle_timeout",
            "idle_timeout must be above zero and at most absolute_timeout",
        ));
    }
    let mut local_admins = Vec::new();
    for a in &raw.local_admins {
        let hash = a.get_ref().password_hash.get_ref();
        let ok = argon2::PasswordHash::new(hash).is_ok_and(|h| h.algorithm.as_str() == "argon2id");
        if !ok || a.get_ref().username.is_empty() {
            errors.push(ConfigError::new(
                f.loc(&a.get_ref().password_hash),
                "admin.console.local_admins.password_hash",
                "needs a username and an argon2id PHC string ($argon2id$v=19$...)",
            ));
            continue;
        }
        local_admins.push(LocalAdmin {
            username: a.get_ref().username.clone(),
            password_hash: hash.clone(),
        });
    }
    let saml = match saml {
        Some(s) => Some(build_saml(f, s.get_ref(), &url, errors)?),
        None => None,
    };
    // `run --demo` signs in through a one-time link printed to the
    // terminal; any other configuration needs a way to sign in.
    let demo = &*f.path == std::path::Path::new("postern-demo.toml")
        && &*f.source == super::load::DEMO_CONFIG;
    if saml.is_none() && local_admins.is_empty() && !demo {
        errors.push(ConfigError::new(
            f.loc(&raw.public_url),
            "admin.saml",
            "the console needs [admin.saml] (or break-glass local_admins) to sign anyone in",
        ));
    }
    Some(Console {
        public_url: url,
        idle_timeout,
        absolute_timeout,
        local_admins,
        saml,
    })
}

fn build_saml(
    f: &File,
    raw: &RawSaml,
    public_url: &str,
    errors: &mut ConfigErrors,
) -> Option<Saml> {
    let path = f.resolve_path(raw.idp_metadata.get_ref());
    let fail = |errors: &mut ConfigErrors, msg: String| {
        errors.push(ConfigError::new(
            f.loc(&raw.idp_metadata),
            "admin.saml.idp_metadata",
            msg,
        ));
        None
    };
    let xml = match std::fs::read_to_string(&path) {
        Ok(x) => x,
        Err(e) => return fail(errors, format!("cannot read {}: {e}", path.display())),
    };
    let idp = match crate::admin::saml::Idp::parse(&xml) {
        Ok(i) => i,
        Err(e) => return fail(errors, format!("{}: {e}", path.display())),
    };
    if raw.roles.get_ref().is_empty() {
        errors.push(ConfigError::new(
            f.loc(&raw.roles),
            "admin.saml.roles",
            "maps no attribute value to a role: nobody could sign in",
        ));
    }
    let sp_certificate = match &raw.sp_certificate {
        Some(p) => {
            let path = f.resolve_path(p.get_ref());
            match std::fs::read_to_string(&path) {
                Ok(pem) => Some(pem),
                Err(e) => {
                    errors.push(ConfigError::new(
                        f.loc(p),
                        "admin.saml.sp_certificate",
                        format!("cannot read {}: {e}", path.display()),
                    ));
                    None
                }
            }
        }
        None => None,
    };
    let sp_private_key = match &raw.sp_private_key {
        Some(k) => match secret::resolve(k.get_ref()) {
            Ok(s) => Some(s),
            Err(e) => {
                errors.push(ConfigError::new(f.loc(k), "admin.saml.sp_private_key", e));
                None
            }
        },
        None => None,
    };
    if sp_private_key.is_some() != raw.sp_certificate.is_some() {
        errors.push(ConfigError::new(
            f.loc(&raw.idp_metadata),
            "admin.saml.sp_private_key",
            "sp_certificate and sp_private_key go together",
        ));
    }
    Some(Saml {
        idp_metadata_path: path,
        idp_metadata_xml: xml,
        idp_entity_id: idp.entity_id,
        sp_entity_id: raw
            .sp_entity_id
            .clone()
            .unwrap_or_else(|| format!("{public_url}/saml/metadata")),
        sp_certificate,
        sp_private_key,
        role_attribute: raw
            .role_attribute
            .clone()
            .unwrap_or_else(|| "groups".into()),
        roles: raw.roles.get_ref().clone(),
        allow_idp_initiated: raw.allow_idp_initiated,
    })
}
