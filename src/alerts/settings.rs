use std::time::Duration;

/// `[alerts]`: the anomaly detectors and where their alerts go. A
/// detector whose threshold is `None` is off.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    /// Failed AUTH from one client network within `auth_window`.
    pub auth_failures_per_network: Option<u32>,
    /// Failed AUTH for one username within `auth_window`.
    pub auth_failures_per_username: Option<u32>,
    pub auth_window: Duration,
    /// A credential's messages in the current `volume_window` above this
    /// many times its mean over the `volume_baseline` windows before.
    pub volume_spike_factor: Option<f64>,
    /// Fewer messages than this in a window are never a spike.
    pub volume_min_messages: u32,
    pub volume_window: Duration,
    pub volume_baseline: u32,
    pub on_volume_spike: OnSpike,
    /// How long `on_volume_spike = "suspend"` suspends the credential.
    pub volume_suspend_for: Duration,
    /// Messages of one credential refused by inspection within
    /// `inspection_window`.
    pub inspection_refusals: Option<u32>,
    pub inspection_window: Duration,
    /// Share of failed delivery attempts per upstream within
    /// `delivery_window`, once at least `delivery_min_attempts` were made.
    pub delivery_failure_ratio: Option<f64>,
    pub delivery_min_attempts: u32,
    pub delivery_window: Duration,
    /// The oldest queued message older than this.
    pub queue_age: Option<Duration>,
    /// The same (kind, key) alerts again only after this long.
    pub repeat_after: Duration,
    pub webhook: Option<Webhook>,
}

/// What a volume spike does besides alerting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnSpike {
    Alert,
    Suspend,
}

/// Where alerts are POSTed.
#[derive(Debug, Clone, PartialEq)]
pub struct Webhook {
    pub endpoint: crate::https::Endpoint,
    /// A header carrying a secret (`Authorization`, `X-Webhook-Token`).
    pub header: Option<(String, crate::secret::Secret)>,
    /// At most this many POSTs a minute; alerts beyond are counted, logged
    /// and dropped.
    pub per_minute: u32,
    /// `[server] hostname`, so a receiver of several relays' alerts knows
    /// which one spoke.
    pub host: String,
}

impl Default for Settings {
    fn default() -> Settings {
        Settings {
            auth_failures_per_network: Some(50),
            auth_failures_per_username: Some(50),
            auth_window: Duration::from_secs(600),
            volume_spike_factor: Some(10.0),
            volume_min_messages: 100,
            volume_window: Duration::from_secs(3600),
            volume_baseline: 24,
            on_volume_spike: OnSpike::Alert,
            volume_suspend_for: Duration::from_secs(3600),
            inspection_refusals: Some(20),
            inspection_window: Duration::from_secs(600),
            delivery_failure_ratio: Some(0.5),
            delivery_min_attempts: 20,
            delivery_window: Duration::from_secs(600),
            queue_age: Some(Duration::from_secs(3600)),
            repeat_after: Duration::from_secs(600),
            webhook: None,
        }
    }
}
