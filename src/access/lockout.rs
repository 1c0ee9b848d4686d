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

    /// Number of client networks and usernames tracked.
    pub fn len(&self) -> usize {
        self.lock().entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;
    use std::num::NonZeroU32;
    use std::sync::Arc;

    const MIN: Duration = Duration::from_secs(60);

    fn lockout(cfg: AbuseSettings) -> (Lockout, Arc<ManualClock>) {
        let clock = Arc::new(ManualClock::new(Duration::from_secs(1_000_000)));
        (Lockout::with_clock(&cfg, clock.clone()), clock)
    }

    /// The client network of `s`, grouped as by default.
    fn ip(s: &str) -> ClientKey {
        ClientKey::of(s.parse().unwrap(), crate::quota::DEFAULT_IPV6_PREFIX)
    }

    /// The longest lockout a failure started, if any.
    fn longest(v: Vec<LockedOut>) -> Option<LockedOut> {
        v.into_iter().max_by_key(|l| l.remaining)
    }

    #[test]
    fn five_failures_lock_the_client_and_the_username() {
        let (l, clock) = lockout(AbuseSettings::default());
        let a = ip("192.0.2.1");
        for i in 0..4 {
            assert_eq!(
                longest(l.record_failure(a, Some("erp"))),
                None,
                "failure {i}"
            );
            assert_eq!(l.check(a, Some("erp"), false), Ok(()));
        }
        let started = longest(l.record_failure(a, Some("erp"))).unwrap();
        assert_eq!(started.remaining, 15 * MIN);
        let e = l.check(a, Some("other"), false).unwrap_err();
        assert_eq!(e.key, LockKey::Client(a));
        assert_eq!(
            e.to_string(),
            "Too many failed AUTH attempts from 192.0.2.1; try again in 900 s"
        );
        let e = l.check(ip("198.51.100.2"), Some("erp"), false).unwrap_err();
        assert_eq!(e.key, LockKey::User("erp".into()));
        assert_eq!(
            e.to_string(),
            "Too many failed AUTH attempts from user \"erp\"; try again in 900 s"
        );
        assert_eq!(l.check(ip("198.51.100.2"), Some("crm"), false), Ok(()));
        // It expires.
        clock.advance(15 * MIN - Duration::from_secs(1));
        assert_eq!(l.check(a, None, false).unwrap_err().remaining_secs(), 1);
        clock.advance(Duration::from_secs(1));
        assert_eq!(l.check(a, Some("erp"), false), Ok(()));
    }

    #[test]
    fn failures_outside_the_window_do_not_add_up() {
        let (l, clock) = lockout(AbuseSettings::default());
        let a = ip("192.0.2.1");
        for _ in 0..4 {
            l.record_failure(a, Some("erp"));
            clock.advance(3 * MIN);
        }
        // The first failure is now 12 minutes old: only 4 in the window.
        assert_eq!(longest(l.record_failure(a, Some("erp"))), None);
        assert_eq!(l.check(a, Some("erp"), false), Ok(()));
        assert!(longest(l.record_failure(a, Some("erp"))).is_some());
    }

    #[test]
    fn repeated_lockouts_double_up_to_the_cap_and_are_forgotten() {
        let (l, clock) = lockout(AbuseSettings::default());
        let a = ip("192.0.2.1");
        let mut lengths = vec![];
        for _ in 0..9 {
            let mut started = None;
            for _ in 0..5 {
                started = longest(l.record_failure(a, None));
            }
            let d = started.unwrap().remaining;
            lengths.push(d.as_secs() / 60);
            clock.advance(d);
        }
        assert_eq!(lengths, [15, 30, 60, 120, 240, 480, 960, 1440, 1440]);
        // A day without a lockout: back to the first step.
        clock.advance(Duration::from_secs(86400));
        for _ in 0..4 {
            l.record_failure(a, None);
        }
        assert_eq!(
            longest(l.record_failure(a, None)).unwrap().remaining,
            15 * MIN
        );
    }

    #[test]
    fn attempts_while_locked_neither_count_nor_extend() {
        let (l, clock) = lockout(AbuseSettings::default());
        let a = ip("192.0.2.1");
        for _ in 0..5 {
            l.record_failure(a, None);
        }
        clock.advance(MIN);
        assert_eq!(longest(l.record_failure(a, None)), None);
        assert_eq!(l.check(a, None, false).unwrap_err().remaining, 14 * MIN);
    }

    #[test]
    fn success_clears_only_its_own_pairs_failures() {
        let (l, _clock) = lockout(AbuseSettings::default());
        let app = ip("192.0.2.10");
        // Four attackers, one failure each, on the app's username.
        for i in 1..=4 {
            l.record_failure(ip(&format!("203.0.113.{i}")), Some("erp"));
        }
        l.record_success(app, Some("erp"));
        let started = longest(l.record_failure(ip("203.0.113.5"), Some("erp"))).unwrap();
        assert_eq!(started.key, LockKey::User("erp".into()));

        // The app's own failures (a mistyped password) are cleared by its
        // success, from the network's count and the username's.
        for _ in 0..4 {
            l.record_failure(app, Some("crm"));
        }
        l.record_success(app, Some("crm"));
        for _ in 0..4 {
            assert_eq!(longest(l.record_failure(app, Some("crm"))), None);
        }
        assert_eq!(l.check(app, Some("crm"), false), Ok(()));
    }

    #[test]
    fn one_valid_login_does_not_reset_spraying_other_usernames() {
        let (l, _clock) = lockout(AbuseSettings::default());
        let sprayer = ip("198.51.100.7");
        for u in ["a", "b", "c", "d"] {
            l.record_failure(sprayer, Some(u));
        }
        // It holds one valid credential and uses it.
        l.record_success(sprayer, Some("mine"));
        let started = longest(l.record_failure(sprayer, Some("e"))).unwrap();
        assert_eq!(started.key, LockKey::Client(sprayer));
        assert!(l.check(sprayer, Some("mine"), true).is_err());
    }

    #[test]
    fn a_username_lockout_spares_networks_known_for_it() {
        let (l, _clock) = lockout(AbuseSettings::default());
        for i in 1..=5 {
            l.record_failure(ip(&format!("203.0.113.{i}")), Some("erp"));
        }
        let app = ip("192.0.2.10");
        let e = l.check(app, Some("erp"), false).unwrap_err();
        assert_eq!(e.key, LockKey::User("erp".into()));
        assert_eq!(l.check(app, Some("erp"), true), Ok(()));
        // The known network's own failures still lock it.
        for _ in 0..5 {
            l.record_failure(app, Some("erp"));
        }
        let e = l.check(app, Some("erp"), true).unwrap_err();
        assert_eq!(e.key, LockKey::Client(app));
    }

    #[test]
    fn both_lockouts_a_failure_starts_are_returned() {
        let (l, _clock) = lockout(AbuseSettings::default());
        let a = ip("192.0.2.1");
        for _ in 0..4 {
            assert!(l.record_failure(a, Some("erp")).is_empty());
        }
        let keys: Vec<LockKey> = l
            .record_failure(a, Some("erp"))
            .into_iter()
            .map(|o| o.key)
            .collect();
        assert_eq!(keys, [LockKey::Client(a), LockKey::User("erp".into())]);
    }

    #[test]
    fn ipv6_clients_count_per_network_of_the_configured_prefix() {
        let (l, _clock) = lockout(AbuseSettings::default());
        for i in 1..=5 {
            l.record_failure(ip(&format!("2001:db8:0:1::{i}")), None);
        }
        let e = l
            .check(ip("2001:db8:0:1:ffff::9"), None, false)
            .unwrap_err();
        assert_eq!(e.key.to_string(), "2001:db8:0:1::/64");
        assert_eq!(l.check(ip("2001:db8:0:2::1"), None, false), Ok(()));
        // With ipv6_prefix = 48 the caller groups the whole /48.
        let wide = |s: &str| ClientKey::of(s.parse().unwrap(), 48);
        for i in 1..=5 {
            l.record_failure(wide(&format!("2001:db8:7:{i}::1")), None);
        }
        let e = l.check(wide("2001:db8:7:ff::1"), None, false).unwrap_err();
        assert_eq!(e.key.to_string(), "2001:db8:7::/48");
    }

    #[test]
    fn disabled_and_reconfigured() {
        let (l, _clock) = lockout(AbuseSettings {
            auth_failures: None,
            ..AbuseSettings::default()
        });
        let a = ip("192.0.2.1");
        for _ in 0..50 {
            assert_eq!(longest(l.record_failure(a, Some("erp"))), None);
        }
        assert_eq!(l.check(a, Some("erp"), false), Ok(()));
        assert!(l.is_empty());

        l.reconfigure(&AbuseSettings {
            auth_failures: NonZeroU32::new(2),
            lockout: MIN,
            ..AbuseSettings::default()
        });
        l.record_failure(a, None);
        assert_eq!(longest(l.record_failure(a, None)).unwrap().remaining, MIN);
        // A reload keeps the lockout in force.
        l.reconfigure(&AbuseSettings::default());
        assert!(l.check(a, None, false).is_err());
    }

    #[test]
    fn sweep_forgets_idle_entries_and_long_usernames_are_bounded() {
        let (l, clock) = lockout(AbuseSettings::default());
        let long = "é".repeat(300);
        l.record_failure(ip("192.0.2.1"), Some(&long));
        assert_eq!(l.len(), 2);
        clock.advance(11 * MIN);
        l.sweep();
        assert!(l.is_empty());
        let key = user_key(&long);
        assert!(matches!(&key, LockKey::User(u) if u.len() == 256));
    }
}
