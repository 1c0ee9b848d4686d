//! Brute-force protection: failed AUTH attempts lock out a client network
//! or a username.
//!
//! Every failure is recorded with its (username, client network) pair and
//! counts towards two keys: the client network (IPv4 address, or IPv6
//! network of `[abuse] ipv6_prefix` bits) and the username. `[abuse]
//! auth_failures` of them within `auth_window` lock that key for `lockout`,
//! doubling on each repeat up to `lockout_max`. A key that stays clean for
//! `lockout_max` after its last lockout starts from the first step again.
//! While a key is locked, AUTH is refused before the password is even
//! checked, so the lockout is neither an oracle nor a way to burn CPU on
//! argon2.
//!
//! A lockout must not be a denial-of-service switch. A username lockout
//! (a botnet spraying one username from many networks) refuses only
//! networks that are not known for that username (`known`): the
//! application that logged in from its usual network within
//! `known_client_ttl` is still served. A network's own failures still lock
//! that network, known or not.
//!
//! A success clears only its own pair's failures, from both keys: an
//! application that mistyped its password is not held to it, but the
//! failures an attacker piled up on the same username from elsewhere stay,
//! and so do the network's failures on other usernames (one valid
//! credential must not reset the counter for spraying the rest). The
//! object is kept by the daemon across reloads ([`Lockout::reconfigure`]);
//! time comes from an injectable clock.

use super::abuse::Settings as AbuseSettings;
use crate::clock::{SharedClock, SystemClock, nanos};
use crate::quota::ClientKey;
use std::collections::hash_map::RandomState;
use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::hash::BuildHasher;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

/// Entries kept at most; beyond it, idle entries are swept and, if that is
/// not enough, new usernames stop being tracked (client networks still
/// are), so a flood of made-up usernames cannot grow memory without bound.
const MAX_ENTRIES: usize = 100_000;

/// Longer usernames are counted by their first bytes.
const MAX_USERNAME: usize = 256;

/// What a lockout applies to.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum LockKey {
    Client(ClientKey),
    User(String),
}

impl fmt::Display for LockKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LockKey::Client(c) => write!(f, "{c}"),
            LockKey::User(u) => write!(f, "user {u:?}"),
        }
    }
}

/// AUTH is refused for now; Display is the text for `454 4.7.0`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockedOut {
    pub key: LockKey,
    pub remaining: Duration,
}

impl LockedOut {
    /// Whole seconds left, rounded up, at least 1.
    pub fn remaining_secs(&self) -> u64 {
        let d = self.remaining;
        (d.as_secs() + u64::from(d.subsec_nanos() > 0)).max(1)
    }
}

impl fmt::Display for LockedOut {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Too many failed AUTH attempts from {}; try again in {} s",
            self.key,
            self.remaining_secs()
        )
    }
}

impl std::error::Error for LockedOut {}

/// One failed AUTH: when, from which network, as which username (a keyed
/// hash, so a key's history costs the same whatever was typed).
#[derive(Debug, Clone, Copy)]
struct Failure {
    at: u64,
    client: ClientKey,
    user: Option<u64>,
}

#[derive(Debug, Default)]
struct Entry {
    /// Failures still inside the window.
    failures: VecDeque<Failure>,
    locked_until: u64,
    /// Lockouts so far; the next one lasts `lockout * 2^strikes`.
    strikes: u32,
}

impl Entry {
    fn idle(&self, now: u64, window: u64, forget: u64) -> bool {
        self.failures.back().is_none_or(|f| f.at + window <= now)
            && self.locked_until.saturating_add(forget) <= now
    }
}

struct State {
    cfg: AbuseSettings,
    entries: HashMap<LockKey, Entry>,
    /// Random per process, so nobody can pick usernames whose hashes
    /// collide with a victim's and have a success clear them.
    hasher: RandomState,
}

impl State {
    fn window(&self) -> u64 {
        nanos(self.cfg.auth_window)
    }
    fn forget(&self) -> u64 {
        nanos(self.cfg.lockout_max)
    }

    fn sweep(&mut self, now: u64) {
        let (window, forget) = (self.window(), self.forget());
        self.entries.retain(|_, e| !e.idle(now, window, forget));
    }

    /// Records one failure on `key`; the new lockout if it starts now.
    fn fail(&mut self, key: LockKey, failure: Failure) -> Option<LockedOut> {
        let threshold = self.cfg.auth_failures?.get() as usize;
        let now = failure.at;
        let (window, forget) = (self.window(), self.forget());
        let (first, max) = (nanos(self.cfg.lockout), nanos(self.cfg.lockout_max));
        if !self.entries.contains_key(&key) {
            if self.entries.len() >= MAX_ENTRIES {
                self.sweep(now);
            }
            if self.entries.len() >= MAX_ENTRIES && matches!(key, LockKey::User(_)) {
                return None;
            }
        }
        let e = self.entries.entry(key.clone()).or_default();
        if e.locked_until > now {
            return None;
        }
        if e.strikes > 0 && e.locked_until.saturating_add(forget) <= now {
            e.strikes = 0;
        }
        while e.failures.front().is_some_and(|f| f.at + window <= now) {
            e.failures.pop_front();
        }
        e.failures.push_back(failure);
        if e.failures.len() < threshold {
            return None;
        }
        let factor = 1u64.checked_shl(e.strikes).unwrap_or(u64::MAX);
        let length = first.saturating_mul(factor).min(max);
        e.locked_until = now.saturating_add(length);
        e.strikes = e.strikes.saturating_add(1);
        e.failures.clear();
        Some(LockedOut {
            key,
            remaining: Duration::from_nanos(length),
        })
    }
}

/// Failed-AUTH bookkeeping for the whole daemon.
pub struct Lockout {
    state: Mutex<State>,
    clock: SharedClock,
}

fn user_key(username: &str) -> LockKey {
    let mut end = username.len().min(MAX_USERNAME);
    while !username.is_char_boundary(end) {
        end -= 1;
    }
    LockKey::User(username[..end].to_string())
}

impl Lockout {
    pub fn new(cfg: &AbuseSettings) -> Lockout {
        Lockout::with_clock(cfg, SystemClock::shared())
    }

    pub fn with_clock(cfg: &AbuseSettings, clock: SharedClock) -> Lockout {
        Lockout {
            state: Mutex::new(State {
                cfg: cfg.clone(),
                entries: HashMap::new(),
                hasher: RandomState::new(),
            }),
            clock,
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Before verifying an AUTH: refused if the client network is locked,
    /// or the username is and the network is not `known` for it (see
    /// `known::KnownClients::is_known`). The longer lockout is reported.
    pub fn check(
        &self,
        client: ClientKey,
        username: Option<&str>,
        known: bool,
    ) -> Result<(), LockedOut> {
        let now = self.clock.now();
        let state = self.lock();
        let keys = [
            Some(LockKey::Client(client)),
            username.filter(|_| !known).map(user_key),
        ];
        let mut worst: Option<LockedOut> = None;
        for key in keys.into_iter().flatten() {
            let Some(e) = state.entries.get(&key) else {
                continue;
            };
            if e.locked_until > now {
                let remaining = Duration::from_nanos(e.locked_until - now);
                if worst.as_ref().is_none_or(|w| remaining > w.remaining) {
                    worst = Some(LockedOut { key, remaining });
                }
            }
        }
        worst.map_or(Ok(()), Err)
    }

    /// After a failed AUTH. Returns the lockouts this failure started (of
    /// the network, of the username, or both), for the caller to log.
    pub fn record_failure(&self, client: ClientKey, username: Option<&str>) -> Vec<LockedOut> {
        let now = self.clock.now();
        let mut state = self.lock();
        let user = username.map(user_key);
        let failure = Failure {
            at: now,
            client,
            user: user.as_ref().map(|u| state.hasher.hash_one(u)),
        };
        let mut started = Vec::new();
        started.extend(state.fail(LockKey::Client(client), failure));
        if let Some(u) = user {
            started.extend(state.fail(u, failure));
        }
        started
    }

    /// After a successful AUTH: forgets the failures of this (username,
    /// network) pair, from the network's count and from the username's.
    /// The network's failures on other usernames stay, and so do the
    /// username's failures from other networks.
    pub fn record_success(&self, client: ClientKey, username: Option<&str>) {
        let mut guard = self.lock();
        let state = &mut *guard;
        let user = username.map(user_key);
        let hash = user.as_ref().map(|u| state.hasher.hash_one(u));
        if let Some(e) = state.entries.get_mut(&LockKey::Client(client)) {
            e.failures.retain(|f| f.user != hash);
        }
        if let Some(u) = user
            && let Some(e) = state.entries.get_mut(&u)
        {
            e.failures.retain(|f| f.client != client);
        }
    }

    /// How long a failed AUTH waits before its reply.
    pub fn failure_delay(&self) -> Duration {
        self.lock().cfg.auth_failure_delay
    }

    /// On reload: new thresholds and durations, same counts and lockouts.
    /// (A new `ipv6_prefix` groups new failures differently; IPv6 entries
    /// under the old grouping age out.)
    pub fn reconfigure(&self, cfg: &AbuseSettings) {
        self.lock().cfg = cfg.clone();
    }

    /// Drops entries with nothing left to remember; for a periodic task.
    pub fn sweep(&self) {
        let now = self.clock.now();
        self.lock().sweep(now);
    }

    /// Every lockout in force now, longest remaining first.
    pub fn active(&self) -> Vec<LockedOut> {
        let now = self.clock.now();
        let mut out: Vec<LockedOut> = self
            .lock()
            .entries
            .iter()
            .filter(|(_, e)| e.locked_until > now)
            .map(|(k, e)| LockedOut {
                key: k.clone(),
                remaining: Duration::from_nanos(e.locked_until - now),
            })
            .collect();
        out.sort_by_key(|l| std::cmp::Reverse(l.remaining));
        out
    }

    /// Number of client networks and usernames tracked.
    pub fn len(&self) -> usize {
        self.lock().entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests;
