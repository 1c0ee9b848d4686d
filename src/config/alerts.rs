//! `[alerts]`: the anomaly detectors, built into `alerts::Settings`.
//!
//! A threshold is a number or `"off"`; windows are durations (`"10m"`).

use super::error::{ConfigError, ConfigErrors};
use super::load::{File, singleton};
use super::units::Dur;
use crate::alerts::{OnSpike, Settings, Webhook};
use serde::Deserialize;
use std::time::Duration;
use toml::Spanned;

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawAlerts {
    pub auth_failures_per_network: Option<Spanned<toml::Value>>,
    pub auth_failures_per_username: Option<Spanned<toml::Value>>,
    pub auth_window: Option<Spanned<Dur>>,
    pub volume_spike_factor: Option<Spanned<toml::Value>>,
    pub volume_min_messages: Option<Spanned<u32>>,
    pub volume_window: Option<Spanned<Dur>>,
    pub volume_baseline: Option<Spanned<u32>>,
    pub on_volume_spike: Option<Spanned<String>>,
    pub volume_suspend_for: Option<Spanned<Dur>>,
    pub inspection_refusals: Option<Spanned<toml::Value>>,
    pub inspection_window: Option<Spanned<Dur>>,
    pub delivery_failure_ratio: Option<Spanned<toml::Value>>,
    pub delivery_min_attempts: Option<Spanned<u32>>,
    pub delivery_window: Option<Spanned<Dur>>,
    pub queue_age: Option<Spanned<String>>,
    pub repeat_after: Option<Spanned<Dur>>,
    pub webhook: Option<Spanned<String>>,
    pub webhook_ca_file: Option<Spanned<String>>,
    pub webhook_timeout: Option<Spanned<Dur>>,
    pub webhook_header: Option<Spanned<String>>,
    pub webhook_secret: Option<Spanned<String>>,
    pub webhook_per_minute: Option<Spanned<u32>>,
}

fn is_off(v: &toml::Value) -> bool {
    v.as_str()
        .is_some_and(|s| s.trim().eq_ignore_ascii_case("off"))
}

/// Reports located errors for one `[alerts]` table.
struct Ctx<'a, 'e> {
    f: &'a File,
    errors: &'e mut ConfigErrors,
}

impl Ctx<'_, '_> {
    fn err<T>(&mut self, at: &Spanned<T>, key: &str, text: impl Into<String>) {
        self.errors.push(ConfigError::new(
            self.f.loc(at),
            format!("alerts.{key}"),
            text.into(),
        ));
    }

    /// A positive integer threshold or `"off"`.
    fn count(
        &mut self,
        v: &Option<Spanned<toml::Value>>,
        key: &str,
        default: Option<u32>,
    ) -> Option<u32> {
        let s = v.as_ref()?;
        if is_off(s.get_ref()) {
            return None;
        }
        match s.get_ref().as_integer().and_then(|n| u32::try_from(n).ok()) {
            Some(n) if n > 0 => Some(n),
            _ => {
                self.err(s, key, "must be a positive integer or \"off\"");
                default
            }
        }
    }

    /// A number passing `valid`, or `"off"`.
    fn number(
        &mut self,
        v: &Option<Spanned<toml::Value>>,
        key: &str,
        default: Option<f64>,
        valid: fn(f64) -> bool,
        hint: &str,
    ) -> Option<f64> {
        let Some(s) = v else { return default };
        if is_off(s.get_ref()) {
            return None;
        }
        let n = s
            .get_ref()
            .as_float()
            .or_else(|| s.get_ref().as_integer().map(|i| i as f64));
        match n {
            Some(n) if valid(n) => Some(n),
            _ => {
                self.err(s, key, format!("{hint} or \"off\""));
                default
            }
        }
    }

    fn window(&mut self, v: &Option<Spanned<Dur>>, key: &str, default: Duration) -> Duration {
        match v {
            Some(d) if d.get_ref().0.is_zero() => {
                self.err(d, key, "must be longer than zero");
                default
            }
            Some(d) => d.get_ref().0,
            None => default,
        }
    }

    fn positive(&mut self, v: &Option<Spanned<u32>>, key: &str, default: u32) -> u32 {
        match v {
            Some(n) if *n.get_ref() == 0 => {
                self.err(n, key, "must be at least 1");
                default
            }
            Some(n) => *n.get_ref(),
            None => default,
        }
    }
}

pub(super) fn build(files: &[File], hostname: &str, errors: &mut ConfigErrors) -> Option<Settings> {
    let (f, raw) = singleton(files, "alerts", |r| r.alerts.as_ref(), errors)?;
    let mut c = Ctx { f, errors };
    let d = Settings::default();
    let webhook_timeout = c.window(
        &raw.webhook_timeout,
        "webhook_timeout",
        Duration::from_secs(10),
    );
    let per_minute = c.positive(&raw.webhook_per_minute, "webhook_per_minute", 10);
    let mut out = Settings {
        auth_failures_per_network: c.count(
            &raw.auth_failures_per_network,
            "auth_failures_per_network",
            d.auth_failures_per_network,
        ),
        auth_failures_per_username: c.count(
            &raw.auth_failures_per_username,
            "auth_failures_per_username",
            d.auth_failures_per_username,
        ),
        auth_window: c.window(&raw.auth_window, "auth_window", d.auth_window),
        volume_spike_factor: c.number(
            &raw.volume_spike_factor,
            "volume_spike_factor",
            d.volume_spike_factor,
            |n| n > 1.0,
            "must be a number above 1",
        ),
        volume_min_messages: c.positive(
            &raw.volume_min_messages,
            "volume_min_messages",
            d.volume_min_messages,
        ),
        volume_window: c.window(&raw.volume_window, "volume_window", d.volume_window),
        volume_baseline: c.positive(&raw.volume_baseline, "volume_baseline", d.volume_baseline),
        on_volume_spike: d.on_volume_spike,
        volume_suspend_for: c.window(
            &raw.volume_suspend_for,
            "volume_suspend_for",
            d.volume_suspend_for,
        ),
        inspection_refusals: c.count(
            &raw.inspection_refusals,
            "inspection_refusals",
            d.inspection_refusals,
        ),
        inspection_window: c.window(
            &raw.inspection_window,
            "inspection_window",
            d.inspection_window,
        ),
        delivery_failure_ratio: c.number(
            &raw.delivery_failure_ratio,
            "delivery_failure_ratio",
            d.delivery_failure_ratio,
            |n| n > 0.0 && n <= 1.0,
            "must be a share between 0 and 1",
        ),
        delivery_min_attempts: c.positive(
            &raw.delivery_min_attempts,
            "delivery_min_attempts",
            d.delivery_min_attempts,
        ),
        delivery_window: c.window(&raw.delivery_window, "delivery_window", d.delivery_window),
        queue_age: d.queue_age,
        repeat_after: c.window(&raw.repeat_after, "repeat_after", d.repeat_after),
        webhook: None,
    };
    if let Some(s) = &raw.on_volume_spike {
        match s.get_ref().as_str() {
            "alert" => out.on_volume_spike = OnSpike::Alert,
            "suspend" => out.on_volume_spike = OnSpike::Suspend,
            _ => c.err(s, "on_volume_spike", "must be \"alert\" or \"suspend\""),
        }
    }
    if let Some(s) = &raw.queue_age {
        let text = s.get_ref().trim();
        if text.eq_ignore_ascii_case("off") {
            out.queue_age = None;
        } else {
            match humantime::parse_duration(text) {
                Ok(d) if !d.is_zero() => out.queue_age = Some(d),
                _ => c.err(s, "queue_age", "must be a duration (\"1h\") or \"off\""),
            }
        }
    }
    if let Some(url) = &raw.webhook {
        let text = url.get_ref().trim();
        if !text.starts_with("https://") && !is_loopback_http(text) {
            c.err(
                url,
                "webhook",
                "must be an https:// URL (plain http only to a loopback address)",
            );
        }
        let header = match (&raw.webhook_header, &raw.webhook_secret) {
            (Some(h), Some(s)) => match crate::secret::resolve(s.get_ref()) {
                Ok(secret) => Some((h.get_ref().clone(), secret)),
                Err(e) => {
                    c.err(s, "webhook_secret", e);
                    None
                }
            },
            (None, None) => None,
            (Some(h), None) => {
                c.err(h, "webhook_secret", "webhook_header needs webhook_secret");
                None
            }
            (None, Some(s)) => {
                c.err(s, "webhook_header", "webhook_secret needs webhook_header");
                None
            }
        };
        out.webhook = Some(Webhook {
            endpoint: crate::https::Endpoint {
                base_url: text.to_string(),
                timeout: webhook_timeout,
                ca_file: raw
                    .webhook_ca_file
                    .as_ref()
                    .map(|p| f.resolve_path(p.get_ref())),
            },
            header,
            per_minute,
            host: hostname.to_string(),
        });
    }
    Some(out)
}

/// `http://127.0.0.1:...` or `http://[::1]:...`: a local receiver.
fn is_loopback_http(url: &str) -> bool {
    let Some(rest) = url.strip_prefix("http://") else {
        return false;
    };
    let host = rest.split(['/', '?']).next().unwrap_or_default();
    let host = host
        .rsplit_once(':')
        .map_or(host, |(h, _)| h)
        .trim_start_matches('[')
        .trim_end_matches(']');
    host.parse::<std::net::IpAddr>()
        .is_ok_and(|ip| ip.is_loopback())
}
