//! Validation of `[upstreams.NAME]` tables: the kind, its own keys (each
//! kind's builder, here for `http` and `directory`, in `upstream_api` and
//! `upstream_oauth` for the providers), then the options every kind shares.
//!
//! A key the kind does not read is reported with the kind's name, so a
//! copy-paste mistake is obvious (see `upstream_ctx`).

use super::UpstreamEntry;
use super::error::{ConfigError, ConfigErrors, Loc};
use super::schema::RawUpstream;
use super::upstream_ctx::{Ctx, LocFn};
use crate::deliver::OnAmbiguous;
use crate::upstream::{Kind, Settings, directory, http};
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

pub(super) fn build(
    name: &str,
    table: Loc,
    raw: &RawUpstream,
    present: &[String],
    resolve: &dyn Fn(&str) -> PathBuf,
    loc: LocFn<'_>,
    errors: &mut ConfigErrors,
) -> Option<UpstreamEntry> {
    let Some(kind) = Kind::from_name(raw.kind.get_ref()) else {
        let names: Vec<&str> = Kind::ALL.iter().map(|k| k.name()).collect();
        errors.push(ConfigError::new(
            loc(&raw.kind),
            format!("upstreams.{name}.kind"),
            format!(
                "unknown upstream kind {:?}; supported: {}",
                raw.kind.get_ref(),
                names.join(", ")
            ),
        ));
        return None;
    };
    let before = errors.0.len();
    let mut c = Ctx {
        name,
        kind,
        table,
        raw,
        present,
        used: vec!["kind"],
        resolve,
        loc,
        errors,
    };
    let settings = match kind {
        Kind::Http => http_kind(&mut c),
        Kind::Directory => directory_kind(&mut c),
        Kind::Ses => super::upstream_api::ses(&mut c),
        Kind::Sendgrid => super::upstream_api::sendgrid(&mut c),
        Kind::Mailgun => super::upstream_api::mailgun(&mut c),
        Kind::Postmark => super::upstream_api::postmark(&mut c),
        Kind::Resend => super::upstream_api::resend(&mut c),
        Kind::Msgraph => super::upstream_oauth::msgraph(&mut c),
        Kind::Gmail => super::upstream_oauth::gmail(&mut c),
    };
    let upstream = shared_options(&mut c, settings);
    c.strays();
    if errors.0.len() > before {
        None
    } else {
        upstream
    }
}

/// The options every kind accepts, around the kind's own settings.
fn shared_options(c: &mut Ctx<'_>, settings: Option<Settings>) -> Option<UpstreamEntry> {
    let raw = c.raw;
    let dkim = c.take("dkim", &raw.dkim).copied();
    let pass_control_headers = c
        .take("pass_control_headers", &raw.pass_control_headers)
        .copied()
        .unwrap_or(false);
    let (max_concurrency, rate) = pacing(c);
    let (on_ambiguous, breaker_failures) = failure_handling(c);
    let breaker_cooldown = c
        .take("breaker_cooldown", &raw.breaker_cooldown)
        .map_or(Duration::from_secs(30), |d| d.0);
    Some(UpstreamEntry {
        dkim: dkim.unwrap_or(c.kind.keeps_signature()),
        settings: settings?,
        max_concurrency,
        rate,
        on_ambiguous,
        breaker_failures,
        breaker_cooldown,
        pass_control_headers,
    })
}

fn directory_kind(c: &mut Ctx<'_>) -> Option<Settings> {
    let raw = c.raw;
    match c.take("path", &raw.path) {
        Some(p) => Some(Settings::Directory(directory::Settings {
            path: (c.resolve)(p.get_ref()),
        })),
        None => {
            c.missing("path");
            None
        }
    }
}

fn http_kind(c: &mut Ctx<'_>) -> Option<Settings> {
    let raw = c.raw;
    let bearer = c.take("bearer_token", &raw.bearer_token);
    let username = c.take("basic_username", &raw.basic_username);
    let password = c.take("basic_password", &raw.basic_password);
    let auth = match (bearer, username, password) {
        (Some(t), None, None) => c.secret(t, "bearer_token").map(http::HttpAuth::Bearer),
        (None, Some(u), Some(p)) => {
            c.secret(p, "basic_password")
                .map(|password| http::HttpAuth::Basic {
                    username: u.get_ref().clone(),
                    password,
                })
        }
        (None, None, None) => None,
        _ => {
            let message = "set either bearer_token, or basic_username + basic_password";
            c.error(c.table.clone(), "bearer_token", message);
            None
        }
    };
    let format = match c.take("format", &raw.format) {
        None => http::Format::Raw,
        Some(f) => http::Format::from_str(f.get_ref()).unwrap_or_else(|_| {
            let message = format!("unknown format {:?}; use \"raw\" or \"json\"", f.get_ref());
            c.error_at(f, "format", message);
            http::Format::Raw
        }),
    };
    let url = match c.take("url", &raw.url) {
        Some(u) if u.get_ref().starts_with("https://") => u.get_ref().clone(),
        Some(u) => {
            let message = "url must start with https:// (mail is never sent in clear text)";
            c.error_at(u, "url", message);
            String::new()
        }
        None => {
            c.missing("url");
            String::new()
        }
    };
    let timeout = c.take("timeout", &raw.timeout).map(|d| d.0);
    let ca_file = c.ca_file();
    Some(Settings::Http(http::Settings {
        url,
        format,
        auth,
        timeout: timeout.unwrap_or(Duration::from_secs(30)),
        ca_file,
    }))
}

/// `max_concurrency` and `rate`, which every kind accepts.
fn pacing(c: &mut Ctx<'_>) -> (Option<usize>, Option<crate::quota::Rate>) {
    let raw = c.raw;
    let max_concurrency = c
        .take("max_concurrency", &raw.max_concurrency)
        .and_then(|n| {
            let v = *n.get_ref();
            if (1..=1024).contains(&v) {
                usize::try_from(v).ok()
            } else {
                c.error(
                    c.table.clone(),
                    "max_concurrency",
                    format!("{v} is not between 1 and 1024"),
                );
                None
            }
        });
    let rate = c.take("rate", &raw.rate).and_then(|r| {
        crate::quota::Rate::parse(r.get_ref())
            .map_err(|e| c.error_at(r, "rate", e))
            .ok()
    });
    (max_concurrency, rate)
}

/// `on_ambiguous` and `breaker_failures`, which every kind accepts.
fn failure_handling(c: &mut Ctx<'_>) -> (OnAmbiguous, u32) {
    let raw = c.raw;
    let on_ambiguous = match c
        .take("on_ambiguous", &raw.on_ambiguous)
        .map(|s| (s, s.get_ref().as_str()))
    {
        None | Some((_, "retry")) => OnAmbiguous::Retry,
        Some((_, "dead-letter")) => OnAmbiguous::DeadLetter,
        Some((s, other)) => {
            let message = format!("{other:?} is not \"retry\" or \"dead-letter\"");
            c.error_at(s, "on_ambiguous", message);
            OnAmbiguous::Retry
        }
    };
    let breaker_failures = match c.take("breaker_failures", &raw.breaker_failures) {
        None => 5,
        Some(n) => match u32::try_from(*n.get_ref()) {
            Ok(v @ 1..=1000) => v,
            _ => {
                let message = format!("{} is not between 1 and 1000", n.get_ref());
                c.error(c.table.clone(), "breaker_failures", message);
                5
            }
        },
    };
    (on_ambiguous, breaker_failures)
}
