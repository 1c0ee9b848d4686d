//! Validation of `[upstreams.NAME]` tables, one kind at a time.
//!
//! Each kind accepts only its own keys; a key that belongs to another kind
//! is reported with the kind's name so a copy-paste mistake is obvious.

use super::error::{ConfigError, ConfigErrors, Loc};
use super::schema::RawUpstream;
use super::{HttpAuth, HttpFormat, HttpUpstream, Secret, Upstream, UpstreamKind, secret};
use std::path::PathBuf;
use std::time::Duration;
use toml::Spanned;

pub const KINDS: &[&str] = &["http", "directory"];

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
    let present: [(&str, bool, &[&str]); 7] = [
        ("url", raw.url.is_some(), &["http"]),
        ("format", raw.format.is_some(), &["http"]),
        ("bearer_token", raw.bearer_token.is_some(), &["http"]),
        ("basic_username", raw.basic_username.is_some(), &["http"]),
        ("basic_password", raw.basic_password.is_some(), &["http"]),
        ("ca_file", raw.ca_file.is_some(), &["http"]),
        ("path", raw.path.is_some(), &["directory"]),
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
    for (k, is_set, kinds) in present {
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
    let upstream = upstream.map(|kind| Upstream {
        kind,
        dkim: raw.dkim.unwrap_or(true),
    });
    if errors.0.len() > before {
        None
    } else {
        upstream
    }
}
