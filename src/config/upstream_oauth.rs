//! Validation of the OAuth provider kinds: msgraph and gmail.
//!
//! Their credentials are key material (a certificate and private key, a
//! service account JSON key), so they are parsed here, at load time, into
//! the provider's settings: a wrong file or a key that cannot sign is
//! reported at its line by `postern check-config` instead of surfacing later
//! as deliveries stuck on "credentials rejected", and the running daemon
//! never parses them again.

use super::upstream_ctx::Ctx;
use crate::https::Endpoint;
use crate::inspect::recipients::HeaderRecipients;
use crate::upstream::{Settings, gmail, msgraph};

impl Ctx<'_> {
    /// An optional `https://` url key.
    fn url(&mut self, k: &'static str, v: &Option<toml::Spanned<String>>) -> Option<String> {
        let v = self.take(k, v)?;
        match check_https_url(v.get_ref()) {
            Ok(u) => Some(u),
            Err(e) => {
                self.error_at(v, k, e);
                None
            }
        }
    }

    fn oauth_endpoint(&mut self, default_base: &str) -> Endpoint {
        let raw = self.raw;
        let base_url = self
            .url("base_url", &raw.base_url)
            .unwrap_or_else(|| default_base.to_string());
        self.endpoint_at(base_url)
    }

    /// `header_recipients = "refuse" | "drop"` (default refuse).
    fn header_recipients(&mut self) -> HeaderRecipients {
        let raw = self.raw;
        match self.take("header_recipients", &raw.header_recipients) {
            None => HeaderRecipients::Refuse,
            Some(v) => match v.get_ref().as_str() {
                "refuse" => HeaderRecipients::Refuse,
                "drop" => HeaderRecipients::Drop,
                other => {
                    let message = format!("{other:?} is not \"refuse\" or \"drop\"");
                    self.error_at(v, "header_recipients", message);
                    HeaderRecipients::Refuse
                }
            },
        }
    }
}

pub(super) fn msgraph(c: &mut Ctx<'_>) -> Option<Settings> {
    let raw = c.raw;
    let endpoint = c.oauth_endpoint(msgraph::DEFAULT_BASE_URL);
    let token_url = c.url("token_url", &raw.token_url);
    let tenant_id = c.text("tenant_id", &raw.tenant_id, check_tenant);
    let client_id = c.text("client_id", &raw.client_id, check_token);
    let mailbox = c
        .optional_text("mailbox", &raw.mailbox, check_address)
        .ok()?;
    let secret = c.take("client_secret", &raw.client_secret);
    let certificate = c.take("client_certificate", &raw.client_certificate);
    let key = c.take("client_key", &raw.client_key);
    let credential = match (secret, certificate, key) {
        (Some(s), None, None) => c
            .secret(s, "client_secret")
            .map(msgraph::AppCredential::ClientSecret),
        (None, Some(cert), Some(key)) => {
            let path = (c.resolve)(cert.get_ref());
            let thumbprint = match std::fs::read_to_string(&path) {
                Ok(pem) => msgraph::AppCredential::thumbprint(&pem)
                    .map_err(|e| c.error_at(cert, "client_certificate", e))
                    .ok(),
                Err(e) => {
                    let message = format!("cannot read {}: {e}", path.display());
                    c.error_at(cert, "client_certificate", message);
                    None
                }
            };
            let signer = c.secret(key, "client_key").and_then(|k| {
                msgraph::AppCredential::signer(&k)
                    .map_err(|e| c.error_at(key, "client_key", e))
                    .ok()
            });
            match (thumbprint, signer) {
                (Some(thumbprint), Some(signer)) => {
                    Some(msgraph::AppCredential::Certificate { thumbprint, signer })
                }
                _ => None,
            }
        }
        (None, None, None) => {
            let message =
                "kind = \"msgraph\" needs `client_secret`, or `client_certificate` + `client_key`";
            c.error(c.table.clone(), "client_secret", message);
            None
        }
        _ => {
            let message = "set either `client_secret`, or `client_certificate` + `client_key` (both, not one of them)";
            c.error(c.table.clone(), "client_secret", message);
            None
        }
    };
    let save_to_sent_items = c
        .take("save_to_sent_items", &raw.save_to_sent_items)
        .copied()
        .unwrap_or(true);
    let header_recipients = c.header_recipients();
    Some(Settings::Msgraph(msgraph::Settings {
        endpoint,
        token_url,
        tenant_id: tenant_id?,
        client_id: client_id?,
        credential: credential?,
        mailbox,
        save_to_sent_items,
        header_recipients,
    }))
}

pub(super) fn gmail(c: &mut Ctx<'_>) -> Option<Settings> {
    let raw = c.raw;
    let endpoint = c.oauth_endpoint(gmail::DEFAULT_BASE_URL);
    let token_url = c.url("token_url", &raw.token_url);
    let user = c.text("user", &raw.user, check_address);
    let key = match c.take("service_account_key", &raw.service_account_key) {
        Some(k) => c.secret(k, "service_account_key").and_then(|s| {
            match gmail::ServiceAccount::parse(&s) {
                Ok(key) => Some(key),
                Err(e) => {
                    c.error_at(k, "service_account_key", e);
                    None
                }
            }
        }),
        None => {
            c.missing("service_account_key");
            None
        }
    };
    let header_recipients = c.header_recipients();
    Some(Settings::Gmail(gmail::Settings {
        endpoint,
        token_url,
        key: key?,
        user: user?,
        header_recipients,
    }))
}

/// `https://host[:port][/path]`, no credentials, query or fragment. Tokens
/// and mail travel here, so plain http is never accepted, not even locally.
fn check_https_url(text: &str) -> Result<String, String> {
    let url = reqwest::Url::parse(text.trim()).map_err(|e| format!("invalid url: {e}"))?;
    if url.scheme() != "https" {
        return Err(
            "must start with https:// (tokens and mail are never sent in clear text)".into(),
        );
    }
    if url.host_str().is_none() {
        return Err("url has no host".into());
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err("credentials in the url are not allowed".into());
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err("the url cannot carry a query or fragment".into());
    }
    Ok(url.as_str().trim_end_matches('/').to_string())
}

/// A directory (tenant) id or verified domain: it becomes a URL path segment.
fn check_tenant(v: &str) -> Result<(), String> {
    if !v.is_empty()
        && v.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
    {
        Ok(())
    } else {
        Err("must be the directory (tenant) id or a verified domain, e.g. \"contoso.onmicrosoft.com\"".into())
    }
}

fn check_token(v: &str) -> Result<(), String> {
    if !v.is_empty() && !v.chars().any(|c| c.is_whitespace() || c.is_control()) {
        Ok(())
    } else {
        Err("must be a non-empty value without spaces".into())
    }
}

fn check_address(v: &str) -> Result<(), String> {
    match v.split_once('@') {
        Some((l, d)) if !l.is_empty() && !d.is_empty() && check_token(v).is_ok() => Ok(()),
        _ => Err(format!("{v:?} is not an email address")),
    }
}

#[cfg(test)]
mod tests;
