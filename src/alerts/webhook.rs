//! `[alerts] webhook`: each alert POSTed as JSON, at most `per_minute` a
//! minute, retried twice on a transient failure.
//!
//! The body (an interface, documented in docs/audit.md):
//! `{"event": "anomaly", "kind": "...", "key": "...", "value": 60.0,
//!   "threshold": 50.0, "detail": "...", "action": "alert" | "suspended",
//!   "time": "2026-12-03T18:00:00Z", "host": "relay.example.com"}`

use std::collections::VecDeque;
use std::time::{Duration, Instant, SystemTime};

use tokio::sync::mpsc;

use super::detect::Alert;
use super::settings::Webhook;

/// Alerts waiting to be sent; beyond this they are dropped (and logged).
const QUEUE: usize = 64;
const ATTEMPTS: u32 = 3;

pub struct Sender {
    settings: Webhook,
    tx: mpsc::Sender<serde_json::Value>,
}

impl Sender {
    pub fn start(settings: Webhook) -> Result<Sender, crate::https::ClientError> {
        let https = settings.endpoint.base_url.starts_with("https://");
        let client = crate::https::build_client(
            "alerts.webhook",
            settings.endpoint.ca_file.as_deref(),
            https,
            settings.endpoint.timeout,
        )?;
        let (tx, rx) = mpsc::channel(QUEUE);
        tokio::spawn(run(settings.clone(), client, rx));
        Ok(Sender { settings, tx })
    }

    pub fn settings(&self) -> &Webhook {
        &self.settings
    }

    pub fn send(&self, alert: &Alert, action: &str) {
        let body = serde_json::json!({
            "event": "anomaly",
            "kind": alert.kind.name(),
            "key": alert.key,
            "value": alert.value,
            "threshold": alert.threshold,
            "detail": alert.detail,
            "action": action,
            "time": humantime::format_rfc3339_seconds(SystemTime::now()).to_string(),
            "host": self.settings.host,
        });
        if self.tx.try_send(body).is_err() {
            tracing::warn!(
                kind = alert.kind.name(),
                "alert webhook queue full; alert not sent"
            );
        }
    }
}

async fn run(
    settings: Webhook,
    client: reqwest::Client,
    mut rx: mpsc::Receiver<serde_json::Value>,
) {
    let mut sent: VecDeque<Instant> = VecDeque::new();
    while let Some(body) = rx.recv().await {
        let now = Instant::now();
        while sent
            .front()
            .is_some_and(|t| now.duration_since(*t) >= Duration::from_secs(60))
        {
            sent.pop_front();
        }
        if sent.len() >= settings.per_minute as usize {
            tracing::warn!(kind = %body["kind"], "alert webhook rate limit reached; alert not sent");
            continue;
        }
        sent.push_back(now);
        post(&settings, &client, &body).await;
    }
}

async fn post(settings: &Webhook, client: &reqwest::Client, body: &serde_json::Value) {
    for attempt in 1..=ATTEMPTS {
        let mut request = client
            .post(&settings.endpoint.base_url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body.to_string());
        if let Some((name, value)) = &settings.header {
            request = request.header(name.as_str(), value.expose());
        }
        let retry = match request.send().await {
            Ok(r) if r.status().is_success() => return,
            Ok(r) => {
                let status = r.status();
                tracing::warn!(
                    status = status.as_u16(),
                    attempt,
                    "alert webhook refused the alert"
                );
                status.is_server_error() || status.as_u16() == 429
            }
            Err(e) => {
                tracing::warn!(error = %crate::https::error_chain(&e), attempt, "alert webhook unreachable");
                true
            }
        };
        if !retry || attempt == ATTEMPTS {
            return;
        }
        tokio::time::sleep(Duration::from_secs(u64::from(attempt * attempt))).await;
    }
}
