//! Validation of `[upstreams.NAME]` tables, one kind at a time.
//!
//! Each kind accepts only its own keys; a key that belongs to another kind
//! is reported with the kind's name so a copy-paste mistake is obvious.

use super::error::{ConfigError, ConfigErrors, Loc};
use super::schema::RawUpstream;
use super::{HttpAuth, HttpFormat, HttpUpstream, Upstream, UpstreamKind};
use crate::secret::{self, Secret};
use std::path::PathBuf;
use std::time::Duration;
use toml::Spanned;

pub const KINDS: &[&str] = &[
    "http",
    "directory",
    "ses",
    "sendgrid",
    "mailgun",
    "postmark",
    "resend",
    "msgraph",
    "gmail",
];

type LocFn<'a> = &'a dyn Fn(&Spanned<String>) -> Loc;

pub(super) fn build(
    name: &str,
    table: Loc,
    raw: &RawUpstream,
    resolve: &dyn Fn(&str) -> PathBuf,
    loc: LocFn<'_>,
    errors: &mut ConfigErrors,
) -> Option<Upstream> {
    let key = |k: &str| format!("upstreams.{name}.{k}");
    let kind = raw.kind.get_ref().as_str();
    // (key, present) for every kind-specific option, to refuse strays.
    const API: &[&str] = super::upstream_api::KINDS;
    const OAUTH: &[&str] = super::upstream_oauth::KINDS;
    let present: &[(&str, bool, &[&str])] = &[
        ("url", raw.url.is_some(), &["http"]),
        ("format", raw.format.is_some(), &["http"]),
        ("bearer_token", raw.bearer_token.is_some(), &["http"]),
        ("basic_username", raw.basic_username.is_some(), &["http"]),
        ("basic_password", raw.basic_password.is_some(), &["http"]),
        (
            "ca_file",
            raw.ca_file.is_some(),
            &[
                "http", "ses", "sendgrid", "mailgun", "postmark", "resend", "msgraph", "gmail",
            ],
        ),
        ("path", raw.path.is_some(), &["directory"]),
        (
            "base_url",
            raw.base_url.is_some(),
            &[
                "ses", "sendgrid", "mailgun", "postmark", "resend", "msgraph", "gmail",
            ],
        ),
        ("region", raw.region.is_some(), &["ses", "mailgun"]),
        ("access_key_id", raw.access_key_id.is_some(), &["ses"]),
        (
            "secret_access_key",
            raw.secret_access_key.is_some(),
            &["ses"],
        ),
        ("session_token", raw.session_token.is_some(), &["ses"]),
        (
            "configuration_set",
            raw.configuration_set.is_some(),
            &["ses"],
        ),
        (
            "api_key",
            raw.api_key.is_some(),
            &["sendgrid", "mailgun", "resend"],
        ),
        ("categories", raw.categories.is_some(), &["sendgrid"]),
        ("tags", raw.tags.is_some(), &["mailgun"]),
        ("tag", raw.tag.is_some(), &["postmark"]),
        ("domain", raw.domain.is_some(), &["mailgun"]),
        ("server_token", raw.server_token.is_some(), &["postmark"]),
        (
            "message_stream",
            raw.message_stream.is_some(),
            &["postmark"],
        ),
        ("token_url", raw.token_url.is_some(), OAUTH),
        ("tenant_id", raw.tenant_id.is_some(), &["msgraph"]),
        ("client_id", raw.client_id.is_some(), &["msgraph"]),
        ("client_secret", raw.client_secret.is_some(), &["msgraph"]),
        (
            "client_certificate",
            raw.client_certificate.is_some(),
            &["msgraph"],
        ),
        ("client_key", raw.client_key.is_some(), &["msgraph"]),
        ("mailbox", raw.mailbox.is_some(), &["msgraph"]),
        (
            "save_to_sent_items",
            raw.save_to_sent_items.is_some(),
            &["msgraph"],
        ),
        (
            "service_account_key",
            raw.service_account_key.is_some(),
            &["gmail"],
        ),
        ("user", raw.user.is_some(), &["gmail"]),
        (
            "header_recipients",
            raw.header_recipients.is_some(),
            &["msgraph", "gmail"],
        ),
    ];
    if !KINDS.contains(&kind) {
        errors.push(ConfigError::new(
            loc(&raw.kind),
            key("kind"),
            format!(
                "unknown upstream kind {kind:?}; supported: {}",
                KINDS.join(", ")
            ),
        ));
        return None;
    }
    let before = errors.0.len();
    for &(k, is_set, kinds) in present {
        if is_set && !kinds.contains(&kind) {
            errors.push(ConfigError::new(
                table.clone(),
                key(k),
                format!("`{k}` is not an option of kind = {kind:?}"),
            ));
        }
    }
    if raw.timeout.is_some() && kind == "directory" {
        errors.push(ConfigError::new(
            table.clone(),
            key("timeout"),
            "`timeout` is not an option of kind = \"directory\"",
        ));
    }
    let mut secret_of = |s: &Spanned<String>, k: &str| -> Option<Secret> {
        secret::resolve(s.get_ref())
            .map_err(|e| errors.push(ConfigError::new(loc(s), key(k), e)))
            .ok()
    };
    let upstream = match kind {
        k if API.contains(&k) => {
            super::upstream_api::build(name, table.clone(), raw, resolve, loc, errors)
        }
        k if OAUTH.contains(&k) => {
            super::upstream_oauth::build(name, table.clone(), raw, resolve, loc, errors)
        }
        "directory" => match &raw.path {
            Some(p) => Some(UpstreamKind::Directory {
                path: resolve(p.get_ref()),
            }),
            None => {
                errors.push(ConfigError::new(
                    table.clone(),
                    key("path"),
                    "kind = \"directory\" needs `path`",
                ));
                None
            }
        },
        _ => {
            let auth = match (&raw.bearer_token, &raw.basic_username, &raw.basic_password) {
                (Some(t), None, None) => secret_of(t, "bearer_token").map(HttpAuth::Bearer),
                (None, Some(u), Some(p)) => {
                    secret_of(p, "basic_password").map(|password| HttpAuth::Basic {
                        username: u.get_ref().clone(),
                        password,
                    })
                }
                (None, None, None) => None,
                _ => {
                    errors.push(ConfigError::new(
                        table.clone(),
                        key("bearer_token"),
                        "set either bearer_token, or basic_username + basic_password",
                    ));
                    None
                }
            };
            let format = match raw.format.as_ref().map(|f| (f, f.get_ref().as_str())) {
                None | Some((_, "raw")) => HttpFormat::Raw,
                Some((_, "json")) => HttpFormat::Json,
                Some((f, other)) => {
                    errors.push(ConfigError::new(
                        loc(f),
                        key("format"),
                        format!("unknown format {other:?}; use \"raw\" or \"json\""),
                    ));
                    HttpFormat::Raw
                }
            };
            let url = match &raw.url {
                Some(u) if u.get_ref().starts_with("https://") => u.get_ref().clone(),
                Some(u) => {
                    errors.push(ConfigError::new(
                        loc(u),
                        key("url"),
                        "url must start with https:// (mail is never sent in clear text)",
                    ));
                    String::new()
                }
                None => {
                    errors.push(ConfigError::new(
                        table.clone(),
                        key("url"),
                        "kind = \"http\" needs `url`",
                    ));
                    String::new()
                }
            };
            let ca_file = raw.ca_file.as_ref().map(|c| {
                let p = resolve(c.get_ref());
                if let Err(e) = std::fs::File::open(&p) {
                    errors.push(ConfigError::new(
                        loc(c),
                        key("ca_file"),
                        format!("cannot read {}: {e}", p.display()),
                    ));
                }
                p
            });
            Some(UpstreamKind::Http(HttpUpstream {
                url,
                format,
                auth,
                timeout: raw.timeout.map_or(Duration::from_secs(30), |d| d.0),
                ca_file,
            }))
        }
    };
    let rebuilds = super::upstream_api::REBUILDS_MESSAGE.contains(&kind)
        || super::upstream_oauth::OWN_DKIM.contains(&kind);
    let (max_concurrency, rate) = pacing(name, &table, raw, loc, errors);
    let (on_ambiguous, breaker_failures) = failure_handling(name, &table, raw, loc, errors);
    let upstream = upstream.map(|kind| Upstream {
        kind,
        dkim: raw.dkim.unwrap_or(!rebuilds),
        max_concurrency,
        rate,
        on_ambiguous,
        breaker_failures,
        breaker_cooldown: raw
            .breaker_cooldown
            .map_or(Duration::from_secs(30), |d| d.0),
        pass_control_headers: raw.pass_control_headers.unwrap_or(false),
    });
    if errors.0.len() > before {
        None
    } else {
        upstream
    }
}

/// `max_concurrency` and `rate`, which every kind accepts.
fn pacing(
    name: &str,
    table: &Loc,
    raw: &RawUpstream,
    loc: LocFn<'_>,
    errors: &mut ConfigErrors,
) -> (Option<usize>, Option<crate::quota::Rate>) {
    let max_concurrency = raw.max_concurrency.as_ref().and_then(|n| {
        let v = *n.get_ref();
        if (1..=1024).contains(&v) {
            usize::try_from(v).ok()
        } else {
            errors.push(ConfigError::new(
                table.clone(),
                format!("upstreams.{name}.max_concurrency"),
                format!("{v} is not between 1 and 1024"),
            ));
            None
        }
    });
    let rate = raw.rate.as_ref().and_then(|r| {
        crate::quota::Rate::parse(r.get_ref())
            .map_err(|e| {
                errors.push(ConfigError::new(
                    loc(r),
                    format!("upstreams.{name}.rate"),
                    e,
                ));
            })
            .ok()
    });
    (max_concurrency, rate)
}

/// `on_ambiguous` and `breaker_failures`, which every kind accepts.
fn failure_handling(
    name: &str,
    table: &Loc,
    raw: &RawUpstream,
    loc: LocFn<'_>,
    errors: &mut ConfigErrors,
) -> (super::OnAmbiguous, u32) {
    let on_ambiguous = match raw.on_ambiguous.as_ref().map(|s| (s, s.get_ref().as_str())) {
        None | Some((_, "retry")) => super::OnAmbiguous::Retry,
        Some((_, "dead-letter")) => super::OnAmbiguous::DeadLetter,
        Some((s, other)) => {
            errors.push(ConfigError::new(
                loc(s),
                format!("upstreams.{name}.on_ambiguous"),
                format!("{other:?} is not \"retry\" or \"dead-letter\""),
            ));
            super::OnAmbiguous::Retry
        }
    };
    let breaker_failures = match raw.breaker_failures.as_ref() {
        None => 5,
        Some(n) => match u32::try_from(*n.get_ref()) {
            Ok(v @ 1..=1000) => v,
            _ => {
                errors.push(ConfigError::new(
                    table.clone(),
                    format!("upstreams.{name}.breaker_failures"),
                    format!("{} is not between 1 and 1000", n.get_ref()),
                ));
                5
            }
        },
    };
    (on_ambiguous, breaker_failures)
}
