//! `[abuse]`: brute-force and flood protection, built into
//! `access::abuse::Settings`.

use super::error::{ConfigError, ConfigErrors};
use super::load::{File, singleton};
use super::quota::{RawOpt, setting};
use super::units::Dur;
use crate::access::abuse::Settings;
use crate::quota::Setting;
use serde::Deserialize;
use std::num::NonZeroU32;
use std::time::Duration;
use toml::Spanned;

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawAbuse {
    pub auth_failures: RawOpt,
    pub auth_window: Option<Spanned<Dur>>,
    pub lockout: Option<Spanned<Dur>>,
    pub lockout_max: Option<Spanned<Dur>>,
    pub max_auth_attempts_per_connection: RawOpt,
    pub auth_failure_delay: Option<Spanned<Dur>>,
    pub connections_per_ip_per_minute: RawOpt,
    pub known_client_ttl: Option<Spanned<Dur>>,
    pub ipv6_prefix: Option<Spanned<i64>>,
}

/// Longest accepted `auth_failure_delay`: the delay holds a connection open.
const MAX_FAILURE_DELAY: Duration = Duration::from_secs(30);

/// Accepted `ipv6_prefix` values: shorter than /32 would lump whole
/// providers together (one client's failures would lock out thousands).
const IPV6_PREFIXES: std::ops::RangeInclusive<i64> = 32..=128;

pub(super) fn build(files: &[File], errors: &mut ConfigErrors) -> Settings {
    let mut out = Settings::default();
    let Some((f, raw)) = singleton(files, "abuse", |r| r.abuse.as_ref(), errors) else {
        return out;
    };
    let mut count = |v: &RawOpt, key: &str, default: Option<NonZeroU32>| match setting(
        f,
        v,
        &format!("abuse.{key}"),
        errors,
    ) {
        Setting::Inherit => default,
        Setting::Unlimited => None,
        Setting::Max(n) => Some(n),
    };
    out.auth_failures = count(&raw.auth_failures, "auth_failures", out.auth_failures);
    out.max_auth_attempts_per_connection = count(
        &raw.max_auth_attempts_per_connection,
        "max_auth_attempts_per_connection",
        out.max_auth_attempts_per_connection,
    );
    out.connections_per_ip_per_minute = count(
        &raw.connections_per_ip_per_minute,
        "connections_per_ip_per_minute",
        out.connections_per_ip_per_minute,
    );
    let mut positive = |v: &Option<Spanned<Dur>>, key: &str, default: Duration| match v {
        Some(d) if d.get_ref().0.is_zero() => {
            errors.push(ConfigError::new(
                f.loc(d),
                format!("abuse.{key}"),
                "must be longer than zero",
            ));
            default
        }
        Some(d) => d.get_ref().0,
        None => default,
    };
    out.auth_window = positive(&raw.auth_window, "auth_window", out.auth_window);
    out.lockout = positive(&raw.lockout, "lockout", out.lockout);
    out.lockout_max = positive(&raw.lockout_max, "lockout_max", out.lockout_max);
    out.known_client_ttl = positive(
        &raw.known_client_ttl,
        "known_client_ttl",
        out.known_client_ttl,
    );
    if out.lockout_max < out.lockout {
        let at = raw.lockout_max.as_ref().or(raw.lockout.as_ref());
        if let Some(d) = at {
            errors.push(ConfigError::new(
                f.loc(d),
                "abuse.lockout_max",
                "lockout_max is shorter than lockout",
            ));
        }
    }
    if let Some(d) = &raw.auth_failure_delay {
        if d.get_ref().0 > MAX_FAILURE_DELAY {
            errors.push(ConfigError::new(
                f.loc(d),
                "abuse.auth_failure_delay",
                "at most \"30s\": a longer delay only holds connections open",
            ));
        }
        out.auth_failure_delay = d.get_ref().0;
    }
    if let Some(p) = &raw.ipv6_prefix {
        match u8::try_from(*p.get_ref()) {
            Ok(n) if IPV6_PREFIXES.contains(p.get_ref()) => out.ipv6_prefix = n,
            _ => errors.push(ConfigError::new(
                f.loc(p),
                "abuse.ipv6_prefix",
                "must be a prefix length from 32 to 128 (64: one client per /64)",
            )),
        }
    }
    out
}
