//! `[validation.hook]`: asks an operator-chosen HTTPS service whether a
//! recipient exists (mailbox verification APIs, an in-house directory).
//!
//! Request: `POST url` with `{"address": "user@example.com"}` (A-label
//! domain). Response: 2xx with `{"valid": true|false, "reason": "..."}`.
//! Anything else (timeout, non-2xx, a body that is not that JSON) is an
//! error, answered per `on_error`, because a verifier that is down must not
//! silently turn into "every address is invalid".

use std::time::Duration;

use reqwest::header::{ACCEPT, CONTENT_TYPE};
use serde::{Deserialize, Serialize};

use super::HookSettings;
use crate::https::{error_chain, tls_config};
use crate::secret::Secret;

/// Longest response body read; a verdict is a few dozen bytes.
const MAX_BODY: usize = 16 * 1024;
/// Longest reason quoted in a reply.
const MAX_REASON: usize = 200;

/// The hook's answer about one address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Valid,
    Invalid { reason: String },
}

#[derive(Debug)]
pub struct Hook {
    url: reqwest::Url,
    client: Result<reqwest::Client, String>,
    bearer_token: Option<Secret>,
    timeout: Duration,
}

#[derive(Serialize)]
struct Request<'a> {
    address: &'a str,
}

#[derive(Deserialize)]
struct Response {
    valid: bool,
    #[serde(default)]
    reason: Option<String>,
}

impl Hook {
    /// Fails only on a url the config loader refuses anyway. A client that
    /// cannot be built (an unusable CA file, also checked at load time)
    /// makes every call an error, which `on_error` then answers.
    pub fn new(cfg: &HookSettings) -> Result<Hook, String> {
        let url = reqwest::Url::parse(&cfg.url).map_err(|e| format!("hook url: {e}"))?;
        let client = tls_config("validation.hook", cfg.ca_file.as_deref(), true)
            .map_err(|e| e.to_string())
            .and_then(|tls| {
                reqwest::Client::builder()
                    .tls_backend_preconfigured(tls)
                    .timeout(cfg.timeout)
                    .connect_timeout(cfg.timeout)
                    .redirect(reqwest::redirect::Policy::none())
                    .user_agent(concat!("postern/", env!("CARGO_PKG_VERSION")))
                    .build()
                    .map_err(|e| {
                        format!("cannot build the hook's HTTP client: {}", error_chain(&e))
                    })
            });
        if let Err(e) = &client {
            tracing::error!(error = %e, "validation hook unusable; on_error applies to every recipient");
        }
        Ok(Hook {
            url,
            client,
            bearer_token: cfg.bearer_token.clone(),
            timeout: cfg.timeout,
        })
    }

    /// Asks about `address`; `Err` is why no verdict could be had.
    pub async fn verify(&self, address: &str) -> Result<Verdict, String> {
        let client = self.client.as_ref().map_err(Clone::clone)?;
        let body = serde_json::to_vec(&Request { address })
            .map_err(|e| format!("cannot encode request: {e}"))?;
        let mut request = client
            .post(self.url.clone())
            .header(CONTENT_TYPE, "application/json")
            .header(ACCEPT, "application/json")
            .body(body);
        if let Some(token) = &self.bearer_token {
            request = request.bearer_auth(token.expose());
        }
        let call = async {
            let mut response = request.send().await.map_err(|e| {
                let e = e.without_url();
                if e.is_timeout() {
                    format!(
                        "no answer within {}",
                        humantime::format_duration(self.timeout)
                    )
                } else {
                    error_chain(&e)
                }
            })?;
            let status = response.status();
            let mut body = Vec::new();
            while let Some(chunk) = response
                .chunk()
                .await
                .map_err(|e| error_chain(&e.without_url()))?
            {
                body.extend_from_slice(&chunk);
                if body.len() > MAX_BODY {
                    return Err("response body too large".to_string());
                }
            }
            if !status.is_success() {
                return Err(format!("HTTP {}", status.as_u16()));
            }
            let parsed: Response = serde_json::from_slice(&body).map_err(|e| {
                format!("response is not {{\"valid\": bool, \"reason\": ...}}: {e}")
            })?;
            Ok(if parsed.valid {
                Verdict::Valid
            } else {
                Verdict::Invalid {
                    reason: clean_reason(parsed.reason.as_deref().unwrap_or("")),
                }
            })
        };
        // reqwest's timeout covers the request; this also bounds reading the body.
        tokio::time::timeout(self.timeout, call)
            .await
            .unwrap_or_else(|_| {
                Err(format!(
                    "no answer within {}",
                    humantime::format_duration(self.timeout)
                ))
            })
    }
}

/// The reason ends up in an SMTP reply and a log line: one short line.
fn clean_reason(reason: &str) -> String {
    let mut out: String = reason
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(MAX_REASON)
        .collect();
    out = out.trim().to_string();
    if out.is_empty() {
        out = "address rejected by the verification service".to_string();
    }
    out
}

#[cfg(test)]
mod tests;
