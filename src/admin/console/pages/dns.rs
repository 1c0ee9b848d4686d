//! The `dns-check` results (SPF, DKIM, DMARC) for each signing domain of
//! the configuration on disk, as `postern dns-check DOMAIN` prints them,
//! asked of `[validation] resolver` or the system resolver.

use std::sync::Arc;

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;
use maud::html;

use super::super::{Console, layout};
use super::{auth, live};
use crate::admin::settings::Role;
use crate::dnscheck::{Finding, Status};

pub async fn dns(State(c): State<Arc<Console>>, headers: HeaderMap) -> Response {
    let a = auth!(c, headers, Role::Viewer);
    let live = live!(c);
    let Some(path) = live.config_path.clone() else {
        return layout::page(
            &a.session,
            "DNS check",
            html! { p { "The demo configuration signs for no domain." } },
        );
    };
    // Blocking (its own resolver runtime, up to a few seconds a query).
    let results = tokio::task::spawn_blocking(move || {
        let cfg = crate::config::load(&path).map_err(|e| e.to_string())?;
        let mut domains: Vec<String> = cfg.dkim.keys.iter().map(|k| k.domain.clone()).collect();
        domains.sort();
        domains.dedup();
        let per_domain: Vec<(String, Result<Vec<Finding>, String>)> = domains
            .into_iter()
            .map(|d| {
                let f = crate::dnscheck::check(&d, Some(&cfg), cfg.validation.resolver);
                (d, f)
            })
            .collect();
        Ok::<_, String>(per_domain)
    })
    .await
    .map_err(|e| e.to_string())
    .and_then(|r| r);
    layout::page(
        &a.session,
        "DNS check",
        html! {
            @match &results {
                Err(e) => p class="error" { "cannot check: " (e) },
                Ok(list) if list.is_empty() => p { "No [[dkim]] key is configured: no signing domain to check." },
                Ok(list) => {
                    @for (domain, findings) in list {
                        h2 id=(format!("domain-{domain}")) { (domain) }
                        @match findings {
                            Err(e) => p class="error" { (e) },
                            Ok(fs) => table {
                                tr { th { "Check" } th { "Result" } th { "Detail" } th { "Fix" } }
                                @for f in fs {
                                    tr {
                                        td { (f.check) }
                                        td class=(if f.status == Status::Fail { "error" } else if f.status == Status::Pass { "ok" } else { "" }) { (f.status.to_string()) }
                                        td { (f.detail) }
                                        td { (f.fix.clone().unwrap_or_default()) }
                                    }
                                }
                            },
                        }
                    }
                }
            }
        },
    )
}
