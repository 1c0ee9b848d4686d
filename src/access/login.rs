//! AUTH: lockout check, password verification, scope of the login.
//!
//! Order matters for what a client can learn. A locked-out client or
//! username is refused before the password is checked (no oracle, no CPU
//! spent on argon2); a username lockout spares networks known for that
//! username (`known`). A disabled or expired credential, an expired secret
//! and an unknown username get the same `535 5.7.8` as a wrong password,
//! and every failure costs as many argon2 verifications as the credential
//! with the most secrets needs, so neither the reply nor its timing tells
//! which usernames exist. Only a client that knows a valid secret learns
//! that the credential may not be used from its network.
//!
//! People type passwords into the username field, so a failure for an
//! unknown username is logged with a short keyed hash of what was typed
//! (the same text gives the same hash until postern restarts), never the
//! text itself.

use super::lockout::{LockKey, LockedOut};
use super::{Access, Denied, Grant, canonical_ip, verify};
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::OnceLock;
use std::sync::atomic::Ordering;
use std::time::SystemTime;

/// 12 hex digits of HMAC-SHA256(per-process random key, `username`): enough
/// to tell repeated attempts apart in a log, useless for testing guesses
/// against it (the key never leaves memory).
fn name_hash(username: &str) -> String {
    static KEY: OnceLock<ring::hmac::Key> = OnceLock::new();
    let key = KEY.get_or_init(|| {
        let rng = ring::rand::SystemRandom::new();
        ring::hmac::Key::generate(ring::hmac::HMAC_SHA256, &rng).unwrap_or_else(|_| {
            // No system randomness: still never the name, only linkable.
            ring::hmac::Key::new(ring::hmac::HMAC_SHA256, b"postern username log hash")
        })
    });
    let tag = ring::hmac::sign(key, username.as_bytes());
    tag.as_ref()[..6]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The shared lockout record as the local lockout's answer: the longer
/// of the client network's and (unless the network is known for the
/// username) the username's lockout.
fn shared_standing(
    st: crate::cluster::lockout::Standing,
    known_here: bool,
    client: crate::quota::ClientKey,
    username: &str,
) -> Result<(), LockedOut> {
    let user = st.user.filter(|_| !known_here);
    let worst = match (st.client, user) {
        (Some(c), Some(u)) if u > c => Some((LockKey::User(username.to_string()), u)),
        (Some(c), _) => Some((LockKey::Client(client), c)),
        (None, Some(u)) => Some((LockKey::User(username.to_string()), u)),
        (None, None) => None,
    };
    match worst {
        Some((key, remaining)) => Err(LockedOut { key, remaining }),
        None => Ok(()),
    }
}

impl Access {
    /// Checks one AUTH exchange from `peer`. Failed attempts count towards
    /// the lockout and are answered after `[abuse] auth_failure_delay`; a
    /// successful login makes `peer`'s network known for the username.
    pub async fn authenticate(
        self: &Arc<Self>,
        username: &str,
        password: &str,
        peer: IpAddr,
    ) -> Result<Grant, Denied> {
        let peer = canonical_ip(peer);
        let client = self.client_key(peer);
        if let Some(lockout) = &self.lockout {
            let known = self
                .known
                .as_ref()
                .is_some_and(|k| k.is_known(client, username));
            let shared = match &self.cluster {
                Some(c) => crate::cluster::lockout::check(c, client, username).await,
                None => None,
            };
            let result = match shared {
                // The shared record decides; a network known here only
                // (recorded while Redis was down) is known too.
                Some(st) => shared_standing(st, known, client, username),
                None => {
                    if self.cluster.is_some() {
                        crate::observe::metrics::cluster_fallback("lockout");
                    }
                    lockout.check(client, Some(username), known)
                }
            };
            if let Err(locked) = result {
                tracing::warn!(peer = %peer, key = %self.log_key(&locked.key), rule = "abuse.auth_failures", remaining_s = locked.remaining_secs(), "AUTH refused: locked out");
                return Err(Denied::LockedOut(locked));
            }
        }
        let Some(grant) = self.verify_login(username, password).await else {
            if self.by_username.contains_key(username) {
                tracing::warn!(peer = %peer, username = %username, "authentication failed");
            } else {
                tracing::warn!(peer = %peer, username_hash = %name_hash(username), "authentication failed: unknown username");
            }
            if let Some(lockout) = &self.lockout {
                let mut started = lockout.record_failure(client, Some(username));
                if let Some(c) = &self.cluster
                    && let Some(shared) =
                        crate::cluster::lockout::fail(c, &self.abuse, client, username).await
                {
                    // Redis counted it with the other nodes' failures: its
                    // lockouts are the ones that hold everywhere.
                    started = shared
                        .into_iter()
                        .map(|(is_client, remaining)| LockedOut {
                            key: if is_client {
                                LockKey::Client(client)
                            } else {
                                LockKey::User(username.to_string())
                            },
                            remaining,
                        })
                        .collect();
                }
                for l in started {
                    crate::observe::metrics::lockout();
                    tracing::warn!(key = %self.log_key(&l.key), rule = "abuse.auth_failures", lockout_s = l.remaining.as_secs(), client = %client, "AUTH locked out after repeated failures");
                }
                let delay = lockout.failure_delay();
                if !delay.is_zero() {
                    tokio::time::sleep(delay).await;
                }
            }
            return Err(Denied::InvalidCredentials);
        };
        if let Some(lockout) = &self.lockout {
            lockout.record_success(client, Some(username));
        }
        let accepted_here = self.check_suspended(&grant.credential).is_ok()
            && self.network_allows(&grant.credential, peer);
        if let Some(c) = &self.cluster {
            // Known only for a login that is let in, as locally below.
            let ttl = if accepted_here {
                self.abuse.known_client_ttl
            } else {
                std::time::Duration::ZERO
            };
            let _ = crate::cluster::lockout::succeed(c, client, username, ttl).await;
        }
        // Only after a valid secret, like `networks` below: the reply tells
        // nothing to someone who does not know the password.
        self.check_suspended(&grant.credential)?;
        if !self.network_allows(&grant.credential, peer) {
            tracing::warn!(peer = %peer, credential = %grant.credential, rule = "networks", "AUTH refused: credential not allowed from this address");
            return Err(Denied::OutsideNetworks {
                credential: grant.credential.to_string(),
            });
        }
        if let Some(known) = &self.known {
            known.record(client, username);
        }
        Ok(grant)
    }

    /// A username as logs and audit events show it: a name no credential
    /// has is shown as `unknown user <hash>` (it may be a password typed
    /// into the wrong field).
    pub fn username_for_log(&self, username: &str) -> String {
        if self.by_username.contains_key(username) {
            username.to_string()
        } else {
            format!("unknown user {}", name_hash(username))
        }
    }

    /// A lockout key as logged: a username no credential has is shown as
    /// its hash (it may be a password typed into the wrong field).
    pub fn log_key(&self, key: &LockKey) -> String {
        match key {
            LockKey::User(u) if !self.by_username.contains_key(u) => {
                format!("unknown user {}", name_hash(u))
            }
            k => k.to_string(),
        }
    }

    /// argon2 verifications run by this generation so far.
    pub fn verifications(&self) -> u64 {
        self.verifications.load(Ordering::Relaxed)
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
    pub fn check_login(&self, grant: &Grant, peer: IpAddr) -> Result<(), Denied> {
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
        Err(Denied::LoginNoLongerValid)
    }

    /// Runs argon2 on the blocking pool against every active secret of the
    /// username's credential, then, if none matched, against the dummy hash
    /// until `max_secrets` verifications were made: unknown usernames,
    /// inactive credentials and credentials with fewer secrets cost the
    /// same. (A match stops early; only a client that knows a secret sees
    /// that.) Successful checks are cached (keyed on the hash too, so a
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
            None => self.verify_once(username, password, candidates).await,
        }?;
        let cred = cred?;
        Some(Grant {
            credential: self.names.get(&cred.name).cloned()?,
            secret: Arc::from(matched.as_str()),
        })
    }

    /// The argon2 checks for one username and password, run once however
    /// many sessions present the same pair at the same moment (a fleet of
    /// devices reconnecting after an outage, or a flood repeating one
    /// guess): the others wait for that result instead of each running
    /// argon2. A session that gives up mid-check leaves the check to the
    /// next one waiting.
    async fn verify_once(
        self: &Arc<Self>,
        username: &str,
        password: &str,
        candidates: Vec<String>,
    ) -> Option<String> {
        let flight = verify::Flight::join(&self.in_flight, username, password);
        flight
            .result()?
            .get_or_init(|| self.verify_slow(username, password, candidates))
            .await
            .clone()
    }

    async fn verify_slow(
        self: &Arc<Self>,
        username: &str,
        password: &str,
        candidates: Vec<String>,
    ) -> Option<String> {
        let Ok(_permit) = self.hashing.acquire().await else {
            return None;
        };
        let pw = password.to_string();
        let pad = self.max_secrets;
        let (found, checks) = tokio::task::spawn_blocking(move || {
            let mut checks = 0;
            for phc in candidates {
                checks += 1;
                if verify::check(Some(&phc), &pw) {
                    return (Some(phc), checks);
                }
            }
            while checks < pad {
                verify::check(None, &pw);
                checks += 1;
            }
            (None, checks)
        })
        .await
        .ok()?;
        self.verifications
            .fetch_add(checks as u64, Ordering::Relaxed);
        let found = found?;
        if let Ok(mut c) = self.cache.lock() {
            c.insert(verify::cache_key(username, password, &found));
        }
        Some(found)
    }
}
