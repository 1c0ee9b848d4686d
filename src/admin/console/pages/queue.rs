//! The queue page (search by id, sender, recipient, credential, state and
//! age) and one message: envelope, headers, delivery history, actions.

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use maud::html;
use serde::Deserialize;

use super::super::{Console, control, layout};
use super::{age, auth, live, now, when};
use crate::admin::settings::Role;
use crate::control::{MessageSummary, MessageView, Request};

#[derive(Deserialize, Default)]
pub struct QueueQuery {
    /// Matches the queue id, sender, a recipient or the credential.
    q: Option<String>,
    state: Option<String>,
    /// Older than this (e.g. "1h").
    older: Option<String>,
}

pub async fn queue(
    State(c): State<Arc<Console>>,
    headers: HeaderMap,
    Query(q): Query<QueueQuery>,
) -> Response {
    let a = auth!(c, headers, Role::Viewer);
    let live = live!(c);
    let mut all: Vec<MessageSummary> = Vec::new();
    for dead in [false, true] {
        match control::<Vec<MessageSummary>>(live, Request::SpoolList { dead }).await {
            Ok(mut l) => all.append(&mut l),
            Err(e) => {
                return layout::error(StatusCode::INTERNAL_SERVER_ERROR, Some(&a.session), &e);
            }
        }
    }
    let term =
        q.q.as_deref()
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_lowercase);
    let state = q.state.as_deref().filter(|s| !s.is_empty());
    let older = q
        .older
        .as_deref()
        .filter(|s| !s.trim().is_empty())
        .and_then(|s| crate::config::units::parse_duration(s).ok());
    let t = now();
    let shown: Vec<&MessageSummary> = all
        .iter()
        .filter(|m| {
            term.as_ref().is_none_or(|term| {
                m.id.to_lowercase().contains(term)
                    || m.sender
                        .as_deref()
                        .is_some_and(|s| s.to_lowercase().contains(term))
                    || m.credential
                        .as_deref()
                        .is_some_and(|s| s.to_lowercase().contains(term))
                    || m.recipients.iter().any(|r| r.to_lowercase().contains(term))
            })
        })
        .filter(|m| state.is_none_or(|s| m.state == s))
        .filter(|m| {
            older.is_none_or(|d| {
                m.received_at
                    .is_some_and(|r| t.saturating_sub(r) >= d.as_secs())
            })
        })
        .collect();
    layout::page(
        &a.session,
        "Queue",
        html! {
            form method="get" action="/console/queue" {
                label { "Search " input name="q" value=(q.q.clone().unwrap_or_default()) placeholder="id, sender, recipient, credential"; } " "
                label { "State " select name="state" {
                    @for s in ["", "queued", "delivering", "waiting-breaker", "held", "dead"] {
                        option value=(s) selected[state == Some(s)] { (if s.is_empty() { "any" } else { s }) }
                    }
                } } " "
                label { "Older than " input name="older" size="6" value=(q.older.clone().unwrap_or_default()) placeholder="1h"; } " "
                button type="submit" { "Search" }
            }
            p { (shown.len()) " of " (all.len()) " messages" }
            table {
                tr { th { "Queue id" } th { "State" } th { "Age" } th { "Credential" } th { "Sender" } th { "Recipients" } th { "Attempts" } th { "Last error" } }
                @for m in &shown {
                    tr {
                        td { a href=(format!("/console/message/{}", m.id)) { (m.id) } }
                        td { (m.state) }
                        td { (m.received_at.map(|r| age(t.saturating_sub(r))).unwrap_or_default()) }
                        td { (m.credential.clone().unwrap_or_default()) }
                        td { (m.sender.clone().unwrap_or_default()) }
                        td { (m.recipients.join(", ")) }
                        td { (m.attempts) }
                        td { (m.last_error.clone().or(m.error.clone()).unwrap_or_default()) }
                    }
                }
            }
        },
    )
}

pub async fn message(
    State(c): State<Arc<Console>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let a = auth!(c, headers, Role::Viewer);
    let live = live!(c);
    let m: MessageView = match control(live, Request::SpoolShow { id: id.clone() }).await {
        Ok(m) => m,
        Err(e) => return layout::error(StatusCode::NOT_FOUND, Some(&a.session), &e),
    };
    let s = &m.summary;
    let actions: &[&str] = match s.state.as_str() {
        "dead" => &["retry", "purge"],
        "held" => &["release", "purge"],
        _ => &["retry", "hold", "purge"],
    };
    layout::page(
        &a.session,
        &format!("Message {}", s.id),
        html! {
            table {
                tr { th { "State" } td id="state" { (s.state) } }
                tr { th { "Received" } td { (s.received_at.map(when).unwrap_or_default()) } }
                tr { th { "Credential" } td { (s.credential.clone().unwrap_or_default()) } }
                tr { th { "Route" } td { (m.route) } }
                tr { th { "Sender" } td { (s.sender.clone().unwrap_or_default()) } }
                tr { th { "Recipients" } td { (s.recipients.join(", ")) } }
                tr { th { "Size" } td { (s.size.unwrap_or(0)) " bytes" } }
                tr { th { "Attempts" } td { (s.attempts) } }
                tr { th { "Next attempt" } td { (s.next_attempt.map(when).unwrap_or_else(|| "-".into())) } }
                tr { th { "Last error" } td { (s.last_error.clone().unwrap_or_default()) } }
            }
            @if a.session.role >= Role::Operator {
                p { @for act in actions {
                    a class="action" id=(format!("do-{act}")) href=(format!("/console/confirm?action={act}&id={}", s.id)) { (act) } " "
                } }
            }
            h2 { "Headers" }
            pre { (m.headers) @if m.headers_truncated { "\n(truncated)" } }
            @if a.session.role >= Role::Admin {
                form method="post" action=(format!("/console/message/{}/body", s.id)) {
                    input type="hidden" name="csrf" value=(a.session.csrf);
                    button type="submit" { "Show the full message (audited)" }
                }
            }
            h2 { "Delivery history" }
            table {
                tr { th { "Time" } th { "Upstream" } th { "Outcome" } th { "Detail" } }
                @for h in &m.history {
                    tr { td { (when(h.time)) } td { (h.upstream.clone().unwrap_or_default()) } td { (h.outcome) } td { (h.detail) } }
                }
            }
        },
    )
}
