//! The sliding-window detectors, on an explicit clock (milliseconds) so
//! their arithmetic is tested without waiting.

use std::collections::{HashMap, VecDeque};
use std::time::Duration;

use super::settings::{OnSpike, Settings};

/// What a detector watches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    AuthFailuresNetwork,
    AuthFailuresUsername,
    VolumeSpike,
    InspectionRefusals,
    DeliveryFailures,
    QueueAge,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::AuthFailuresNetwork => "auth_failures_network",
            Kind::AuthFailuresUsername => "auth_failures_username",
            Kind::VolumeSpike => "volume_spike",
            Kind::InspectionRefusals => "inspection_refusals",
            Kind::DeliveryFailures => "delivery_failures",
            Kind::QueueAge => "queue_age",
        }
    }
}

/// One anomaly: what, for which key (a network, username, credential or
/// upstream), the figure that crossed the threshold, and what to do.
#[derive(Debug, Clone, PartialEq)]
pub struct Alert {
    pub kind: Kind,
    pub key: String,
    pub value: f64,
    pub threshold: f64,
    pub detail: String,
    /// Suspend the credential `key` for this long.
    pub suspend: Option<Duration>,
}

impl Settings {
    /// A count detector's threshold and window: failed AUTH per network
    /// or username, inspection refusals.
    pub fn burst(&self, kind: Kind) -> Option<(u32, Duration)> {
        match kind {
            Kind::AuthFailuresNetwork => self
                .auth_failures_per_network
                .map(|t| (t, self.auth_window)),
            Kind::AuthFailuresUsername => self
                .auth_failures_per_username
                .map(|t| (t, self.auth_window)),
            Kind::InspectionRefusals => self
                .inspection_refusals
                .map(|t| (t, self.inspection_window)),
            _ => None,
        }
    }

    /// The alert of a count detector that saw `n` events (also built from
    /// the counts shared through Redis, `src/cluster/alerts.rs`).
    pub fn burst_alert(&self, kind: Kind, key: &str, n: u32) -> Alert {
        let (threshold, window) = self.burst(kind).unwrap_or((n, Duration::ZERO));
        let what = match kind {
            Kind::InspectionRefusals => "messages refused by inspection",
            _ => "failed AUTH attempts",
        };
        Alert {
            kind,
            key: key.to_string(),
            value: f64::from(n),
            threshold: f64::from(threshold),
            detail: format!("{n} {what} within {}", humantime::format_duration(window)),
            suspend: None,
        }
    }

    /// The volume-spike alert for `current` messages against `mean`.
    pub fn volume_alert(&self, credential: &str, current: u32, mean: f64, factor: f64) -> Alert {
        let suspend = (self.on_volume_spike == OnSpike::Suspend).then_some(self.volume_suspend_for);
        Alert {
            kind: Kind::VolumeSpike,
            key: credential.to_string(),
            value: f64::from(current),
            threshold: (factor * mean).max(f64::from(self.volume_min_messages)),
            detail: format!(
                "{current} messages in the current {} against a mean of {mean:.1} over the windows before",
                humantime::format_duration(self.volume_window)
            ),
            suspend,
        }
    }
}

/// Keys tracked per detector before stale ones are swept.
const SWEEP_AT: usize = 10_000;

/// "At least `threshold` events within `window`" per key: keeps at most
/// the last `threshold` event times of each key.
#[derive(Debug, Default)]
struct Burst {
    times: HashMap<String, VecDeque<u64>>,
}

impl Burst {
    /// Records one event; the count within the window when it reaches
    /// `threshold`.
    fn record(&mut self, key: &str, now: u64, window: u64, threshold: u32) -> Option<u32> {
        if self.times.len() >= SWEEP_AT && !self.times.contains_key(key) {
            self.times
                .retain(|_, t| t.back().is_some_and(|&b| b + window > now));
        }
        let t = self.times.entry(key.to_string()).or_default();
        t.push_back(now);
        while t.len() > threshold as usize || t.front().is_some_and(|&f| f + window <= now) {
            t.pop_front();
        }
        (t.len() >= threshold as usize).then(|| u32::try_from(t.len()).unwrap_or(u32::MAX))
    }
}

/// Attempts and failures per second, per upstream.
#[derive(Debug, Default)]
struct Ratio {
    seconds: HashMap<String, VecDeque<(u64, u32, u32)>>,
}

impl Ratio {
    /// Records one attempt; (attempts, failures) within the window.
    fn record(&mut self, key: &str, failed: bool, now: u64, window: u64) -> (u32, u32) {
        let s = self.seconds.entry(key.to_string()).or_default();
        let sec = now / 1000;
        match s.back_mut() {
            Some((t, a, f)) if *t == sec => {
                *a += 1;
                *f += u32::from(failed);
            }
            _ => s.push_back((sec, 1, u32::from(failed))),
        }
        let oldest = (now.saturating_sub(window)) / 1000;
        while s.front().is_some_and(|&(t, _, _)| t < oldest) {
            s.pop_front();
        }
        s.iter().fold((0, 0), |(a, f), &(_, x, y)| (a + x, f + y))
    }
}

/// Messages per window per credential, the current window and the ones
/// before it.
#[derive(Debug, Default)]
struct Volume {
    windows: HashMap<String, (u64, VecDeque<(u64, u32)>)>,
}

impl Volume {
    /// Records one message; (this window's count, mean of the earlier
    /// windows) once the credential has a full earlier window to compare.
    fn record(&mut self, key: &str, now: u64, window: u64, baseline: u32) -> Option<(u32, f64)> {
        let index = now / window.max(1);
        let (first, w) = self
            .windows
            .entry(key.to_string())
            .or_insert_with(|| (index, VecDeque::new()));
        match w.back_mut() {
            Some((i, n)) if *i == index => *n += 1,
            _ => w.push_back((index, 1)),
        }
        while w
            .front()
            .is_some_and(|&(i, _)| i + u64::from(baseline) < index)
        {
            w.pop_front();
        }
        let history = (index - *first).min(u64::from(baseline));
        if history == 0 {
            return None;
        }
        let current = w.back().map_or(0, |&(_, n)| n);
        let earlier: u32 = w
            .iter()
            .filter(|&&(i, _)| i < index && i + history >= index)
            .map(|&(_, n)| n)
            .sum();
        Some((current, f64::from(earlier) / history as f64))
    }
}

/// Every detector's state for one configuration.
#[derive(Debug)]
pub struct Detectors {
    settings: Settings,
    auth_network: Burst,
    auth_username: Burst,
    inspection: Burst,
    delivery: Ratio,
    volume: Volume,
    fired: HashMap<(Kind, String), u64>,
}

fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

impl Detectors {
    pub fn new(settings: Settings) -> Detectors {
        Detectors {
            settings,
            auth_network: Burst::default(),
            auth_username: Burst::default(),
            inspection: Burst::default(),
            delivery: Ratio::default(),
            volume: Volume::default(),
            fired: HashMap::new(),
        }
    }

    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// New settings; windows are kept (their meaning may have changed, but
    /// forgetting them would blind the detectors for a window).
    pub fn reconfigure(&mut self, settings: Settings) {
        self.settings = settings;
    }

    /// An alert for (kind, key) unless one was raised within `repeat_after`.
    fn fire(&mut self, now: u64, alert: Alert) -> Option<Alert> {
        let key = (alert.kind, alert.key.clone());
        let repeat = ms(self.settings.repeat_after);
        if self.fired.get(&key).is_some_and(|&t| t + repeat > now) {
            return None;
        }
        if self.fired.len() >= SWEEP_AT {
            self.fired.retain(|_, t| *t + repeat > now);
        }
        self.fired.insert(key, now);
        Some(alert)
    }

    /// A failed AUTH (wrong secret) from `network` for `username`.
    pub fn auth_failed(&mut self, network: &str, username: &str, now: u64) -> Vec<Alert> {
        let window = ms(self.settings.auth_window);
        let mut out = Vec::new();
        let checks = [
            (
                Kind::AuthFailuresNetwork,
                network,
                self.settings.auth_failures_per_network,
            ),
            (
                Kind::AuthFailuresUsername,
                username,
                self.settings.auth_failures_per_username,
            ),
        ];
        for (kind, key, threshold) in checks {
            let Some(threshold) = threshold else { continue };
            let burst = match kind {
                Kind::AuthFailuresNetwork => &mut self.auth_network,
                _ => &mut self.auth_username,
            };
            if let Some(n) = burst.record(key, now, window, threshold) {
                let alert = self.settings.burst_alert(kind, key, n);
                out.extend(self.fire(now, alert));
            }
        }
        out
    }

    /// A message of `credential` accepted.
    pub fn accepted(&mut self, credential: &str, now: u64) -> Option<Alert> {
        let factor = self.settings.volume_spike_factor?;
        let window = ms(self.settings.volume_window);
        let (current, mean) =
            self.volume
                .record(credential, now, window, self.settings.volume_baseline)?;
        if current < self.settings.volume_min_messages || f64::from(current) <= factor * mean {
            return None;
        }
        let alert = self
            .settings
            .volume_alert(credential, current, mean, factor);
        self.fire(now, alert)
    }

    /// A message of `credential` refused by inspection.
    pub fn inspection_refused(&mut self, credential: &str, now: u64) -> Option<Alert> {
        let threshold = self.settings.inspection_refusals?;
        let window = ms(self.settings.inspection_window);
        let n = self.inspection.record(credential, now, window, threshold)?;
        let alert = self
            .settings
            .burst_alert(Kind::InspectionRefusals, credential, n);
        self.fire(now, alert)
    }

    /// A delivery attempt through `upstream`.
    pub fn delivery(&mut self, upstream: &str, failed: bool, now: u64) -> Option<Alert> {
        let ratio = self.settings.delivery_failure_ratio?;
        let window = ms(self.settings.delivery_window);
        let (attempts, failures) = self.delivery.record(upstream, failed, now, window);
        if attempts < self.settings.delivery_min_attempts {
            return None;
        }
        let share = f64::from(failures) / f64::from(attempts);
        if share < ratio {
            return None;
        }
        let detail = format!(
            "{failures} of {attempts} delivery attempts failed within {}",
            humantime::format_duration(self.settings.delivery_window)
        );
        self.fire(
            now,
            Alert {
                kind: Kind::DeliveryFailures,
                key: upstream.to_string(),
                value: share,
                threshold: ratio,
                detail,
                suspend: None,
            },
        )
    }

    /// The age of the oldest queued message, checked periodically.
    pub fn queue_age(&mut self, oldest: Duration, now: u64) -> Option<Alert> {
        let limit = self.settings.queue_age?;
        if oldest < limit {
            return None;
        }
        let detail = format!(
            "the oldest queued message is {} old",
            humantime::format_duration(Duration::from_secs(oldest.as_secs()))
        );
        self.fire(
            now,
            Alert {
                kind: Kind::QueueAge,
                key: "queue".to_string(),
                value: oldest.as_secs_f64(),
                threshold: limit.as_secs_f64(),
                detail,
                suspend: None,
            },
        )
    }
}

#[cfg(test)]
mod tests;
