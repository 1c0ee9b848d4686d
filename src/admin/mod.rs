//! The admin listener: `/metrics` (Prometheus text format), `/healthz`
//! (the process answers) and `/readyz` (postern can take and deliver
//! mail; the body says what is not ready).
//!
//! It runs only when `[admin]` is configured. On loopback it speaks plain
//! HTTP; off loopback it serves HTTPS with `[tls]`'s certificate and
//! `/metrics` needs the bearer token (config refuses it otherwise).
//! `/healthz` and `/readyz` never need the token: load balancers probe
//! them and they reveal nothing but readiness.

pub mod console;
pub mod saml;
pub mod settings;

pub use settings::Settings;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use metrics_exporter_prometheus::PrometheusHandle;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

/// What the daemon reports to the admin listener.
pub trait Health: Send + Sync {
    /// One line per thing that is not ready; empty when ready.
    fn not_ready(&self) -> Vec<String>;
    /// One line per thing that works in a reduced way while the node still
    /// takes mail (Redis down, local limits); shown on `/readyz` with 200.
    fn degraded(&self) -> Vec<String> {
        Vec::new()
    }
    /// Brings the gauges that are read, not counted (spool size, breaker
    /// states), up to date before a scrape.
    fn refresh_gauges(&self);
}

/// A slow or idle HTTP client holds a slot no longer than this.
const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// Admin connections at once; scrapers and probes need a handful.
const MAX_CONNECTIONS: usize = 64;

struct Ctx {
    metrics: PrometheusHandle,
    health: Arc<dyn Health>,
    token: Option<crate::secret::Secret>,
}

/// A bound admin listener, not yet serving.
pub struct Admin {
    listener: TcpListener,
    tls: Option<tokio_rustls::TlsAcceptor>,
    app: Router,
    console: Option<Arc<console::Console>>,
}

impl Admin {
    /// Binds `settings.address`. `tls` is required when `settings.https`
    /// (config guarantees `[tls]` then).
    pub async fn bind(
        settings: &Settings,
        tls: Option<Arc<rustls::ServerConfig>>,
        metrics: PrometheusHandle,
        health: Arc<dyn Health>,
        live: console::LiveSlot,
    ) -> std::io::Result<Admin> {
        let tls = match (settings.https, tls) {
            (true, Some(cfg)) => Some(tokio_rustls::TlsAcceptor::from(cfg)),
            (true, None) => {
                return Err(std::io::Error::other(
                    "admin listener off loopback needs [tls]",
                ));
            }
            (false, _) => None,
        };
        let listener = TcpListener::bind(settings.address).await?;
        let ctx = Arc::new(Ctx {
            metrics,
            health,
            token: settings.bearer_token.clone(),
        });
        let console = match &settings.console {
            Some(c) => Some(console::Console::new(c, live).map_err(std::io::Error::other)?),
            None => None,
        };
        let mut app = Router::new()
            .route("/metrics", get(metrics_page))
            .route("/healthz", get(|| async { "ok\n" }))
            .route("/readyz", get(readyz))
            .with_state(ctx);
        if let Some(c) = &console {
            app = app.merge(console::router(Arc::clone(c)));
        }
        Ok(Admin {
            listener,
            tls,
            app,
            console,
        })
    }

    /// The console, when `[admin.console]` is configured.
    pub fn console(&self) -> Option<Arc<console::Console>> {
        self.console.clone()
    }

    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Serves until the task is aborted.
    pub async fn serve(self) {
        let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
        loop {
            let (tcp, peer) = match self.listener.accept().await {
                Ok(c) => c,
                Err(e) => {
                    tracing::warn!(error = %e, "admin: accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            let Ok(slot) = Arc::clone(&slots).try_acquire_owned() else {
                tracing::warn!(peer = %peer, "admin: too many connections");
                continue;
            };
            let tls = self.tls.clone();
            // The console's audit events name the client's address.
            let service = TowerToHyperService::new(
                self.app.clone().layer(axum::Extension(console::Peer(peer))),
            );
            tokio::spawn(async move {
                let _slot = slot;
                let http = {
                    let mut b = hyper::server::conn::http1::Builder::new();
                    b.timer(TokioTimer::new())
                        .header_read_timeout(HEADER_TIMEOUT);
                    b
                };
                let result = match tls {
                    Some(acceptor) => {
                        match tokio::time::timeout(HEADER_TIMEOUT, acceptor.accept(tcp)).await {
                            Ok(Ok(stream)) => {
                                http.serve_connection(TokioIo::new(stream), service).await
                            }
                            Ok(Err(e)) => {
                                tracing::debug!(peer = %peer, error = %e, "admin: TLS handshake failed");
                                return;
                            }
                            Err(_) => return,
                        }
                    }
                    None => http.serve_connection(TokioIo::new(tcp), service).await,
                };
                if let Err(e) = result {
                    tracing::debug!(peer = %peer, error = %e, "admin: connection ended with error");
                }
            });
        }
    }
}

async fn metrics_page(State(ctx): State<Arc<Ctx>>, headers: HeaderMap) -> Response {
    if let Some(token) = &ctx.token
        && !bearer_matches(&headers, token)
    {
        return (
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, "Bearer")],
            "a valid bearer token is required\n",
        )
            .into_response();
    }
    ctx.health.refresh_gauges();
    ctx.metrics.run_upkeep();
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        ctx.metrics.render(),
    )
        .into_response()
}

async fn readyz(State(ctx): State<Arc<Ctx>>) -> Response {
    let problems = ctx.health.not_ready();
    if problems.is_empty() {
        let degraded = ctx.health.degraded();
        if degraded.is_empty() {
            return (StatusCode::OK, "ready\n").into_response();
        }
        let mut body = String::from("ready\ndegraded:\n");
        for d in degraded {
            body.push_str("- ");
            body.push_str(&d);
            body.push('\n');
        }
        (StatusCode::OK, body).into_response()
    } else {
        let mut body = String::from("not ready:\n");
        for p in problems {
            body.push_str("- ");
            body.push_str(&p);
            body.push('\n');
        }
        (StatusCode::SERVICE_UNAVAILABLE, body).into_response()
    }
}

/// Compares digests, so the comparison takes the same time wherever the
/// presented token differs.
fn bearer_matches(headers: &HeaderMap, token: &crate::secret::Secret) -> bool {
    let Some(presented) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
    else {
        return false;
    };
    let digest = |s: &str| ring::digest::digest(&ring::digest::SHA256, s.as_bytes());
    digest(presented.trim()).as_ref() == digest(token.expose()).as_ref()
}
