//! What changes state: queue actions (after a confirmation page),
//! credential suspend/resume, reload, viewing a message body, and the
//! break-glass password check. Each POST needs the session's CSRF token;
//! each is an audit event with the person's NameID and role.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Form, Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use maud::html;
use serde::Deserialize;

use super::layout;
use super::session::csrf_ok;
use super::{Auth, Console, audit_action, control};
use crate::admin::settings::Role;
use crate::control::{BatchResult, Request};

/// The actions on the queue and credentials, with their verbs.
const ACTIONS: [(&str, &str); 6] = [
    ("retry", "Retry"),
    ("hold", "Hold"),
    ("release", "Release"),
    ("purge", "Purge"),
    ("suspend", "Suspend"),
    ("resume", "Resume"),
];

#[derive(Deserialize)]
pub struct ConfirmQuery {
    action: String,
    id: String,
}

/// The confirmation step: a form that repeats the action, with the token.
pub async fn confirm(
    State(c): State<Arc<Console>>,
    headers: HeaderMap,
    Query(q): Query<ConfirmQuery>,
) -> Response {
    let a = match c.auth(&headers, Role::Operator) {
        Ok(a) => a,
        Err(r) => return r,
    };
    let Some((action, verb)) = ACTIONS.iter().find(|(k, _)| *k == q.action) else {
        return layout::error(StatusCode::BAD_REQUEST, Some(&a.session), "unknown action");
    };
    let what = if matches!(*action, "suspend" | "resume") {
        "credential"
    } else {
        "message"
    };
    layout::page(
        &a.session,
        &format!("{verb} {what} {}?", q.id),
        html! {
            form method="post" action="/console/action" {
                input type="hidden" name="csrf" value=(a.session.csrf);
                input type="hidden" name="action" value=(action);
                input type="hidden" name="id" value=(q.id);
                @if *action == "suspend" {
                    p { label { "For (e.g. 2h; empty: until resumed) " input name="duration"; } }
                    p { label { "Reason " input name="reason"; } }
                }
                button type="submit" id="confirm" { "Yes, " (verb.to_lowercase()) }
                " "
                a href="/console/" { "Cancel" }
            }
        },
    )
}

#[derive(Deserialize)]
pub struct ActForm {
    csrf: Option<String>,
    action: String,
    id: String,
    duration: Option<String>,
    reason: Option<String>,
}

/// The session after the role and CSRF checks, or the refusal.
fn check(
    c: &Console,
    headers: &HeaderMap,
    min: Role,
    csrf: Option<&str>,
) -> Result<Auth, Response> {
    let a = c.auth(headers, min)?;
    if !csrf_ok(&a.session, csrf) {
        return Err(layout::error(
            StatusCode::FORBIDDEN,
            Some(&a.session),
            "missing or wrong CSRF token",
        ));
    }
    Ok(a)
}

/// [`check`], then the running daemon's handles.
fn check_live<'c>(
    c: &'c Console,
    headers: &HeaderMap,
    min: Role,
    csrf: Option<&str>,
) -> Result<(Auth, &'c super::Live), Response> {
    let a = check(c, headers, min, csrf)?;
    Ok((a, c.live()?))
}

pub async fn act(
    State(c): State<Arc<Console>>,
    headers: HeaderMap,
    Form(f): Form<ActForm>,
) -> Response {
    let (a, live) = match check_live(&c, &headers, Role::Operator, f.csrf.as_deref()) {
        Ok(x) => x,
        Err(r) => return r,
    };
    let ids = vec![f.id.clone()];
    let (req, back) = match f.action.as_str() {
        "retry" => (
            Request::SpoolRetry {
                ids,
                all_dead: false,
            },
            format!("/console/message/{}", f.id),
        ),
        "hold" => (
            Request::SpoolHold { ids },
            format!("/console/message/{}", f.id),
        ),
        "release" => (
            Request::SpoolRelease { ids },
            format!("/console/message/{}", f.id),
        ),
        "purge" => (
            Request::SpoolPurge {
                ids,
                all_dead: false,
            },
            "/console/queue".to_string(),
        ),
        "suspend" => {
            let for_secs = match f
                .duration
                .as_deref()
                .map(str::trim)
                .filter(|d| !d.is_empty())
            {
                Some(d) => match crate::config::units::parse_duration(d) {
                    Ok(d) => Some(d.as_secs().max(1)),
                    Err(e) => return layout::error(StatusCode::BAD_REQUEST, Some(&a.session), &e),
                },
                None => None,
            };
            let reason = f.reason.clone().filter(|r| !r.trim().is_empty());
            let by = format!(
                "console {} ({})",
                a.session.name_id,
                a.session.role.as_str()
            );
            let reason = Some(match reason {
                Some(r) => format!("{r} — {by}"),
                None => by,
            });
            (
                Request::CredentialSuspend {
                    name: f.id.clone(),
                    for_secs,
                    reason,
                },
                "/console/credentials".to_string(),
            )
        }
        "resume" => (
            Request::CredentialResume { name: f.id.clone() },
            "/console/credentials".to_string(),
        ),
        _ => return layout::error(StatusCode::BAD_REQUEST, Some(&a.session), "unknown action"),
    };
    let batch = matches!(f.action.as_str(), "retry" | "hold" | "release" | "purge");
    let outcome: Result<String, String> = if batch {
        match control::<BatchResult>(live, req).await {
            Ok(b) => match b.results.first() {
                Some(r) if r.ok => Ok(r.detail.clone().unwrap_or_default()),
                Some(r) => Err(r.error.clone().unwrap_or_default()),
                None => Err("no result".into()),
            },
            Err(e) => Err(e),
        }
    } else {
        control::<serde_json::Value>(live, req)
            .await
            .map(|_| "done".to_string())
    };
    match outcome {
        Ok(detail) => {
            audit_action(&a.session, &f.action, &f.id, true, &detail);
            Redirect::to(&back).into_response()
        }
        Err(e) => {
            audit_action(&a.session, &f.action, &f.id, false, &e);
            layout::error(StatusCode::CONFLICT, Some(&a.session), &e)
        }
    }
}

#[derive(Deserialize)]
pub struct CsrfForm {
    csrf: Option<String>,
}

/// Shows a message's body: admin only, each view an audit event.
pub async fn body(
    State(c): State<Arc<Console>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Form(f): Form<CsrfForm>,
) -> Response {
    let (a, live) = match check_live(&c, &headers, Role::Admin, f.csrf.as_deref()) {
        Ok(x) => x,
        Err(r) => return r,
    };
    let shown = live
        .control
        .queue
        .show(&id)
        .await
        .map_err(|e| e.to_string());
    let raw = match shown {
        Ok((detail, _)) => {
            let spool = Arc::clone(&live.control.spool);
            let place = detail.place;
            let id2 = id.clone();
            tokio::task::spawn_blocking(move || {
                spool
                    .dir()
                    .read(&id2, place == crate::spool::Place::Dead)
                    .map(|m| m.data)
            })
            .await
            .map_err(|e| e.to_string())
            .and_then(|r| r.map_err(|e| e.to_string()))
        }
        Err(e) => Err(e),
    };
    audit_action(&a.session, "view_body", &id, raw.is_ok(), "");
    match raw {
        Ok(bytes) => layout::page(
            &a.session,
            &format!("Message {id}: full text"),
            html! { pre { (String::from_utf8_lossy(&bytes)) } },
        ),
        Err(e) => layout::error(StatusCode::NOT_FOUND, Some(&a.session), &e),
    }
}

pub async fn reload(
    State(c): State<Arc<Console>>,
    headers: HeaderMap,
    Form(f): Form<CsrfForm>,
) -> Response {
    let (a, live) = match check_live(&c, &headers, Role::Admin, f.csrf.as_deref()) {
        Ok(x) => x,
        Err(r) => return r,
    };
    let sent = live.reload.try_send(()).is_ok();
    audit_action(
        &a.session,
        "reload",
        "",
        sent,
        if sent {
            "requested"
        } else {
            "a reload is already pending"
        },
    );
    Redirect::to("/console/config?reloaded=1").into_response()
}

/// Break-glass: the SMTP AUTH lockout (network and username) applies,
/// and a failure costs the same argon2id check as a success.
pub async fn local_admin_ok(
    c: &Console,
    username: &str,
    password: &str,
    ip: Option<IpAddr>,
) -> Result<(), &'static str> {
    let phc = c
        .settings
        .local_admins
        .iter()
        .find(|l| l.username == username)
        .map(|l| l.password_hash.clone());
    let lockout = c.live.get().map(|l| Arc::clone(&l.control.lockout));
    let key = ip.map(|ip| crate::quota::ClientKey::of(ip, crate::quota::DEFAULT_IPV6_PREFIX));
    if let (Some(l), Some(k)) = (&lockout, key)
        && l.check(k, Some(username), false).is_err()
    {
        return Err("locked out (the SMTP AUTH lockout)");
    }
    let pw = password.to_string();
    let ok =
        tokio::task::spawn_blocking(move || crate::access::check_password(phc.as_deref(), &pw))
            .await
            .unwrap_or(false);
    if let (Some(l), Some(k)) = (&lockout, key) {
        if ok {
            l.record_success(k, Some(username));
        } else {
            l.record_failure(k, Some(username));
            tokio::time::sleep(l.failure_delay().min(Duration::from_secs(5))).await;
        }
    }
    if ok {
        Ok(())
    } else {
        Err("wrong username or password")
    }
}
