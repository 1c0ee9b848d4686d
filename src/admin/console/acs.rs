//! Signing in and out: SP metadata, the AuthnRequest redirect, the ACS,
//! break-glass local admins, the `--demo` one-time link, sign-out.

use std::sync::Arc;

use axum::Extension;
use axum::extract::{Form, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;

use super::layout;
use super::{Console, Peer, peer};
use crate::admin::settings::Role;
use crate::observe::audit;

pub async fn metadata(State(c): State<Arc<Console>>) -> Response {
    let Some(sp) = &c.sp else {
        return StatusCode::NOT_FOUND.into_response();
    };
    match sp.metadata() {
        Ok(xml) => (
            [(header::CONTENT_TYPE, "application/samlmetadata+xml")],
            xml,
        )
            .into_response(),
        Err(e) => layout::error(StatusCode::INTERNAL_SERVER_ERROR, None, &e),
    }
}

pub async fn login(State(c): State<Arc<Console>>) -> Response {
    let Some(sp) = &c.sp else {
        return Redirect::to("/console/signin").into_response();
    };
    match sp.login_url() {
        Ok(url) => Redirect::to(&url).into_response(),
        Err(e) => layout::error(StatusCode::INTERNAL_SERVER_ERROR, None, &e),
    }
}

#[derive(Deserialize)]
pub struct AcsForm {
    #[serde(rename = "SAMLResponse")]
    saml_response: String,
}

fn refused(client: &str, reason: &str) {
    tracing::warn!(
        target: audit::TARGET,
        event = "console_signin_refused",
        client_ip = client,
        reason,
        "console sign-in refused"
    );
}

pub async fn acs(
    State(c): State<Arc<Console>>,
    p: Option<Extension<Peer>>,
    form: Result<Form<AcsForm>, axum::extract::rejection::FormRejection>,
) -> Response {
    let client = peer(&p);
    let Some(sp) = c.sp.clone() else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let Ok(Form(form)) = form else {
        refused(&client, "no SAMLResponse");
        return layout::error(StatusCode::BAD_REQUEST, None, "no SAMLResponse");
    };
    let verdict = tokio::task::spawn_blocking(move || sp.consume(&form.saml_response)).await;
    let identity = match verdict {
        Ok(Ok(i)) => i,
        Ok(Err(e)) => {
            refused(&client, &e.to_string());
            return layout::error(StatusCode::FORBIDDEN, None, "sign-in refused");
        }
        Err(e) => {
            refused(&client, &e.to_string());
            return layout::error(StatusCode::INTERNAL_SERVER_ERROR, None, "sign-in failed");
        }
    };
    let Some(role) = identity.role else {
        tracing::warn!(
            target: audit::TARGET,
            event = "console_signin_refused",
            client_ip = client.as_str(),
            name_id = identity.name_id.as_str(),
            reason = "no role",
            "console sign-in refused: the assertion maps to no role"
        );
        return layout::error(
            StatusCode::FORBIDDEN,
            None,
            "you are signed in at the identity provider but have no role for this console",
        );
    };
    start(&c, &identity.name_id, role, "saml", &client)
}

fn start(c: &Console, name_id: &str, role: Role, via: &'static str, client: &str) -> Response {
    let id = c.sessions.start(name_id, role, via);
    if via == "saml" {
        tracing::info!(target: audit::TARGET, event = "console_signin", name_id, role = role.as_str(), via, client_ip = client, "console sign-in");
    } else {
        tracing::warn!(target: audit::TARGET, event = "console_signin", name_id, role = role.as_str(), via, client_ip = client, "console sign-in without the IdP");
    }
    (
        StatusCode::SEE_OTHER,
        [
            (header::SET_COOKIE, c.sessions.set_cookie(&id)),
            (header::LOCATION, "/console/".to_string()),
        ],
    )
        .into_response()
}

pub async fn signin_page(State(c): State<Arc<Console>>) -> Response {
    signin(&c, None)
}

/// Holds the break-glass form's CSRF token before there is a session: the
/// form must post the token this cookie carries, which a page on another
/// site can neither read nor (SameSite=Strict) send along.
const SIGNIN_COOKIE: &str = "__Host-postern_signin";

/// The sign-in page; with local admins, a fresh token for their form.
fn signin(c: &Console, problem: Option<&str>) -> Response {
    if c.settings.local_admins.is_empty() {
        return layout::signin(c.sp.is_some(), None, problem);
    }
    let token = super::random_token();
    let mut r = layout::signin(c.sp.is_some(), Some(&token), problem);
    let cookie =
        format!("{SIGNIN_COOKIE}={token}; Path=/; Secure; HttpOnly; SameSite=Strict; Max-Age=900");
    if let Ok(v) = header::HeaderValue::from_str(&cookie) {
        r.headers_mut().append(header::SET_COOKIE, v);
    }
    r
}

#[derive(Deserialize)]
pub struct LocalForm {
    username: String,
    password: String,
    csrf: Option<String>,
}

/// Break-glass: a `local_admins` account, with the SMTP AUTH lockout.
pub async fn local_signin(
    State(c): State<Arc<Console>>,
    p: Option<Extension<Peer>>,
    headers: HeaderMap,
    Form(f): Form<LocalForm>,
) -> Response {
    let client = peer(&p);
    let ip = p.map(|x| x.0.0.ip());
    let expected = super::session::token_cookie(&headers, SIGNIN_COOKIE);
    let csrf_ok = expected
        .as_deref()
        .is_some_and(|e| super::session::tokens_match(e, f.csrf.as_deref()));
    if !csrf_ok && !c.settings.local_admins.is_empty() {
        tracing::warn!(
            target: audit::TARGET,
            event = "console_signin_refused",
            client_ip = client.as_str(),
            reason = "the break-glass form was posted without its CSRF token",
            "console sign-in refused (break-glass)"
        );
        let mut r = signin(&c, Some("the sign-in form expired; sign in again"));
        *r.status_mut() = StatusCode::FORBIDDEN;
        return r;
    }
    if let Err(why) = super::actions::local_admin_ok(&c, &f.username, &f.password, ip).await {
        let username: String = f.username.chars().take(64).collect();
        tracing::warn!(
            target: audit::TARGET,
            event = "console_signin_refused",
            client_ip = client.as_str(),
            username = username.as_str(),
            reason = why,
            "console sign-in refused (break-glass)"
        );
        return signin(&c, Some("wrong username or password, or locked out"));
    }
    start(&c, &f.username, Role::Admin, "local", &client)
}

#[derive(Deserialize)]
pub struct DemoQuery {
    token: String,
}

/// `run --demo`'s one-time link.
pub async fn demo(
    State(c): State<Arc<Console>>,
    p: Option<Extension<Peer>>,
    Query(q): Query<DemoQuery>,
) -> Response {
    let found = c.demo_tokens.lock().ok().and_then(|mut v| {
        let i = v.iter().position(|t| *t == q.token)?;
        Some(v.remove(i))
    });
    if found.is_none() {
        return layout::error(
            StatusCode::FORBIDDEN,
            None,
            "this sign-in link was used or is unknown",
        );
    }
    start(&c, "demo", Role::Admin, "demo", &peer(&p))
}

#[derive(Deserialize)]
pub struct CsrfForm {
    csrf: Option<String>,
}

pub async fn signout(
    State(c): State<Arc<Console>>,
    headers: HeaderMap,
    Form(f): Form<CsrfForm>,
) -> Response {
    if let Some((id, s)) = c.sessions.get(&headers) {
        if !super::session::csrf_ok(&s, f.csrf.as_deref()) {
            return layout::error(
                StatusCode::FORBIDDEN,
                Some(&s),
                "missing or wrong CSRF token",
            );
        }
        c.sessions.end(&id);
        tracing::info!(target: audit::TARGET, event = "console_signout", name_id = s.name_id.as_str(), role = s.role.as_str(), "console sign-out");
    }
    (
        StatusCode::SEE_OTHER,
        [
            (header::SET_COOKIE, super::session::clear_cookie()),
            (header::LOCATION, "/console/signin".to_string()),
        ],
    )
        .into_response()
}
