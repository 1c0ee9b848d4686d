//! The read-only pages: overview (with the per-minute charts), queue and
//! message, credentials, audit log, configuration. Each takes its data
//! from a control request (as `postern status` / `spool` do) or from the
//! recent audit events (`crate::observe::recent`).

mod chart;
mod dns;
mod queue;

pub use chart::chart;
pub use dns::dns;
pub use queue::{message, queue};

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use maud::{Markup, html};
use serde::Deserialize;

use super::{Console, control, layout};
use crate::admin::settings::Role;
use crate::control::{Request, StatusReport};
use crate::observe::recent;

/// Unix seconds as `2026-12-07 15:04:05Z`.
pub fn when(t: u64) -> String {
    let st = std::time::UNIX_EPOCH + std::time::Duration::from_secs(t);
    humantime::format_rfc3339_seconds(st)
        .to_string()
        .replace('T', " ")
}

pub fn age(secs: u64) -> String {
    humantime::format_duration(std::time::Duration::from_secs(secs)).to_string()
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

macro_rules! auth {
    ($c:expr, $h:expr, $role:expr) => {
        match $c.auth(&$h, $role) {
            Ok(a) => a,
            Err(r) => return r,
        }
    };
}
macro_rules! live {
    ($c:expr) => {
        match $c.live() {
            Ok(l) => l,
            Err(r) => return r,
        }
    };
}
pub(super) use {auth, live};

/// p50 and p99 of the delivery durations per upstream, and its last
/// failed attempt's reason, from the recent events.
fn upstream_facts() -> BTreeMap<String, (Vec<u64>, Option<String>)> {
    let mut out: BTreeMap<String, (Vec<u64>, Option<String>)> = BTreeMap::new();
    for e in recent::events() {
        let (Some(kind), Some(up)) = (e.get("event"), e.get("upstream")) else {
            continue;
        };
        let entry = out.entry(up.to_string()).or_default();
        if let Some(ms) = e.get("duration_ms").and_then(|d| d.parse().ok()) {
            entry.0.push(ms);
        }
        if kind == "attempt" && entry.1.is_none() {
            entry.1 = e.get("reason").map(str::to_string);
        }
    }
    out
}

fn sorted(mut v: Vec<u64>) -> Vec<u64> {
    v.sort_unstable();
    v
}

fn percentile(sorted: &[u64], p: usize) -> Option<u64> {
    if sorted.is_empty() {
        return None;
    }
    let i = (sorted.len() * p / 100).min(sorted.len() - 1);
    Some(sorted[i])
}

pub async fn overview(State(c): State<Arc<Console>>, headers: HeaderMap) -> Response {
    let a = auth!(c, headers, Role::Viewer);
    let live = live!(c);
    let st: StatusReport = match control(live, Request::Status).await {
        Ok(s) => s,
        Err(e) => return layout::error(StatusCode::INTERNAL_SERVER_ERROR, Some(&a.session), &e),
    };
    let facts = upstream_facts();
    let cert = cert_expiry(live);
    layout::page(
        &a.session,
        "Overview",
        html! {
            h2 { "Last hour" }
            img class="chart" id="chart-hour" src="/console/chart.svg?range=hour" alt="accepted, delivered, deferred, refused per minute, last hour";
            h2 { "Last 24 hours" }
            img class="chart" id="chart-day" src="/console/chart.svg?range=day" alt="accepted, delivered, deferred, refused per minute, last 24 hours";
            p class="legend" {
                @for (i, k) in recent::COUNTED.iter().enumerate() {
                    span { svg width="12" height="12" { rect width="12" height="12" fill=(chart::COLOURS[i]) {} } " " (k) }
                }
            }
            div class="cards" {
                div class="card" { "Queued " strong id="queued" { (st.queue.queued) } }
                div class="card" { "Held " strong { (st.queue.held) } }
                div class="card" { "Dead letters " strong id="dead" { (st.queue.dead) } }
                div class="card" { "Oldest message " strong { (st.queue.oldest_age_s.map(age).unwrap_or_else(|| "-".into())) } }
                div class="card" { "Connections " strong { (st.connections) } }
                div class="card" { "TLS certificate expires " strong { (cert) } }
            }
            h2 { "Upstreams" }
            table {
                tr { th { "Upstream" } th { "Breaker" } th { "Token" } th { "Latency p50 / p99" } th { "Last error" } }
                @for u in &st.upstreams {
                    @let f = facts.get(&u.name);
                    @let d = sorted(f.map(|f| f.0.clone()).unwrap_or_default());
                    tr {
                        td { (u.name) }
                        td { (u.breaker) }
                        td { (u.token.as_ref().map(|t| t.state.clone()).unwrap_or_else(|| "-".into())) }
                        td { @match (percentile(&d, 50), percentile(&d, 99)) {
                            (Some(p50), Some(p99)) => { (p50) " ms / " (p99) " ms" }
                            _ => "-"
                        } }
                        td { (f.and_then(|f| f.1.clone()).unwrap_or_else(|| "-".into())) }
                    }
                }
            }
            h2 { "Lockouts" }
            @if st.lockouts.is_empty() { p { "None." } }
            ul { @for l in &st.lockouts { li { (l.key) ", " (age(l.remaining_s)) " left" } } }
            h2 { "Suspended credentials" }
            @if st.suspended.is_empty() { p { "None." } }
            ul { @for s in &st.suspended {
                li { a href="/console/credentials" { (s.credential) } " " (s.reason.clone().unwrap_or_default()) }
            } }
        },
    )
}

fn cert_expiry(live: &super::Live) -> String {
    let Some(path) = &live.tls_certificate else {
        return "no certificate file (self-signed or none)".into();
    };
    let Ok(pem) = std::fs::read(path) else {
        return format!("cannot read {}", path.display());
    };
    match openssl::x509::X509::from_pem(&pem) {
        Ok(c) => c.not_after().to_string(),
        Err(_) => "unreadable certificate".into(),
    }
}

pub async fn credentials(State(c): State<Arc<Console>>, headers: HeaderMap) -> Response {
    let a = auth!(c, headers, Role::Viewer);
    let live = live!(c);
    let st: StatusReport = match control(live, Request::Status).await {
        Ok(s) => s,
        Err(e) => return layout::error(StatusCode::INTERNAL_SERVER_ERROR, Some(&a.session), &e),
    };
    let access = live.control.shared.current().access.clone();
    let names = access.credential_names();
    let usage = live.control.quotas.busiest(usize::MAX);
    // The daily limits: each credential's own `quota` over `[quota.credential]`
    // of the configuration on disk.
    let base = match live.config_path.clone() {
        Some(p) => tokio::task::spawn_blocking(move || {
            crate::config::load(&p).ok().map(|c| c.quota.credential)
        })
        .await
        .ok()
        .flatten(),
        None => None,
    }
    .unwrap_or_default();
    let day_limits = |name: &str| -> String {
        let own = access
            .credential(name)
            .and_then(|c| c.quota)
            .unwrap_or_default();
        let l = own.over(&base);
        let show = |s: crate::quota::Setting| match s {
            crate::quota::Setting::Max(n) => n.to_string(),
            _ => "no limit".to_string(),
        };
        format!(
            "{} / {}",
            show(l.messages.per_day),
            show(l.recipients.per_day)
        )
    };
    // Sessions per credential (from `auth` events), to attribute refusals.
    let events = recent::events();
    let mut session_cred: BTreeMap<String, String> = BTreeMap::new();
    let mut last_use: BTreeMap<String, u64> = BTreeMap::new();
    for e in &events {
        if let (Some(cred), Some(kind)) = (e.get("credential"), e.get("event")) {
            if let Some(s) = e.get("session") {
                session_cred.insert(s.to_string(), cred.to_string());
            }
            if kind == "accepted" || kind == "auth" {
                let t = last_use.entry(cred.to_string()).or_default();
                *t = (*t).max(e.time);
            }
        }
    }
    let mut refusals: BTreeMap<String, BTreeMap<String, u64>> = BTreeMap::new();
    for e in &events {
        if e.get("event") == Some("refused")
            && let Some(cred) = e.get("session").and_then(|s| session_cred.get(s))
        {
            let rule = e
                .get("rule")
                .filter(|r| !r.is_empty())
                .or(e.get("stage"))
                .unwrap_or("?");
            *refusals
                .entry(cred.clone())
                .or_default()
                .entry(rule.to_string())
                .or_default() += 1;
        }
    }
    let operator = a.session.role >= Role::Operator;
    layout::page(
        &a.session,
        "Credentials",
        html! {
            table {
                tr { th { "Credential" } th { "State" } th { "Last use" } th { "Today (messages / recipients)" } th { "Daily quota" } th { "Recent refusals" } th {} }
                @for n in &names {
                    @let susp = st.suspended.iter().find(|s| s.credential == *n);
                    @let u = usage.iter().find(|k| k.key == format!("credential {n}"));
                    tr id=(format!("cred-{n}")) {
                        td { a href=(format!("/console/audit?credential={n}")) { (n) } }
                        td { @match susp {
                            Some(s) => { strong class="error" { "suspended" } " " (s.reason.clone().unwrap_or_default())
                                @if let Some(u) = s.until { " until " (when(u)) } }
                            None => "active"
                        } }
                        td { (last_use.get(n).map(|t| when(*t)).unwrap_or_else(|| "-".into())) }
                        td { (u.map(|u| format!("{} / {}", u.messages_day, u.recipients_day)).unwrap_or_else(|| "- (not counted without a quota)".into())) }
                        td class="quota" { (day_limits(n)) }
                        td { @for (rule, count) in refusals.get(n).into_iter().flatten() { (rule) ": " (count) br; } }
                        td { @if operator {
                            @if susp.is_some() {
                                a href=(format!("/console/confirm?action=resume&id={n}")) { "Resume" }
                            } @else {
                                a href=(format!("/console/confirm?action=suspend&id={n}")) { "Suspend" }
                            }
                        } }
                    }
                }
            }
            h2 { "Lockouts" }
            @if st.lockouts.is_empty() { p { "None." } }
            ul { @for l in &st.lockouts { li { (l.key) ", " (age(l.remaining_s)) " left" } } }
        },
    )
}

#[derive(Deserialize, Default)]
pub struct AuditQuery {
    queue_id: Option<String>,
    credential: Option<String>,
    client_ip: Option<String>,
    event: Option<String>,
}

pub async fn audit_log(
    State(c): State<Arc<Console>>,
    headers: HeaderMap,
    Query(q): Query<AuditQuery>,
) -> Response {
    let a = auth!(c, headers, Role::Viewer);
    let want = |v: &Option<String>| {
        v.as_deref()
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
    };
    let filters = [
        ("queue_id", want(&q.queue_id)),
        ("credential", want(&q.credential)),
        ("client_ip", want(&q.client_ip)),
        ("event", want(&q.event)),
    ];
    let rows: Vec<recent::Event> = recent::events()
        .into_iter()
        .filter(|e| {
            filters
                .iter()
                .all(|(k, v)| v.as_ref().is_none_or(|v| e.get(k) == Some(v.as_str())))
        })
        .take(500)
        .collect();
    layout::page(
        &a.session,
        "Audit log",
        html! {
            form method="get" action="/console/audit" {
                @for (k, v) in &filters {
                    label { (k) " " input name=(k) value=(v.clone().unwrap_or_default()); } " "
                }
                button type="submit" { "Filter" }
            }
            p { (rows.len()) " events (newest first; the last " (recent::KEEP) " are kept in memory, the [log] audit_file has them all)" }
            table {
                tr { th { "Time" } th { "Event" } th { "Queue id" } th { "Credential" } th { "Client" } th { "Details" } }
                @for e in &rows { (audit_row(e)) }
            }
        },
    )
}

fn audit_row(e: &recent::Event) -> Markup {
    let skip = ["event", "queue_id", "credential", "client_ip", "message"];
    html! {
        tr {
            td { (when(e.time)) }
            td { (e.get("event").unwrap_or("")) }
            td { @if let Some(id) = e.get("queue_id").filter(|s| !s.is_empty()) { a href=(format!("/console/message/{id}")) { (id) } } }
            td { @if let Some(c) = e.get("credential") { a href=(format!("/console/audit?credential={c}")) { (c) } } }
            td { @if let Some(ip) = e.get("client_ip") { a href=(format!("/console/audit?client_ip={ip}")) { (ip) } } }
            td { @for (k, v) in e.fields.iter().filter(|(k, _)| !skip.contains(&k.as_str())) { (k) "=" (v) " " } }
        }
    }
}

#[derive(Deserialize, Default)]
pub struct ConfigQuery {
    reloaded: Option<String>,
}

pub async fn config(
    State(c): State<Arc<Console>>,
    headers: HeaderMap,
    Query(q): Query<ConfigQuery>,
) -> Response {
    let a = auth!(c, headers, Role::Viewer);
    let live = live!(c);
    let Some(path) = live.config_path.clone() else {
        return layout::page(
            &a.session,
            "Configuration",
            html! { p { "postern runs the built-in demo configuration (no file)." } },
        );
    };
    // Files on disk hold only secret references (literal secrets are
    // refused at load), so showing them shows no secret value.
    let checked = tokio::task::spawn_blocking(move || {
        let result = crate::config::load(&path);
        let files = match &result {
            Ok(cfg) => cfg.files.clone(),
            Err(_) => vec![path.clone()],
        };
        let texts: Vec<(String, String)> = files
            .iter()
            .map(|f| {
                (
                    f.display().to_string(),
                    std::fs::read_to_string(f).unwrap_or_else(|e| format!("(cannot read: {e})")),
                )
            })
            .collect();
        (result.err().map(|e| e.to_string()), texts)
    })
    .await;
    let (problems, texts) = checked.unwrap_or((Some("check failed".into()), Vec::new()));
    layout::page(
        &a.session,
        "Configuration",
        html! {
            @if q.reloaded.is_some() { p class="ok" { "Reload requested; the result is in the log and the audit log." } }
            h2 { "check-config" }
            @match &problems {
                None => p class="ok" id="check-ok" { "The files on disk are valid." },
                Some(p) => pre class="error" { (p) },
            }
            p { a href="/console/dns" id="dns-check" { "dns-check of each signing domain" } " (SPF, DKIM, DMARC; takes a few seconds)" }
            @if a.session.role >= Role::Admin {
                form method="post" action="/console/reload" {
                    input type="hidden" name="csrf" value=(a.session.csrf);
                    button type="submit" id="reload" { "Reload the configuration" }
                }
            }
            @for (name, text) in &texts { h2 { (name) } pre { (text) } }
        },
    )
}
