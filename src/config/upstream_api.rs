//! Validation of the email-API provider kinds: ses, sendgrid, mailgun,
//! postmark and resend, each built into its provider's own `Settings`.
//!
//! Each provider's required keys, default API root and value checks sit in
//! one function, and a mistake (a missing key, a literal secret, an
//! `http://` url to a remote host) is reported at its line before the
//! daemon starts rather than as failed deliveries later.

use super::upstream_ctx::Ctx;
use crate::https::Endpoint;
use crate::upstream::{Settings, mailgun, postmark, resend, sendgrid, ses};
use std::net::IpAddr;

/// SendGrid refuses more categories than this, and longer ones.
const MAX_CATEGORIES: usize = 10;
const MAX_CATEGORY_LEN: usize = 255;

impl Ctx<'_> {
    /// `base_url` or the provider's default, with `timeout` and `ca_file`.
    fn api_endpoint(&mut self, default_base: Option<String>) -> Option<Endpoint> {
        let raw = self.raw;
        let base_url = match (self.take("base_url", &raw.base_url), default_base) {
            (Some(u), _) => match check_base_url(u.get_ref()) {
                Ok(url) => url,
                Err(e) => {
                    self.error_at(u, "base_url", e);
                    return None;
                }
            },
            (None, Some(d)) => d,
            // The default needs a key that was already reported missing.
            (None, None) => return None,
        };
        Some(self.endpoint_at(base_url))
    }

    /// A list key checked as a whole.
    fn list(
        &mut self,
        k: &'static str,
        v: &Option<toml::Spanned<Vec<String>>>,
        check: fn(&[String]) -> Result<(), String>,
    ) -> Option<Vec<String>> {
        let Some(list) = self.take(k, v) else {
            return Some(Vec::new());
        };
        match check(list.get_ref()) {
            Ok(()) => Some(list.get_ref().clone()),
            Err(e) => {
                self.error(self.table.clone(), k, e);
                None
            }
        }
    }
}

pub(super) fn ses(c: &mut Ctx<'_>) -> Option<Settings> {
    let raw = c.raw;
    let region = c.text("region", &raw.region, check_aws_region);
    let endpoint = c.api_endpoint(
        region
            .as_ref()
            .map(|r| format!("https://email.{r}.amazonaws.com")),
    );
    let access_key_id = c.required_secret("access_key_id", &raw.access_key_id);
    let secret_access_key = c.required_secret("secret_access_key", &raw.secret_access_key);
    let session_token = c.optional_secret("session_token", &raw.session_token);
    let configuration_set = c
        .optional_text("configuration_set", &raw.configuration_set, check_non_empty)
        .ok()?;
    Some(Settings::Ses(ses::Settings {
        endpoint: endpoint?,
        region: region?,
        access_key_id: access_key_id?,
        secret_access_key: secret_access_key?,
        session_token,
        configuration_set,
    }))
}

pub(super) fn sendgrid(c: &mut Ctx<'_>) -> Option<Settings> {
    let raw = c.raw;
    let endpoint = c.api_endpoint(Some("https://api.sendgrid.com".into()));
    let api_key = c.required_secret("api_key", &raw.api_key);
    let categories = c.list("categories", &raw.categories, check_categories)?;
    Some(Settings::Sendgrid(sendgrid::Settings {
        endpoint: endpoint?,
        api_key: api_key?,
        categories,
    }))
}

pub(super) fn mailgun(c: &mut Ctx<'_>) -> Option<Settings> {
    let raw = c.raw;
    let default_base = match c
        .take("region", &raw.region)
        .map(|r| (r, r.get_ref().as_str()))
    {
        None | Some((_, "us")) => "https://api.mailgun.net",
        Some((_, "eu")) => "https://api.eu.mailgun.net",
        Some((r, other)) => {
            let message = format!("unknown mailgun region {other:?}; use \"us\" or \"eu\"");
            c.error_at(r, "region", message);
            return None;
        }
    };
    let endpoint = c.api_endpoint(Some(default_base.into()));
    let domain = c.text("domain", &raw.domain, check_domain);
    let api_key = c.required_secret("api_key", &raw.api_key);
    let tags = c.list("tags", &raw.tags, check_mailgun_tags)?;
    Some(Settings::Mailgun(mailgun::Settings {
        endpoint: endpoint?,
        domain: domain?,
        api_key: api_key?,
        tags,
    }))
}

pub(super) fn postmark(c: &mut Ctx<'_>) -> Option<Settings> {
    let raw = c.raw;
    let endpoint = c.api_endpoint(Some("https://api.postmarkapp.com".into()));
    let server_token = c.required_secret("server_token", &raw.server_token);
    let message_stream = c
        .optional_text("message_stream", &raw.message_stream, check_non_empty)
        .ok()?;
    let tag = c.optional_text("tag", &raw.tag, check_postmark_tag).ok()?;
    Some(Settings::Postmark(postmark::Settings {
        endpoint: endpoint?,
        server_token: server_token?,
        message_stream,
        tag,
    }))
}

pub(super) fn resend(c: &mut Ctx<'_>) -> Option<Settings> {
    let raw = c.raw;
    let endpoint = c.api_endpoint(Some("https://api.resend.com".into()));
    let api_key = c.required_secret("api_key", &raw.api_key);
    Some(Settings::Resend(resend::Settings {
        endpoint: endpoint?,
        api_key: api_key?,
    }))
}

/// `https://…`, or `http://` to a loopback host only (a local emulator or
/// test server): keys and mail never cross a network in clear text.
/// Returns the url without a trailing slash.
pub fn check_base_url(text: &str) -> Result<String, String> {
    let url = reqwest::Url::parse(text.trim()).map_err(|e| format!("invalid url: {e}"))?;
    let host = url.host_str().ok_or("url has no host")?;
    match url.scheme() {
        "https" => {}
        "http" if is_loopback(host) => {}
        "http" => {
            return Err(
                "base_url must start with https:// (plain http is allowed only to a loopback \
                 address such as 127.0.0.1, for local emulators)"
                    .into(),
            );
        }
        other => return Err(format!("unsupported url scheme {other:?}; use https")),
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err("credentials in the url are not allowed; use the kind's key options".into());
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err("base_url is an API root; it cannot carry a query or fragment".into());
    }
    Ok(url.as_str().trim_end_matches('/').to_string())
}

fn is_loopback(host: &str) -> bool {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost")
        || bare.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

fn check_non_empty(v: &str) -> Result<(), String> {
    if v.is_empty() {
        Err("must not be empty".into())
    } else {
        Ok(())
    }
}

/// `eu-west-1`, `us-gov-west-1`, `cn-north-1`: it becomes part of a host name.
fn check_aws_region(v: &str) -> Result<(), String> {
    let ok = !v.is_empty()
        && v.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !v.starts_with('-')
        && !v.ends_with('-');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "invalid AWS region {v:?}; expected a region code such as \"eu-west-1\""
        ))
    }
}

/// The mailgun sending domain goes into the request path: a DNS name only.
fn check_domain(v: &str) -> Result<(), String> {
    let ok = !v.is_empty()
        && v.len() <= 253
        && v.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        });
    if ok {
        Ok(())
    } else {
        Err(format!(
            "invalid domain {v:?}; expected the sending domain such as \"mg.example.com\""
        ))
    }
}

/// Mailgun: at most 3 tags per message, ASCII, at most 128 characters.
fn check_mailgun_tags(list: &[String]) -> Result<(), String> {
    if list.len() > 3 {
        return Err(format!(
            "Mailgun accepts at most 3 tags per message, got {}",
            list.len()
        ));
    }
    match list.iter().find(|t| {
        t.is_empty() || t.len() > 128 || !t.bytes().all(|b| b.is_ascii_graphic() || b == b' ')
    }) {
        Some(t) => Err(format!(
            "tag {t:?} must be 1 to 128 printable ASCII characters"
        )),
        None => Ok(()),
    }
}

/// Postmark: one tag of at most 1000 characters.
fn check_postmark_tag(v: &str) -> Result<(), String> {
    if v.is_empty() || v.chars().count() > 1000 || v.chars().any(char::is_control) {
        Err("must be 1 to 1000 characters without control characters".into())
    } else {
        Ok(())
    }
}

fn check_categories(list: &[String]) -> Result<(), String> {
    if list.len() > MAX_CATEGORIES {
        return Err(format!(
            "SendGrid accepts at most {MAX_CATEGORIES} categories per message, got {}",
            list.len()
        ));
    }
    for c in list {
        if c.trim().is_empty() || c.chars().count() > MAX_CATEGORY_LEN {
            return Err(format!(
                "category {c:?} must be 1 to {MAX_CATEGORY_LEN} characters"
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
