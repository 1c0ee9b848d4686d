//! Prometheus metrics: every name postern exports, in one place.
//!
//! Stages count through the small functions below (the `metrics` facade
//! underneath), so a name or a label is spelt once. Label values are
//! bounded: listener addresses, upstream, route and quota rule names come
//! from the configuration, everything else from fixed lists here; never a
//! sender, recipient or client address.
//!
//! Without an installed recorder (no `[admin]`), every call is a no-op.

use metrics::{counter, gauge, histogram};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

/// Delivery latency buckets, seconds: an API call takes 50 ms to a few s.
const LATENCY_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];

/// Installs the process-wide recorder and describes every metric. Returns
/// `None` if a recorder is already installed (a second call).
pub fn install() -> Option<PrometheusHandle> {
    let handle = PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Suffix("_seconds".to_string()), LATENCY_BUCKETS)
        .ok()?
        .install_recorder()
        .ok()?;
    describe();
    gauge!("postern_build_info", "version" => env!("CARGO_PKG_VERSION")).set(1.0);
    Some(handle)
}

fn describe() {
    use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};
    describe_gauge!("postern_build_info", "postern's version, as a label");
    describe_counter!(
        "postern_connections_total",
        "SMTP connections accepted, by listener"
    );
    describe_gauge!(
        "postern_connections_current",
        "SMTP connections open now, by listener"
    );
    describe_counter!(
        "postern_connections_refused_total",
        "SMTP connections refused before the greeting, by reason"
    );
    describe_counter!(
        "postern_tls_handshakes_total",
        "Completed TLS handshakes, by protocol version"
    );
    describe_counter!(
        "postern_tls_handshake_failures_total",
        "TLS handshakes that failed or timed out, by listener"
    );
    describe_counter!("postern_auth_total", "AUTH attempts, by outcome");
    describe_counter!(
        "postern_messages_accepted_total",
        "Messages answered 250 at the final dot (spooled)"
    );
    describe_counter!(
        "postern_messages_refused_total",
        "Messages or recipients refused, by stage and reason"
    );
    describe_counter!("postern_quota_refusals_total", "Quota refusals, by rule");
    describe_counter!(
        "postern_lockouts_total",
        "AUTH lockouts started (per client network or username)"
    );
    describe_gauge!("postern_spool_messages", "Messages in the spool, by state");
    describe_gauge!(
        "postern_spool_bytes",
        Unit::Bytes,
        "Bytes of messages in the spool, by state"
    );
    describe_gauge!(
        "postern_spool_oldest_message_age_seconds",
        Unit::Seconds,
        "Age of the oldest queued message (0 when the queue is empty)"
    );
    describe_counter!(
        "postern_delivery_attempts_total",
        "Delivery attempts, by upstream and outcome"
    );
    describe_histogram!(
        "postern_delivery_duration_seconds",
        Unit::Seconds,
        "Duration of delivery attempts, by upstream"
    );
    describe_gauge!(
        "postern_breaker_state",
        "Circuit breaker state by upstream: 1 for the current state"
    );
    describe_counter!(
        "postern_token_refreshes_total",
        "OAuth token fetches, by upstream and result"
    );
    describe_counter!(
        "postern_dkim_signatures_total",
        "DKIM signatures added, by algorithm"
    );
    describe_counter!("postern_reloads_total", "Configuration reloads, by result");
    describe_counter!("postern_anomalies_total", "Anomaly alerts raised, by kind");
}

pub fn connection_opened(listener: &str) {
    counter!("postern_connections_total", "listener" => listener.to_string()).increment(1);
    gauge!("postern_connections_current", "listener" => listener.to_string()).increment(1.0);
}

pub fn connection_closed(listener: &str) {
    gauge!("postern_connections_current", "listener" => listener.to_string()).decrement(1.0);
}

/// `reason`: `rate`, `too_many`, `proxy`.
pub fn connection_refused(reason: &'static str) {
    counter!("postern_connections_refused_total", "reason" => reason).increment(1);
}

pub fn tls_handshake(version: Option<rustls::ProtocolVersion>) {
    let version = match version {
        Some(rustls::ProtocolVersion::TLSv1_3) => "TLSv1.3",
        Some(rustls::ProtocolVersion::TLSv1_2) => "TLSv1.2",
        _ => "other",
    };
    counter!("postern_tls_handshakes_total", "version" => version).increment(1);
}

pub fn tls_handshake_failed(listener: &str) {
    counter!("postern_tls_handshake_failures_total", "listener" => listener.to_string())
        .increment(1);
}

/// `outcome`: `success`, `invalid`, `locked_out`, `outside_networks`,
/// `no_longer_valid`.
pub fn auth(outcome: &'static str) {
    counter!("postern_auth_total", "outcome" => outcome).increment(1);
}

pub fn message_accepted() {
    counter!("postern_messages_accepted_total").increment(1);
}

/// `stage`: `mail`, `rcpt`, `data`; `reason`: a short fixed word per check.
pub fn refused(stage: &'static str, reason: &'static str) {
    counter!("postern_messages_refused_total", "stage" => stage, "reason" => reason).increment(1);
}

/// `[cluster]`: 1 while Redis answers, 0 while the node runs on local state.
pub fn cluster_redis_up(up: bool) {
    gauge!("postern_cluster_redis_up").set(if up { 1.0 } else { 0.0 });
}

/// One decision made on local state because Redis was down: `what` is
/// `quota`, `lockout`, `suspension`, `alerts`.
pub fn cluster_fallback(what: &'static str) {
    counter!("postern_cluster_fallback_total", "what" => what).increment(1);
}

pub fn quota_refused(rule: &str) {
    counter!("postern_quota_refusals_total", "rule" => rule.to_string()).increment(1);
}

pub fn lockout() {
    counter!("postern_lockouts_total").increment(1);
}

/// What the spool holds in one state (`queued` or `dead`).
pub fn spool(state: &'static str, messages: u64, bytes: u64) {
    gauge!("postern_spool_messages", "state" => state).set(messages as f64);
    gauge!("postern_spool_bytes", "state" => state).set(bytes as f64);
}

pub fn spool_oldest(age_seconds: f64) {
    gauge!("postern_spool_oldest_message_age_seconds").set(age_seconds);
}

/// `outcome`: `delivered`, `transient`, `permanent`, `ambiguous`.
pub fn delivery_attempt(upstream: &str, outcome: &'static str, seconds: f64) {
    counter!(
        "postern_delivery_attempts_total",
        "upstream" => upstream.to_string(),
        "outcome" => outcome
    )
    .increment(1);
    histogram!("postern_delivery_duration_seconds", "upstream" => upstream.to_string())
        .record(seconds);
}

/// Sets the breaker gauge of `upstream`: 1 for `state`, 0 for the others.
pub fn breaker(upstream: &str, state: &str) {
    for s in ["closed", "half-open", "open"] {
        gauge!(
            "postern_breaker_state",
            "upstream" => upstream.to_string(),
            "state" => s
        )
        .set(if s == state { 1.0 } else { 0.0 });
    }
}

/// `result`: `ok`, `error`.
pub fn token_refresh(upstream: &str, result: &'static str) {
    counter!(
        "postern_token_refreshes_total",
        "upstream" => upstream.to_string(),
        "result" => result
    )
    .increment(1);
}

pub fn dkim_signature(algorithm: &'static str) {
    counter!("postern_dkim_signatures_total", "algorithm" => algorithm).increment(1);
}

/// `result`: `ok`, `failed`.
pub fn reload(result: &'static str) {
    counter!("postern_reloads_total", "result" => result).increment(1);
}

pub fn anomaly(kind: &'static str) {
    counter!("postern_anomalies_total", "kind" => kind).increment(1);
}
