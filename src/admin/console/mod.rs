//! The admin console: server-rendered pages (maud) on the admin listener,
//! signed in through SAML (`super::saml`) or, when the IdP is down, a
//! break-glass local admin.
//!
//! Every page works without JavaScript. Every response carries a
//! Content-Security-Policy without inline script, `X-Frame-Options: DENY`
//! and `Referrer-Policy: no-referrer`. State-changing requests are POSTs
//! that need the session's CSRF token and are audit events with the
//! person's NameID and role. The data comes from the control operations
//! (`crate::control`), the same answers `postern spool ...` and
//! `postern status` get, and from `crate::observe::recent`.

// The guards return the whole refusal response for handlers to send as is.
#![allow(clippy::result_large_err)]

mod acs;
mod actions;
mod layout;
mod pages;
pub mod session;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

use axum::Router;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};

use super::saml::Sp;
use super::settings::Role;
use crate::observe::audit;
use session::{Session, Sessions};

/// A random 256-bit token, base64url (43 characters).
pub fn random_token() -> String {
    use base64::Engine;
    use ring::rand::SecureRandom;
    let mut b = [0u8; 32];
    // SystemRandom fails only without a kernel RNG; then no token at all
    // is safer than a predictable one.
    if ring::rand::SystemRandom::new().fill(&mut b).is_err() {
        panic!("no system random number generator");
    }
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b)
}

/// What the console reads and steers once the daemon has it running: set
/// by the daemon after the admin listener is bound.
pub struct Live {
    pub control: Arc<crate::control::Context>,
    /// Sends the daemon a reload (as SIGHUP does).
    pub reload: tokio::sync::mpsc::Sender<()>,
    pub config_path: Option<PathBuf>,
    /// `[tls] certificate`, for its expiry date on the overview.
    pub tls_certificate: Option<PathBuf>,
}

pub type LiveSlot = Arc<OnceLock<Live>>;

pub struct Console {
    pub settings: super::settings::Console,
    pub sessions: Sessions,
    pub sp: Option<Arc<Sp>>,
    pub live: LiveSlot,
    /// One-time sign-in tokens (`run --demo`).
    pub demo_tokens: std::sync::Mutex<Vec<String>>,
}

impl Console {
    pub fn new(
        settings: &super::settings::Console,
        live: LiveSlot,
    ) -> Result<Arc<Console>, String> {
        crate::observe::recent::enable();
        let sp = match &settings.saml {
            Some(s) => Some(Sp::new(s, &settings.public_url)?),
            None => None,
        };
        Ok(Arc::new(Console {
            settings: settings.clone(),
            sessions: Sessions::new(settings.idle_timeout, settings.absolute_timeout),
            sp,
            live,
            demo_tokens: std::sync::Mutex::new(Vec::new()),
        }))
    }

    /// A one-time sign-in link for `run --demo`.
    pub fn demo_link(&self) -> String {
        let t = random_token();
        if let Ok(mut v) = self.demo_tokens.lock() {
            v.push(t.clone());
        }
        format!("{}/console/demo?token={t}", self.settings.public_url)
    }
}

pub fn router(console: Arc<Console>) -> Router {
    Router::new()
        .route("/saml/metadata", get(acs::metadata))
        .route("/saml/login", get(acs::login))
        .route(
            "/saml/acs",
            post(acs::acs).layer(DefaultBodyLimit::max(super::saml::MAX_POST)),
        )
        .route(
            "/console/signin",
            get(acs::signin_page).post(acs::local_signin),
        )
        .route("/console/demo", get(acs::demo))
        .route("/console/signout", post(acs::signout))
        .route("/console/style.css", get(layout::style))
        .route("/console", get(|| async { Redirect::to("/console/") }))
        .route("/console/", get(pages::overview))
        .route("/console/chart.svg", get(pages::chart))
        .route("/console/queue", get(pages::queue))
        .route("/console/message/{id}", get(pages::message))
        .route("/console/message/{id}/body", post(actions::body))
        .route("/console/confirm", get(actions::confirm))
        .route("/console/action", post(actions::act))
        .route("/console/credentials", get(pages::credentials))
        .route("/console/audit", get(pages::audit_log))
        .route("/console/config", get(pages::config))
        .route("/console/dns", get(pages::dns))
        .route("/console/reload", post(actions::reload))
        .layer(DefaultBodyLimit::max(64 * 1024))
        .layer(axum::middleware::from_fn(security_headers))
        .with_state(console)
}

async fn security_headers(req: Request, next: Next) -> Response {
    let mut res = next.run(req).await;
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    res
}

/// A signed-in request: the session and the live daemon.
pub struct Auth {
    pub id: String,
    pub session: Session,
}

impl Console {
    /// The session of `headers`, or the response to send instead: to the
    /// sign-in page, or 403 when its role is below `min`.
    pub fn auth(&self, headers: &HeaderMap, min: Role) -> Result<Auth, Response> {
        let Some((id, session)) = self.sessions.get(headers) else {
            return Err(Redirect::to("/console/signin").into_response());
        };
        if session.role < min {
            return Err(layout::error(
                StatusCode::FORBIDDEN,
                Some(&session),
                &format!("your role ({}) may not do this", session.role.as_str()),
            ));
        }
        Ok(Auth { id, session })
    }

    pub fn live(&self) -> Result<&Live, Response> {
        self.live.get().ok_or_else(|| {
            layout::error(
                StatusCode::SERVICE_UNAVAILABLE,
                None,
                "postern is still starting",
            )
        })
    }
}

/// The audit event of a console action.
pub fn audit_action(s: &Session, action: &str, target: &str, ok: bool, detail: &str) {
    tracing::warn!(
        target: audit::TARGET,
        event = "console_action",
        action,
        target_id = target,
        name_id = s.name_id.as_str(),
        role = s.role.as_str(),
        via = s.via,
        ok,
        detail,
        "console action"
    );
}

/// The client's address, put on each request by the admin listener.
#[derive(Clone, Copy, Debug)]
pub struct Peer(pub SocketAddr);

/// The client's address for audit events.
pub fn peer(info: &Option<axum::Extension<Peer>>) -> String {
    info.as_ref()
        .map(|c| c.0.0.ip().to_string())
        .unwrap_or_default()
}

/// Runs one control request and decodes its result.
pub async fn control<T: serde::de::DeserializeOwned>(
    live: &Live,
    req: crate::control::Request,
) -> Result<T, String> {
    let res = crate::control::answer(&live.control, req).await;
    if !res.ok {
        return Err(res.error.unwrap_or_else(|| "failed".into()));
    }
    serde_json::from_value(res.result.unwrap_or_default()).map_err(|e| e.to_string())
}

pub fn state(c: State<Arc<Console>>) -> Arc<Console> {
    c.0
}
