//! Anomaly alerts: sliding-window detectors over what postern sees
//! (failed AUTH per network and per username, a credential's volume
//! against its own history, inspection refusals per credential, delivery
//! failures per upstream, the age of the queue).
//!
//! Each alert is a WARN audit event `anomaly` (kind, key, value,
//! threshold, detail), a `postern_anomalies_total{kind}` count and, with
//! `[alerts] webhook`, a JSON POST (rate-limited, retried). A volume spike
//! with `on_volume_spike = "suspend"` also suspends the credential through
//! the hook the daemon installs (the same suspension as
//! `postern credential suspend`).
//!
//! Stages report through the free functions below; without `[alerts]`
//! they do nothing.

mod detect;
mod settings;
mod webhook;

pub use detect::{Alert, Detectors, Kind};
pub use settings::{OnSpike, Settings, Webhook};

use std::sync::{Arc, Mutex, OnceLock, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::observe::audit;

/// Suspends credential `name` for `duration` with `reason`.
pub type SuspendHook = Arc<dyn Fn(&str, Duration, &str) + Send + Sync>;

struct State {
    detectors: Mutex<Option<Detectors>>,
    webhook: RwLock<Option<webhook::Sender>>,
    suspend: RwLock<Option<SuspendHook>>,
    /// `[cluster]`: the count and volume windows are kept in Redis.
    cluster: RwLock<Option<Arc<crate::cluster::Cluster>>>,
}

static STATE: OnceLock<State> = OnceLock::new();

fn state() -> &'static State {
    STATE.get_or_init(|| State {
        detectors: Mutex::new(None),
        webhook: RwLock::new(None),
        suspend: RwLock::new(None),
        cluster: RwLock::new(None),
    })
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// Puts `settings` in force (at start and on reload); `None` turns every
/// detector off. Must be called inside the tokio runtime (the webhook
/// sender is a task).
pub fn configure(settings: Option<&Settings>) {
    let s = state();
    let mut detectors = s.detectors.lock().unwrap_or_else(|p| p.into_inner());
    match (settings, detectors.as_mut()) {
        (None, _) => *detectors = None,
        (Some(new), Some(d)) => d.reconfigure(new.clone()),
        (Some(new), None) => *detectors = Some(Detectors::new(new.clone())),
    }
    drop(detectors);
    let hook = settings.and_then(|s| s.webhook.clone());
    let mut current = s.webhook.write().unwrap_or_else(|p| p.into_inner());
    if current.as_ref().map(webhook::Sender::settings) != hook.as_ref() {
        *current = hook.and_then(|h| webhook::Sender::start(h).ok());
    }
}

/// How a spike suspends a credential (set by the daemon).
pub fn set_suspend_hook(hook: SuspendHook) {
    *state().suspend.write().unwrap_or_else(|p| p.into_inner()) = Some(hook);
}

fn with_detectors<T>(f: impl FnOnce(&mut Detectors, u64) -> T) -> Option<T> {
    let mut d = state().detectors.lock().unwrap_or_else(|p| p.into_inner());
    d.as_mut().map(|d| f(d, now_ms()))
}

/// Keeps the count and volume windows in Redis from now on (`[cluster]`).
pub fn set_cluster(cluster: Option<Arc<crate::cluster::Cluster>>) {
    *state().cluster.write().unwrap_or_else(|p| p.into_inner()) = cluster;
}

/// The cluster when the shared windows can be used now (Redis up, inside
/// the runtime).
fn shared() -> Option<(Arc<crate::cluster::Cluster>, tokio::runtime::Handle)> {
    let c = state()
        .cluster
        .read()
        .unwrap_or_else(|p| p.into_inner())
        .clone()?;
    let rt = tokio::runtime::Handle::try_current().ok()?;
    (!c.is_down()).then_some((c, rt))
}

fn settings() -> Option<Settings> {
    state()
        .detectors
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .as_ref()
        .map(|d| d.settings().clone())
}

/// One event of a count detector through Redis; the node's own detector
/// when Redis does not answer (`local` re-runs the event there).
fn shared_burst(kinds: Vec<(Kind, String)>, local: impl FnOnce() + Send + 'static) -> bool {
    let Some((cluster, rt)) = shared() else {
        return false;
    };
    let Some(s) = settings() else { return true };
    let wanted: Vec<_> = kinds
        .into_iter()
        .filter_map(|(k, key)| s.burst(k).map(|b| (k, key, b)))
        .collect();
    if wanted.is_empty() {
        return true;
    }
    rt.spawn(async move {
        let mut alerts = Vec::new();
        for (kind, key, (threshold, window)) in wanted {
            match crate::cluster::alerts::burst(
                &cluster,
                kind.name(),
                &key,
                window,
                threshold,
                s.repeat_after,
            )
            .await
            {
                Some((n, true)) => alerts.push(s.burst_alert(kind, &key, n)),
                Some(_) => {}
                None => {
                    crate::observe::metrics::cluster_fallback("alerts");
                    local();
                    return;
                }
            }
        }
        alerts.into_iter().for_each(raise);
    });
    true
}

/// A failed AUTH (wrong secret, unknown user) from `network`.
pub fn auth_failed(network: &str, username: &str) {
    let (n, u) = (network.to_string(), username.to_string());
    let kinds = vec![
        (Kind::AuthFailuresNetwork, n.clone()),
        (Kind::AuthFailuresUsername, u.clone()),
    ];
    if shared_burst(kinds, move || local_auth_failed(&n, &u)) {
        return;
    }
    local_auth_failed(network, username);
}

fn local_auth_failed(network: &str, username: &str) {
    for a in with_detectors(|d, now| d.auth_failed(network, username, now)).unwrap_or_default() {
        raise(a);
    }
}

/// A message of `credential` accepted.
pub fn accepted(credential: &str) {
    if let Some((cluster, rt)) = shared()
        && let Some(s) = settings()
    {
        let Some(factor) = s.volume_spike_factor else {
            return;
        };
        let credential = credential.to_string();
        rt.spawn(async move {
            match crate::cluster::alerts::volume(&cluster, &credential, &s, factor).await {
                Some(v) => {
                    if let (true, Some(mean)) = (v.fire, v.mean) {
                        raise(s.volume_alert(&credential, v.current, mean, factor));
                    }
                }
                None => {
                    crate::observe::metrics::cluster_fallback("alerts");
                    local_accepted(&credential);
                }
            }
        });
        return;
    }
    local_accepted(credential);
}

fn local_accepted(credential: &str) {
    if let Some(a) = with_detectors(|d, now| d.accepted(credential, now)).flatten() {
        raise(a);
    }
}

/// A message of `credential` refused by inspection.
pub fn inspection_refused(credential: &str) {
    let c = credential.to_string();
    let kinds = vec![(Kind::InspectionRefusals, c.clone())];
    if shared_burst(kinds, move || local_inspection_refused(&c)) {
        return;
    }
    local_inspection_refused(credential);
}

fn local_inspection_refused(credential: &str) {
    if let Some(a) = with_detectors(|d, now| d.inspection_refused(credential, now)).flatten() {
        raise(a);
    }
}

/// A delivery attempt through `upstream` that reached it.
pub fn delivery(upstream: &str, failed: bool) {
    if let Some(a) = with_detectors(|d, now| d.delivery(upstream, failed, now)).flatten() {
        raise(a);
    }
}

/// The oldest queued message's age, from a periodic check.
pub fn queue_age(oldest: Duration) {
    if let Some(a) = with_detectors(|d, now| d.queue_age(oldest, now)).flatten() {
        raise(a);
    }
}

/// How often the daemon checks the queue's age: every 10 s, or a quarter
/// of a shorter `queue_age` (at least every second).
pub fn queue_check_interval() -> Duration {
    let limit = state()
        .detectors
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .as_ref()
        .and_then(|d| d.settings().queue_age);
    limit.map_or(Duration::from_secs(10), |l| {
        (l / 4).clamp(Duration::from_secs(1), Duration::from_secs(10))
    })
}

fn raise(alert: Alert) {
    let action = match alert.suspend {
        Some(d) => {
            let hook = state()
                .suspend
                .read()
                .unwrap_or_else(|p| p.into_inner())
                .clone();
            match hook {
                Some(h) => {
                    h(
                        &alert.key,
                        d,
                        &format!("anomaly {}: {}", alert.kind.name(), alert.detail),
                    );
                    "suspended"
                }
                None => "alert",
            }
        }
        None => "alert",
    };
    tracing::warn!(
        target: audit::TARGET,
        event = "anomaly",
        kind = alert.kind.name(),
        key = %alert.key,
        value = alert.value,
        threshold = alert.threshold,
        detail = %alert.detail,
        action,
        "anomaly"
    );
    crate::observe::metrics::anomaly(alert.kind.name());
    if let Some(w) = state()
        .webhook
        .read()
        .unwrap_or_else(|p| p.into_inner())
        .as_ref()
    {
        w.send(&alert, action);
    }
}
