//! Validation of the OAuth provider kinds: msgraph and gmail.
//!
//! Their credentials are key material (a certificate and private key, a
//! service account JSON key), so they are parsed here, at load time: a
//! wrong file or a key that cannot sign is reported at its line by
//! `postern check-config` instead of surfacing later as deliveries stuck
//! on "credentials rejected".

use super::error::{ConfigErrors, Loc};
use super::schema::RawUpstream;
use super::upstream_ctx::{Ctx, LocFn};
use super::{
    ApiEndpoint, GmailUpstream, HeaderRecipients, MsgraphCredential, MsgraphUpstream, UpstreamKind,
};
use crate::upstream::{gmail, jwt, msgraph};
use std::path::PathBuf;
use toml::Spanned;

/// The kinds validated here.
pub const KINDS: &[&str] = &["msgraph", "gmail"];

/// Kinds whose provider DKIM-signs with its own keys (and may rewrite the
/// message): postern's signature is off by default there.
pub const OWN_DKIM: &[&str] = &["msgraph", "gmail"];

impl Ctx<'_> {
    /// `header_recipients = "refuse" | "drop"` (default refuse).
    fn header_recipients(&mut self) -> HeaderRecipients {
        match self.raw.header_recipients.as_ref() {
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

    fn url(&mut self, v: Option<&Spanned<String>>, k: &str) -> Option<String> {
        let v = v?;
        match check_https_url(v.get_ref()) {
            Ok(u) => Some(u),
            Err(e) => {
                self.error_at(v, k, e);
                None
            }
        }
    }

    fn oauth_endpoint(&mut self, default_base: &str) -> ApiEndpoint {
        let base_url = self
            .url(self.raw.base_url.as_ref(), "base_url")
            .unwrap_or_else(|| default_base.to_string());
        self.endpoint_at(base_url)
    }
}

/// Builds a msgraph or gmail upstream from its table; errors go to `errors`.
pub(super) fn build(
    name: &str,
    table: Loc,
    raw: &RawUpstream,
    resolve: &dyn Fn(&str) -> PathBuf,
    loc: LocFn<'_>,
    errors: &mut ConfigErrors,
) -> Option<UpstreamKind> {
    let mut c = Ctx {
        name,
        kind: raw.kind.get_ref().as_str(),
        table,
        raw,
        resolve,
        loc,
        errors,
    };
    if c.kind == "msgraph" {
        build_msgraph(&mut c)
    } else {
        build_gmail(&mut c)
    }
}

fn build_msgraph(c: &mut Ctx<'_>) -> Option<UpstreamKind> {
    let raw = c.raw;
    let endpoint = c.oauth_endpoint(msgraph::DEFAULT_BASE_URL);
    let token_url = c.url(raw.token_url.as_ref(), "token_url");
    let tenant_id = c.text(raw.tenant_id.as_ref(), "tenant_id", check_tenant);
    let client_id = c.text(raw.client_id.as_ref(), "client_id", check_token);
    let mailbox = match &raw.mailbox {
        Some(m) => match check_address(m.get_ref().trim()) {
            Ok(()) => Some(m.get_ref().trim().to_string()),
            Err(e) => {
                c.error_at(m, "mailbox", e);
                None
            }
        },
        None => None,
    };
    let credential = match (&raw.client_secret, &raw.client_certificate, &raw.client_key) {
        (Some(s), None, None) => c.secret(s, "client_secret").map(MsgraphCredential::Secret),
        (None, Some(cert), Some(key)) => {
            let path = (c.resolve)(cert.get_ref());
            let cert_ok = match std::fs::read_to_string(&path) {
                Ok(pem) => jwt::cert_thumbprint_s256(&pem)
                    .map_err(|e| c.error_at(cert, "client_certificate", e.to_string()))
                    .is_ok(),
                Err(e) => {
                    let message = format!("cannot read {}: {e}", path.display());
                    c.error_at(cert, "client_certificate", message);
                    false
                }
            };
            let key_secret = c.secret(key, "client_key");
            let key_ok = key_secret.as_ref().is_some_and(|k| {
                jwt::RsaSigner::from_pem(k.expose())
                    .map_err(|e| c.error_at(key, "client_key", e.to_string()))
                    .is_ok()
            });
            match (cert_ok, key_secret) {
                (true, Some(key)) if key_ok => Some(MsgraphCredential::Certificate {
                    certificate: path,
                    key,
                }),
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
    let header_recipients = c.header_recipients();
    Some(UpstreamKind::Msgraph(MsgraphUpstream {
        header_recipients,
        endpoint,
        token_url,
        tenant_id: tenant_id?,
        client_id: client_id?,
        credential: credential?,
        mailbox,
        save_to_sent_items: raw.save_to_sent_items.unwrap_or(true),
    }))
}

fn build_gmail(c: &mut Ctx<'_>) -> Option<UpstreamKind> {
    let raw = c.raw;
    let endpoint = c.oauth_endpoint(gmail::DEFAULT_BASE_URL);
    let token_url = c.url(raw.token_url.as_ref(), "token_url");
    let user = c.text(raw.user.as_ref(), "user", check_address);
    let key = match &raw.service_account_key {
        Some(k) => c.secret(k, "service_account_key").and_then(|s| {
            match gmail::ServiceAccountKey::parse(s.expose()) {
                Ok(_) => Some(s),
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
    Some(UpstreamKind::Gmail(GmailUpstream {
        header_recipients,
        endpoint,
        token_url,
        service_account_key: key?,
        user: user?,
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
mod tests {
    use super::*;
    use crate::config::load_str;
    use crate::config::upstream_ctx::DEFAULT_TIMEOUT;
    use std::path::Path;

    fn load(upstream: &str) -> Result<crate::config::Config, String> {
        let text = format!(
            "[server]\nstate_dir = \"state\"\n[[listeners]]\naddress = \"127.0.0.1:2525\"\ntls = \"none\"\n\
             [credentials.lan]\nnetworks = [\"127.0.0.0/8\"]\nallowed_senders = [\"*@example.com\"]\n\
             [routes.default]\nupstreams = [\"p\"]\n[upstreams.p]\n{upstream}"
        );
        load_str(Path::new("/etc/p/main.toml"), &text).map_err(|e| e.to_string())
    }

    #[test]
    fn defaults_and_dkim_off() {
        let dir = tempfile::tempdir().unwrap();
        let secret = dir.path().join("s");
        std::fs::write(&secret, "top-secret\n").unwrap();
        let c = load(&format!(
            "kind = \"msgraph\"\ntenant_id = \"t1\"\nclient_id = \"c1\"\nclient_secret = \"file:{}\"\n",
            secret.display()
        ))
        .unwrap();
        let u = &c.upstreams["p"];
        assert!(!u.dkim);
        let UpstreamKind::Msgraph(g) = &u.kind else {
            panic!("{u:?}")
        };
        assert_eq!(g.endpoint.base_url, "https://graph.microsoft.com");
        assert_eq!(g.endpoint.timeout, DEFAULT_TIMEOUT);
        assert!(g.save_to_sent_items && g.mailbox.is_none() && g.token_url.is_none());
        assert!(
            matches!(&g.credential, MsgraphCredential::Secret(s) if s.expose() == "top-secret")
        );
        assert!(!format!("{u:?}").contains("top-secret"));

        let c = load("kind = \"msgraph\"\ntenant_id = \"t1\"\nclient_id = \"c1\"\n").unwrap_err();
        assert!(c.contains("upstreams.p.client_secret"), "{c}");
        let e = load("kind = \"gmail\"\nuser = \"u@example.com\"\nservice_account_key = \"file:/nonexistent\"\ndkim = true\ntenant_id = \"x\"\n").unwrap_err();
        assert!(e.contains("upstreams.p.service_account_key"), "{e}");
        assert!(
            e.contains("`tenant_id` is not an option of kind = \"gmail\""),
            "{e}"
        );
    }

    #[test]
    fn url_checks() {
        assert_eq!(
            check_https_url("https://graph.microsoft.com/").unwrap(),
            "https://graph.microsoft.com"
        );
        assert!(check_https_url("http://127.0.0.1:1/").is_err());
        assert!(check_https_url("https://u:p@h/").is_err());
        assert!(check_https_url("https://h/?x=1").is_err());
        assert!(check_tenant("contoso.onmicrosoft.com").is_ok());
        assert!(check_tenant("a/b").is_err());
        assert!(check_address("me@example.com").is_ok());
        assert!(check_address("me").is_err());
        assert!(check_address("me @x.y").is_err());
    }
}
