//! `[quota]`, `[[quota.rules]]` and a credential's `quota = { ... }`.
//!
//! Limits are layered: `[quota.credential|sender|domain|ip]` hold the
//! defaults for each kind of key, a credential's `quota` table overrides the
//! credential defaults key by key, and a `[[quota.rules]]` entry overrides the
//! sender defaults for the senders it matches. A key left out inherits; the
//! string `"unlimited"` lifts an inherited limit. Zero is refused rather than
//! read as either "unlimited" or "blocked": both readings are plausible, and
//! blocking a sender is `allowed_senders`' job.

use super::error::{ConfigError, ConfigErrors};
use super::load::{File, sender_pattern, singleton};
use crate::quota::{Limits, Rule, Setting, Settings, Windows};
use serde::Deserialize;
use serde::de::{self, Deserializer, Visitor};
use std::fmt;
use std::num::NonZeroU32;
use toml::Spanned;

/// An integer or the string `"unlimited"`, checked in `build` where the
/// error can name its line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RawSetting {
    Int(i64),
    Text(String),
}

impl<'de> Deserialize<'de> for RawSetting {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = RawSetting;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a positive integer or \"unlimited\"")
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<RawSetting, E> {
                Ok(RawSetting::Int(v))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<RawSetting, E> {
                Ok(RawSetting::Int(i64::try_from(v).unwrap_or(i64::MAX)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<RawSetting, E> {
                Ok(RawSetting::Text(v.to_string()))
            }
        }
        d.deserialize_any(V)
    }
}

pub(super) type RawOpt = Option<Spanned<RawSetting>>;

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawLimits {
    pub per_minute: RawOpt,
    pub per_hour: RawOpt,
    pub per_day: RawOpt,
    pub burst: RawOpt,
    pub recipients_per_minute: RawOpt,
    pub recipients_per_hour: RawOpt,
    pub recipients_per_day: RawOpt,
    pub recipients_burst: RawOpt,
}

/// serde cannot combine `flatten` with `deny_unknown_fields`, so the limit
/// keys are repeated here.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRule {
    pub name: Spanned<String>,
    pub senders: Vec<Spanned<String>>,
    #[serde(default)]
    pub shared: bool,
    pub per_minute: RawOpt,
    pub per_hour: RawOpt,
    pub per_day: RawOpt,
    pub burst: RawOpt,
    pub recipients_per_minute: RawOpt,
    pub recipients_per_hour: RawOpt,
    pub recipients_per_day: RawOpt,
    pub recipients_burst: RawOpt,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawQuota {
    pub credential: Option<Spanned<RawLimits>>,
    pub sender: Option<Spanned<RawLimits>>,
    pub domain: Option<Spanned<RawLimits>>,
    pub ip: Option<Spanned<RawLimits>>,
    #[serde(default)]
    pub rules: Vec<Spanned<RawRule>>,
}

pub(super) fn setting(f: &File, v: &RawOpt, key: &str, errors: &mut ConfigErrors) -> Setting {
    let Some(v) = v else {
        return Setting::Inherit;
    };
    match v.get_ref() {
        RawSetting::Int(n) => match u32::try_from(*n).ok().and_then(NonZeroU32::new) {
            Some(n) => Setting::Max(n),
            None => {
                let hint = if *n == 0 {
                    "0 is not accepted: write \"unlimited\" for no limit (to stop a sender, leave it out of allowed_senders)"
                } else {
                    "must be a positive integer (at most 4294967295) or \"unlimited\""
                };
                errors.push(ConfigError::new(f.loc(v), key, hint));
                Setting::Inherit
            }
        },
        RawSetting::Text(t) if t.trim().eq_ignore_ascii_case("unlimited") => Setting::Unlimited,
        RawSetting::Text(t) => {
            errors.push(ConfigError::new(
                f.loc(v),
                key,
                format!("{t:?} is not a limit: use a positive integer or \"unlimited\""),
            ));
            Setting::Inherit
        }
    }
}

/// The eight limit keys of a table, in file order.
type Fields<'a> = [(&'static str, &'a RawOpt); 8];

fn fields_of_limits(r: &RawLimits) -> Fields<'_> {
    [
        ("per_minute", &r.per_minute),
        ("per_hour", &r.per_hour),
        ("per_day", &r.per_day),
        ("burst", &r.burst),
        ("recipients_per_minute", &r.recipients_per_minute),
        ("recipients_per_hour", &r.recipients_per_hour),
        ("recipients_per_day", &r.recipients_per_day),
        ("recipients_burst", &r.recipients_burst),
    ]
}

fn fields_of_rule(r: &RawRule) -> Fields<'_> {
    [
        ("per_minute", &r.per_minute),
        ("per_hour", &r.per_hour),
        ("per_day", &r.per_day),
        ("burst", &r.burst),
        ("recipients_per_minute", &r.recipients_per_minute),
        ("recipients_per_hour", &r.recipients_per_hour),
        ("recipients_per_day", &r.recipients_per_day),
        ("recipients_burst", &r.recipients_burst),
    ]
}

fn build_fields(f: &File, fields: Fields<'_>, prefix: &str, errors: &mut ConfigErrors) -> Limits {
    let mut s = [Setting::Inherit; 8];
    for (i, (name, v)) in fields.iter().enumerate() {
        s[i] = setting(f, v, &format!("{prefix}.{name}"), errors);
        if matches!(s[i], Setting::Unlimited)
            && name.ends_with("burst")
            && let Some(v) = v
        {
            errors.push(ConfigError::new(
                f.loc(v),
                format!("{prefix}.{name}"),
                "a burst must be a positive integer",
            ));
        }
    }
    let w = |i: usize| Windows {
        per_minute: s[i],
        per_hour: s[i + 1],
        per_day: s[i + 2],
        burst: s[i + 3],
    };
    Limits {
        messages: w(0),
        recipients: w(4),
    }
}

/// A credential's `quota = { ... }` table (`key` is `credentials.NAME.quota`).
pub(super) fn build_credential_quota(
    f: &File,
    raw: &Spanned<RawLimits>,
    key: &str,
    errors: &mut ConfigErrors,
) -> Limits {
    build_fields(f, fields_of_limits(raw.get_ref()), key, errors)
}

pub(super) fn build(files: &[File], errors: &mut ConfigErrors) -> Settings {
    let mut out = Settings::default();
    let Some((f, raw)) = singleton(files, "quota", |r| r.quota.as_ref(), errors) else {
        return out;
    };
    for (name, table, slot) in [
        ("credential", &raw.credential, &mut out.credential),
        ("sender", &raw.sender, &mut out.sender),
        ("domain", &raw.domain, &mut out.domain),
        ("ip", &raw.ip, &mut out.ip),
    ] {
        if let Some(t) = table {
            *slot = build_fields(
                f,
                fields_of_limits(t.get_ref()),
                &format!("quota.{name}"),
                errors,
            );
        }
    }
    for r in &raw.rules {
        let rule = r.get_ref();
        let name = rule.name.get_ref().trim().to_string();
        let prefix = format!("quota.rules.{name}");
        let valid_name = !name.is_empty()
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
        if !valid_name {
            errors.push(ConfigError::new(
                f.loc(&rule.name),
                "quota.rules.name",
                "a rule name must be non-empty and use only letters, digits, '-', '_' and '.'",
            ));
        } else if out.rules.iter().any(|o| o.name == name) {
            errors.push(ConfigError::new(
                f.loc(&rule.name),
                "quota.rules.name",
                format!("another [[quota.rules]] entry is already named {name:?}"),
            ));
        }
        let mut senders = Vec::new();
        for p in &rule.senders {
            match sender_pattern(p.get_ref()) {
                Ok(p) => senders.push(p),
                Err(e) => errors.push(ConfigError::new(f.loc(p), format!("{prefix}.senders"), e)),
            }
        }
        if rule.senders.is_empty() {
            errors.push(ConfigError::new(
                f.loc(r),
                format!("{prefix}.senders"),
                "a rule needs at least one sender pattern",
            ));
        }
        out.rules.push(Rule {
            name,
            senders,
            shared: rule.shared,
            limits: build_fields(f, fields_of_rule(rule), &prefix, errors),
        });
    }
    out
}

#[cfg(test)]
mod tests;
