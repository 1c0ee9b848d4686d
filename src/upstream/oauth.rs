//! OAuth 2.0 access tokens and API calls for the OAuth providers (msgraph,
//! gmail).
//!
//! Each such upstream owns one [`TokenCache`]: it fetches a token from the
//! provider's token endpoint (client secret, certificate assertion or
//! service-account assertion), hands it to every delivery until shortly
//! before it expires, and refreshes it one request at a time: deliveries
//! that need a token while a refresh is running wait for that refresh
//! instead of starting their own, and a failed refresh is reported to all
//! of them at once, so an outage never turns into a stampede on the token
//! endpoint. An API that answers 401 gets exactly one forced refresh and
//! one retry. Tokens and secrets are never logged; Debug output redacts them.
//!
//! The response classifier shared by both providers lives here too, because
//! it is where credential trouble (401/403) turns into an operator alert.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use reqwest::header::RETRY_AFTER;
use reqwest::{StatusCode, Url};
use serde_json::{Map, Value, json};
use tokio::sync::Mutex;
use tokio::time::Instant;

use super::http::parse_retry_after;
use super::jwt::{JwtAlg, RsaSigner, random_uuid};
use super::{DeliveryError, sanitize};
use crate::secret::Secret;
use client::is_rate_limit;

mod client;
pub use client::{
    ApiResponse, api_client, https_url, provider_message, read_response, request_error,
};

/// Longest provider text quoted in a failure reason.
pub const MAX_REASON: usize = 500;
/// Refresh this long before expiry at most (10% of the lifetime if shorter).
const MAX_REFRESH_MARGIN: Duration = Duration::from_secs(300);
/// Used when a token endpoint does not say how long its token lives.
const DEFAULT_LIFETIME: Duration = Duration::from_secs(600);
/// A failed refresh is reported to every caller for this long before the
/// endpoint is asked again.
const FAILURE_HOLD: Duration = Duration::from_secs(1);
/// Lifetime of the assertions postern signs (Entra: 5-10 minutes; Google: at most 1 h).
const ASSERTION_LIFETIME: u64 = 600;
const JWT_BEARER: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";

/// How an upstream proves its identity to the token endpoint.
#[derive(Debug)]
pub enum TokenGrant {
    /// `client_credentials` with a client secret (Entra).
    ClientSecret {
        client_id: String,
        secret: Secret,
        scope: String,
    },
    /// `client_credentials` with a certificate-signed client assertion (Entra).
    ClientAssertion {
        client_id: String,
        signer: Arc<RsaSigner>,
        /// `x5t#S256` of the certificate registered with the app.
        thumbprint: String,
        scope: String,
        /// The `aud` claim: the token endpoint.
        audience: String,
    },
    /// RFC 7523 JWT bearer grant with a service-account key (Google).
    JwtBearer {
        issuer: String,
        /// The user to act for (domain-wide delegation).
        subject: String,
        scope: String,
        audience: String,
        key_id: Option<String>,
        signer: Arc<RsaSigner>,
    },
}

impl TokenGrant {
    /// The token request's form fields. Signs (RSA) for assertion grants,
    /// so call it off the async runtime.
    fn form(&self, now: u64) -> Result<Vec<(&'static str, String)>, String> {
        Ok(match self {
            TokenGrant::ClientSecret {
                client_id,
                secret,
                scope,
            } => vec![
                ("client_id", client_id.clone()),
                ("scope", scope.clone()),
                ("client_secret", secret.expose().to_string()),
                ("grant_type", "client_credentials".into()),
            ],
            TokenGrant::ClientAssertion {
                client_id,
                signer,
                thumbprint,
                scope,
                audience,
            } => {
                let mut header = Map::new();
                header.insert("x5t#S256".into(), Value::from(thumbprint.as_str()));
                let claims = json!({
                    "aud": audience, "iss": client_id, "sub": client_id,
                    "jti": random_uuid(), "nbf": now, "iat": now,
                    "exp": now + ASSERTION_LIFETIME,
                });
                let jwt = signer
                    .sign(JwtAlg::Ps256, header, &claims)
                    .map_err(|e| e.to_string())?;
                vec![
                    ("client_id", client_id.clone()),
                    ("scope", scope.clone()),
                    (
                        "client_assertion_type",
                        "urn:ietf:params:oauth:client-assertion-type:jwt-bearer".into(),
                    ),
                    ("client_assertion", jwt),
                    ("grant_type", "client_credentials".into()),
                ]
            }
            TokenGrant::JwtBearer {
                issuer,
                subject,
                scope,
                audience,
                key_id,
                signer,
            } => {
                let mut header = Map::new();
                if let Some(kid) = key_id {
                    header.insert("kid".into(), Value::from(kid.as_str()));
                }
                let claims = json!({
                    "iss": issuer, "sub": subject, "scope": scope, "aud": audience,
                    "iat": now, "exp": now + ASSERTION_LIFETIME,
                });
                let jwt = signer
                    .sign(JwtAlg::Rs256, header, &claims)
                    .map_err(|e| e.to_string())?;
                vec![("grant_type", JWT_BEARER.into()), ("assertion", jwt)]
            }
        })
    }
}

/// One access token as handed to a request. Debug never shows it.
#[derive(Clone)]
pub struct AccessToken {
    value: Arc<str>,
    /// Which fetch produced it, so a 401 invalidates only that token.
    generation: u64,
}

impl fmt::Debug for AccessToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "AccessToken(<redacted>, #{})", self.generation)
    }
}

struct Cached {
    token: AccessToken,
    refresh_at: Instant,
    expires_at: Instant,
    /// The API refused it; never fall back to it.
    rejected: bool,
}

#[derive(Default)]
struct State {
    current: Option<Cached>,
    generation: u64,
    last_failure: Option<(Instant, DeliveryError)>,
}

/// What `postern status` shows of an upstream's access token (never the
/// token itself).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct TokenStatus {
    /// `none` (not fetched yet), `valid`, `expired`, `rejected` (the API
    /// refused it; a new one is fetched next), or `refreshing`.
    pub state: String,
    /// Seconds until the current token expires.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_in_s: Option<u64>,
    /// The last failed refresh, if it is still the latest word.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error_age_s: Option<u64>,
}

/// Tokens for one upstream, plus the credential alarm.
pub struct TokenCache {
    upstream: String,
    client: reqwest::Client,
    token_url: Url,
    grant: Arc<TokenGrant>,
    timeout: Duration,
    state: Mutex<State>,
    /// Set once "credentials rejected" was logged, cleared by a success.
    alerted: AtomicBool,
}

impl fmt::Debug for TokenCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenCache")
            .field("upstream", &self.upstream)
            .field("token_url", &self.token_url.as_str())
            .field("grant", &self.grant)
            .finish_non_exhaustive()
    }
}

impl TokenCache {
    pub fn new(
        upstream: &str,
        client: reqwest::Client,
        token_url: Url,
        grant: TokenGrant,
        timeout: Duration,
    ) -> TokenCache {
        TokenCache {
            upstream: upstream.to_string(),
            client,
            token_url,
            grant: Arc::new(grant),
            timeout,
            state: Mutex::new(State::default()),
            alerted: AtomicBool::new(false),
        }
    }

    /// A token that is valid now, fetching one if needed. Holding the lock
    /// across the fetch is the single flight: waiters find the new token
    /// (or the fresh failure) when they get the lock.
    pub async fn token(&self) -> Result<AccessToken, DeliveryError> {
        let mut state = self.state.lock().await;
        let now = Instant::now();
        if let Some(c) = &state.current
            && now < c.refresh_at
            && !c.rejected
        {
            return Ok(c.token.clone());
        }
        if let Some((at, err)) = &state.last_failure
            && now.duration_since(*at) < FAILURE_HOLD
        {
            return match usable(&state.current, now) {
                Some(t) => Ok(t),
                None if err.is_permanent() => Err(err.clone()),
                // The endpoint was not asked: wait out the hold (or what the
                // endpoint itself asked for), without counting a new failure.
                None => Err(DeliveryError::NotAttempted {
                    reason: err.reason().to_string(),
                    retry_after: match err {
                        DeliveryError::Transient {
                            retry_after: Some(r),
                            ..
                        } => (*r).max(FAILURE_HOLD - now.duration_since(*at)),
                        _ => FAILURE_HOLD - now.duration_since(*at),
                    },
                }),
            };
        }
        match self.fetch().await {
            Ok((value, lifetime)) => {
                state.generation += 1;
                let margin = (lifetime / 10).min(MAX_REFRESH_MARGIN);
                let token = AccessToken {
                    value: value.into(),
                    generation: state.generation,
                };
                let got_at = Instant::now();
                state.current = Some(Cached {
                    token: token.clone(),
                    refresh_at: got_at + lifetime - margin,
                    expires_at: got_at + lifetime,
                    rejected: false,
                });
                state.last_failure = None;
                tracing::debug!(upstream = %self.upstream, lifetime_s = lifetime.as_secs(), "access token obtained");
                crate::observe::metrics::token_refresh(&self.upstream, "ok");
                Ok(token)
            }
            Err(err) => {
                crate::observe::metrics::token_refresh(&self.upstream, "error");
                state.last_failure = Some((Instant::now(), err.clone()));
                match usable(&state.current, now) {
                    Some(t) => {
                        tracing::warn!(upstream = %self.upstream, reason = %err, "token refresh failed; using the current token until it expires");
                        Ok(t)
                    }
                    None => Err(err),
                }
            }
        }
    }

    /// The token's state right now, without waiting: while a refresh holds
    /// the lock the answer is `refreshing`.
    pub fn status(&self) -> TokenStatus {
        let Ok(state) = self.state.try_lock() else {
            return TokenStatus {
                state: "refreshing".to_string(),
                expires_in_s: None,
                last_error: None,
                last_error_age_s: None,
            };
        };
        let now = Instant::now();
        let (word, expires_in_s) = match &state.current {
            None => ("none", None),
            Some(c) if c.rejected => ("rejected", None),
            Some(c) if now >= c.expires_at => ("expired", None),
            Some(c) => ("valid", Some(c.expires_at.duration_since(now).as_secs())),
        };
        let (last_error, last_error_age_s) = match &state.last_failure {
            Some((at, err)) => (
                Some(err.reason().to_string()),
                Some(now.duration_since(*at).as_secs()),
            ),
            None => (None, None),
        };
        TokenStatus {
            state: word.to_string(),
            expires_in_s,
            last_error,
            last_error_age_s,
        }
    }

    /// The API answered 401 to `token`: the next `token()` fetches a new
    /// one, unless another delivery already replaced it.
    pub async fn reject(&self, token: &AccessToken) {
        let mut state = self.state.lock().await;
        if let Some(c) = state.current.as_mut()
            && c.token.generation == token.generation
        {
            c.rejected = true;
            // A forced refresh must not wait out an earlier failure.
            state.last_failure = None;
        }
    }

    /// Sends the request `build` makes with a bearer token; on 401 forces
    /// one refresh and sends once more. The last response is returned
    /// whatever its status; only transport and token failures are errors.
    pub async fn send<F>(&self, build: F) -> Result<ApiResponse, DeliveryError>
    where
        F: Fn() -> reqwest::RequestBuilder,
    {
        let token = self.token().await?;
        let response = self.execute(build().bearer_auth(&*token.value)).await?;
        if response.status != StatusCode::UNAUTHORIZED {
            return Ok(response);
        }
        tracing::info!(upstream = %self.upstream, "API refused the access token (401); fetching a new one and retrying once");
        self.reject(&token).await;
        let token = self.token().await?;
        self.execute(build().bearer_auth(&*token.value)).await
    }

    /// Sends a request that carries its own authorization (a
    /// pre-authenticated upload URL).
    pub async fn execute(
        &self,
        request: reqwest::RequestBuilder,
    ) -> Result<ApiResponse, DeliveryError> {
        let response = request
            .send()
            .await
            .map_err(|e| request_error(e, self.timeout))?;
        Ok(read_response(response).await)
    }

    /// Success, or the delivery outcome for an API error response.
    pub fn check(&self, what: &str, r: &ApiResponse) -> Result<(), DeliveryError> {
        if r.status.is_success() {
            self.alerted.store(false, Ordering::Relaxed);
            return Ok(());
        }
        let code = r.status.as_u16();
        let mut reason = format!("{what}: HTTP {code}");
        if let Some(text) = provider_message(&r.body) {
            reason.push_str(": ");
            reason.push_str(&text);
        }
        let retry_after = r
            .headers
            .get(RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| parse_retry_after(v, SystemTime::now()));
        let transient = |reason: String| {
            Err(DeliveryError::Transient {
                reason,
                retry_after,
            })
        };
        match r.status {
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN if !is_rate_limit(&r.body) => {
                self.credentials_rejected(&reason);
                transient(reason)
            }
            s if s == StatusCode::TOO_MANY_REQUESTS
                || s == StatusCode::REQUEST_TIMEOUT
                || s.is_server_error()
                || s == StatusCode::FORBIDDEN =>
            {
                transient(reason)
            }
            _ => Err(DeliveryError::permanent(reason)),
        }
    }

    /// Logs at ERROR the first time in a row that the provider refuses our
    /// credentials or permissions: retrying cannot fix that, an operator must.
    fn credentials_rejected(&self, reason: &str) {
        if !self.alerted.swap(true, Ordering::Relaxed) {
            tracing::error!(upstream = %self.upstream, reason = %reason, "credentials rejected: check the upstream's client id, secret or key and its API permissions; messages stay queued and are retried");
        }
    }

    async fn fetch(&self) -> Result<(String, Duration), DeliveryError> {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let grant = self.grant.clone();
        // RSA signing takes milliseconds: keep it off the async workers.
        let form = tokio::task::spawn_blocking(move || grant.form(now))
            .await
            .map_err(|e| DeliveryError::transient(format!("token request: {e}")))?
            .map_err(|e| DeliveryError::transient(format!("cannot sign token request: {e}")))?;
        let what = format!(
            "token request to {}",
            self.token_url.host_str().unwrap_or("")
        );
        let response = self
            .execute(
                self.client
                    .post(self.token_url.clone())
                    .header(
                        reqwest::header::CONTENT_TYPE,
                        "application/x-www-form-urlencoded",
                    )
                    .body(form_encode(&form)),
            )
            .await
            .map_err(|e| DeliveryError::Transient {
                reason: format!("{what}: {e}"),
                retry_after: None,
            })?;
        if !response.status.is_success() {
            // Any refusal is transient: the operator can fix credentials
            // while messages wait in the queue.
            return Err(match self.check(&what, &response) {
                Err(DeliveryError::Permanent { reason }) => {
                    self.credentials_rejected(&reason);
                    DeliveryError::transient(reason)
                }
                Err(e) => e,
                Ok(()) => DeliveryError::transient(what),
            });
        }
        parse_token(&response.body).map_err(|e| DeliveryError::transient(format!("{what}: {e}")))
    }
}

fn usable(current: &Option<Cached>, now: Instant) -> Option<AccessToken> {
    current
        .as_ref()
        .filter(|c| !c.rejected && now < c.expires_at)
        .map(|c| c.token.clone())
}

/// `access_token` and lifetime from a token endpoint's JSON answer.
fn parse_token(body: &[u8]) -> Result<(String, Duration), String> {
    let v: Value = serde_json::from_slice(body).map_err(|_| "answer is not JSON")?;
    let token = v
        .get("access_token")
        .and_then(Value::as_str)
        .filter(|t| !t.is_empty())
        .ok_or("answer has no access_token")?;
    if !token.bytes().all(|b| b.is_ascii_graphic()) {
        return Err("access_token has characters not allowed in a header".into());
    }
    if let Some(kind) = v.get("token_type").and_then(Value::as_str)
        && !kind.eq_ignore_ascii_case("bearer")
    {
        return Err(format!("unsupported token_type {:?}", sanitize(kind, 40)));
    }
    // Entra once sent expires_in as a string; accept both.
    let lifetime = match v.get("expires_in") {
        Some(Value::Number(n)) => n.as_u64().map(Duration::from_secs),
        Some(Value::String(s)) => s.trim().parse().ok().map(Duration::from_secs),
        _ => None,
    }
    .unwrap_or(DEFAULT_LIFETIME);
    Ok((token.to_string(), lifetime))
}

/// `application/x-www-form-urlencoded` (reqwest's `form` feature is off;
/// url's query serializer is the same encoder).
fn form_encode(fields: &[(&str, String)]) -> String {
    let mut url = Url::parse("https://form.invalid/").unwrap_or_else(|_| unreachable!());
    url.query_pairs_mut()
        .extend_pairs(fields.iter().map(|(k, v)| (*k, v.as_str())));
    url.query().unwrap_or("").to_string()
}

#[cfg(test)]
mod tests;
