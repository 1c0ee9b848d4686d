//! AUTH: lockout check, password verification, scope of the login.
//!
//! Order matters for what a client can learn. A locked-out client or
//! username is refused before the password is checked (no oracle, no CPU
//! spent on argon2). A disabled or expired credential, an expired secret and
//! an unknown username all cost one argon2 verification and get the same
//! `535 5.7.8` as a wrong password. Only a client that knows a valid secret
//! learns that the credential may not be used from its network.

use super::{Access, canonical_ip, verify};
use crate::smtp::reply::Reply;
use crate::smtp::session::Grant;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::SystemTime;

fn invalid() -> Reply {
    Reply::new(535, "5.7.8", "Authentication credentials invalid")
}

impl Access {
    /// Checks one AUTH exchange from `peer`. Failed attempts count towards
    /// the lockout and are answered after `[abuse] auth_failure_delay`.
    pub async fn authenticate(
        self: &Arc<Self>,
        username: &str,
        password: &str,
        peer: IpAddr,
    ) -> Result<Grant, Reply> {
        let peer = canonical_ip(peer);
        if let Some(lockout) = &self.lockout
            && let Err(locked) = lockout.check(peer, Some(username))
        {
            tracing::warn!(peer = %peer, key = %locked.key, rule = "abuse.auth_failures", remaining_s = locked.remaining_secs(), "AUTH refused: locked out");
            return Err(Reply::new(454, "4.7.0", locked.to_string()));
        }
        let Some(grant) = self.verify_login(username, password).await else {
            tracing::warn!(peer = %peer, username = %username, "authentication failed");
            if let Some(lockout) = &self.lockout {
                lockout.record_failure(peer, Some(username));
                let delay = lockout.failure_delay();
                if !delay.is_zero() {
                    tokio::time::sleep(delay).await;
                }
            }
            return Err(invalid());
        };
        if let Some(lockout) = &self.lockout {
            lockout.record_success(peer, Some(username));
        }
        if !self.network_allows(&grant.credential, peer) {
            tracing::warn!(peer = %peer, credential = %grant.credential, rule = "networks", "AUTH refused: credential not allowed from this address");
            return Err(Reply::new(
                535,
                "5.7.8",
                format!(
                    "Credential \"{}\" may not be used from this address (networks)",
                    grant.credential
                ),
            ));
        }
        Ok(grant)
    }

    /// Whether a login credential's `networks` (if any) contain `peer`.
    fn network_allows(&self, credential: &str, peer: IpAddr) -> bool {
        self.by_name
            .get(credential)
            .is_some_and(|c| c.networks.is_empty() || c.networks.iter().any(|n| n.contains(&peer)))
    }

    /// At MAIL in an authenticated session: the credential still exists and
    /// is active, the secret used is still listed and unexpired, and the
    /// peer is still inside `networks`. A reload may have changed any of it.
    pub fn check_login(&self, grant: &Grant, peer: IpAddr) -> Result<(), Reply> {
        let now = SystemTime::now();
        let valid = self.by_name.get(&*grant.credential).is_some_and(|c| {
            c.is_active(now)
                && c.login.as_ref().is_some_and(|l| {
                    l.secrets
                        .iter()
                        .any(|s| s.is_active(now) && *s.phc == *grant.secret)
                })
        }) && self.network_allows(&grant.credential, canonical_ip(peer));
        if valid {
            return Ok(());
        }
        tracing::warn!(peer = %peer, credential = %grant.credential, "login no longer valid (credential or secret changed); session must authenticate again");
        Err(Reply::new(
            535,
            "5.7.8",
            "Authentication credentials no longer valid; authenticate again",
        ))
    }

    /// Runs argon2 on the blocking pool against every active secret of the
    /// username's credential. Unknown usernames and inactive credentials
    /// are verified against a dummy hash so timing does not tell them
    /// apart. Successful checks are cached (keyed on the hash too, so a
    /// changed hash invalidates the entry).
    async fn verify_login(self: &Arc<Self>, username: &str, password: &str) -> Option<Grant> {
        let now = SystemTime::now();
        let cred = self.by_username.get(username).cloned();
        let candidates: Vec<String> = cred
            .as_ref()
            .filter(|c| c.is_active(now))
            .and_then(|c| c.login.as_ref())
            .map(|l| {
                l.secrets
                    .iter()
                    .filter(|s| s.is_active(now))
                    .map(|s| s.phc.clone())
                    .collect()
            })
            .unwrap_or_default();
        let cached = candidates.iter().find(|phc| {
            let key = verify::cache_key(username, password, phc);
            self.cache.lock().map(|c| c.contains(&key)).unwrap_or(false)
        });
        let matched = match cached {
            Some(phc) => Some(phc.clone()),
            None => {
                let Ok(_permit) = self.hashing.acquire().await else {
                    return None;
                };
                let pw = password.to_string();
                let list = candidates.clone();
                let found = tokio::task::spawn_blocking(move || {
                    if list.is_empty() {
                        verify::check(None, &pw);
                        return None;
                    }
                    list.into_iter().find(|phc| verify::check(Some(phc), &pw))
                })
                .await
                .ok()
                .flatten()?;
                if let Ok(mut c) = self.cache.lock() {
                    c.insert(verify::cache_key(username, password, &found));
                }
                Some(found)
            }
        }?;
        let cred = cred?;
        Some(Grant {
            credential: self.names.get(&cred.name).cloned()?,
            secret: Arc::from(matched.as_str()),
        })
    }
}
