//! `[validation]`: recipient address and domain checks.
//!
//! ```toml
//! [validation]
//! allowed_recipient_domains = ["example.com", "*.example.com"]   # empty: any
//! denied_recipient_domains = ["competitor.example"]              # wins over allowed
//! check_recipient_domain = true      # domain must have MX or A/AAAA records
//! dns_timeout = "5s"
//! resolver = "127.0.0.1:53"          # default: the system resolver (/etc/resolv.conf)
//!
//! [validation.hook]                  # real-time address verification service
//! url = "https://verify.example/check"
//! timeout = "3s"
//! on_error = "accept"                # or "tempfail" (451 4.4.3)
//! bearer_token = "env:VERIFY_TOKEN"
//! ca_file = "/etc/postern/verify-ca.pem"
//! ```
//!
//! Everything that can be checked without the network (patterns, url,
//! resolver address, secret, CA file) is checked here so a typo fails
//! `check-config` instead of turning into 4xx replies at run time.

use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;
use serde::Deserialize;
use toml::Spanned;

use super::error::{ConfigError, ConfigErrors, Loc};
use super::load::{File, singleton};
use super::units::Dur;
use crate::secret;
use crate::validate::domains::DomainPattern;
use crate::validate::{DEFAULT_HOOK_TIMEOUT, HookSettings, OnError, Settings, parse_resolver};

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawValidation {
    #[serde(default)]
    pub allowed_recipient_domains: Vec<Spanned<String>>,
    #[serde(default)]
    pub denied_recipient_domains: Vec<Spanned<String>>,
    #[serde(default)]
    pub check_recipient_domain: bool,
    #[serde(default)]
    pub allow_quoted_local_parts: bool,
    pub dns_timeout: Option<Dur>,
    pub resolver: Option<Spanned<String>>,
    pub hook: Option<Spanned<RawHook>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawHook {
    pub url: Spanned<String>,
    pub timeout: Option<Dur>,
    pub on_error: Option<OnError>,
    pub bearer_token: Option<Spanned<String>>,
    pub ca_file: Option<Spanned<String>>,
}

pub(super) fn build(files: &[File], errors: &mut ConfigErrors) -> Settings {
    let mut out = Settings::default();
    let Some((f, v)) = singleton(files, "validation", |r| r.validation.as_ref(), errors) else {
        return out;
    };
    let mut patterns = |list: &[Spanned<String>], key: &str| -> Vec<DomainPattern> {
        list.iter()
            .filter_map(|p| {
                DomainPattern::parse(p.get_ref())
                    .map_err(|e| {
                        errors.push(ConfigError::new(f.loc(p), format!("validation.{key}"), e))
                    })
                    .ok()
            })
            .collect()
    };
    out.allowed_recipient_domains =
        patterns(&v.allowed_recipient_domains, "allowed_recipient_domains");
    out.denied_recipient_domains =
        patterns(&v.denied_recipient_domains, "denied_recipient_domains");
    out.check_recipient_domain = v.check_recipient_domain;
    out.allow_quoted_local_parts = v.allow_quoted_local_parts;
    if let Some(d) = v.dns_timeout {
        out.dns_timeout = d.0;
    }
    if out.dns_timeout.is_zero() {
        errors.push(ConfigError::new(
            Loc::file_start(&f.path),
            "validation.dns_timeout",
            "dns_timeout must be longer than 0s",
        ));
    }
    if let Some(r) = &v.resolver {
        match parse_resolver(r.get_ref()) {
            Ok(addr) => out.resolver = Some(addr),
            Err(e) => errors.push(ConfigError::new(f.loc(r), "validation.resolver", e)),
        }
    }
    out.hook = v.hook.as_ref().and_then(|h| build_hook(f, h, errors));
    out
}

fn build_hook(f: &File, h: &Spanned<RawHook>, errors: &mut ConfigErrors) -> Option<HookSettings> {
    let before = errors.0.len();
    let raw = h.get_ref();
    let url = raw.url.get_ref().trim().to_string();
    match reqwest::Url::parse(&url) {
        Ok(u) if u.scheme() == "https" && u.host_str().is_some() => {
            if !u.username().is_empty() || u.password().is_some() {
                errors.push(ConfigError::new(
                    f.loc(&raw.url),
                    "validation.hook.url",
                    "credentials in the url are not allowed; use bearer_token",
                ));
            }
        }
        Ok(_) => errors.push(ConfigError::new(
            f.loc(&raw.url),
            "validation.hook.url",
            "url must start with https:// (addresses are personal data)",
        )),
        Err(e) => errors.push(ConfigError::new(
            f.loc(&raw.url),
            "validation.hook.url",
            format!("invalid url: {e}"),
        )),
    }
    let timeout = raw.timeout.map_or(DEFAULT_HOOK_TIMEOUT, |d| d.0);
    if timeout.is_zero() {
        errors.push(ConfigError::new(
            f.loc(h),
            "validation.hook.timeout",
            "timeout must be longer than 0s",
        ));
    }
    let bearer_token = raw.bearer_token.as_ref().and_then(|t| {
        secret::resolve(t.get_ref())
            .map_err(|e| {
                errors.push(ConfigError::new(
                    f.loc(t),
                    "validation.hook.bearer_token",
                    e,
                ))
            })
            .ok()
    });
    let ca_file = raw.ca_file.as_ref().map(|c| {
        let p = f.resolve_path(c.get_ref());
        if let Err(e) = pem_certificates(&p) {
            errors.push(ConfigError::new(f.loc(c), "validation.hook.ca_file", e));
        }
        p
    });
    (errors.0.len() == before).then_some(HookSettings {
        url,
        timeout,
        on_error: raw.on_error.unwrap_or_default(),
        bearer_token,
        ca_file,
    })
}

/// The same test the HTTP client applies when it loads the file.
fn pem_certificates(path: &std::path::Path) -> Result<(), String> {
    let mut n = 0;
    let iter = CertificateDer::pem_file_iter(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    for cert in iter {
        cert.map_err(|e| format!("{}: {e}", path.display()))?;
        n += 1;
    }
    if n == 0 {
        return Err(format!("{}: no PEM certificates found", path.display()));
    }
    Ok(())
}

#[cfg(test)]
mod tests;
