//! `[admin]`: the admin listener, built into `admin::Settings`.
//!
//! Off loopback, metrics reveal traffic volumes and credential names, so
//! the listener then needs `[tls]` (it serves HTTPS) and a bearer token.

use super::error::{ConfigError, ConfigErrors};
use super::load::{File, singleton};
use crate::admin::Settings;
use crate::secret;
use serde::Deserialize;
use toml::Spanned;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAdmin {
    pub address: Spanned<String>,
    pub bearer_token: Option<Spanned<String>>,
    pub console: Option<super::console::RawConsole>,
    pub saml: Option<Spanned<super::console::RawSaml>>,
}

pub(super) fn build(files: &[File], has_tls: bool, errors: &mut ConfigErrors) -> Option<Settings> {
    let (f, raw) = singleton(files, "admin", |r| r.admin.as_ref(), errors)?;
    let address = match raw.address.get_ref().parse::<std::net::SocketAddr>() {
        Ok(a) => a,
        Err(e) => {
            errors.push(ConfigError::new(
                f.loc(&raw.address),
                "admin.address",
                format!("not an address:port ({e}); e.g. \"127.0.0.1:9587\""),
            ));
            return None;
        }
    };
    let bearer_token = match &raw.bearer_token {
        Some(t) => match secret::resolve(t.get_ref()) {
            Ok(s) => Some(s),
            Err(e) => {
                errors.push(ConfigError::new(f.loc(t), "admin.bearer_token", e));
                return None;
            }
        },
        None => None,
    };
    let https = !address.ip().is_loopback();
    if https && bearer_token.is_none() {
        errors.push(ConfigError::new(
            f.loc(&raw.address),
            "admin.bearer_token",
            "an admin listener off loopback needs bearer_token (a secret reference) for /metrics",
        ));
    }
    if https && !has_tls {
        errors.push(ConfigError::new(
            f.loc(&raw.address),
            "admin.address",
            "an admin listener off loopback serves HTTPS: configure [tls]",
        ));
    }
    let console = match (&raw.console, &raw.saml) {
        (Some(c), saml) => super::console::build(f, c, saml.as_ref(), https, errors),
        (None, Some(s)) => {
            errors.push(ConfigError::new(
                f.loc(s),
                "admin.saml",
                "[admin.saml] needs [admin.console] (its public_url)",
            ));
            None
        }
        (None, None) => None,
    };
    Some(Settings {
        address,
        bearer_token,
        https,
        console,
    })
}
