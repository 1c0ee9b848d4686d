//! Brute-force protection: failed AUTH attempts lock out an IP or a username.
//!
//! Failures are counted per client (IPv4 address, or IPv6 /64) and per
//! username; `[abuse] auth_failures` of them within `auth_window` lock that
//! key for `lockout`, doubling on each repeat up to `lockout_max`. A key
//! that stays clean for `lockout_max` after its last lockout starts from the
//! first step again. While a key is locked, AUTH is refused before the
//! password is even checked, so the lockout is neither an oracle nor a way
//! to burn CPU on argon2.
//!
//! A success clears the failures that came from the same client only: a
//! legitimate application logging in from its usual address must not wipe
//! out the failures an attacker piled up on the same username from
//! elsewhere. The object is kept by the daemon across reloads
//! ([`Lockout::reconfigure`]); time comes from an injectable clock.

use crate::config::quota::AbuseConfig;
use crate::quota::ClientKey;
use crate::quota::clock::{SharedClock, SystemClock, nanos};
use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::net::IpAddr;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

/// Entries kept at most; beyond it, idle entries are swept and, if that is
/// not enough, new usernames stop being tracked (client IPs still are), so a
/// flood of made-up usernames cannot grow memory without bound.
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

#[derive(Debug, Default)]
struct Entry {
    /// Times of failures still inside the window, and which client made
    /// them (so a success can clear only its own).
    failures: VecDeque<(u64, ClientKey)>,
    locked_until: u64,
    /// Lockouts so far; the next one lasts `lockout * 2^strikes`.
    strikes: u32,
}

impl Entry {
    fn idle(&self, now: u64, window: u64, forget: u64) -> bool {
        self.failures.back().is_none_or(|&(t, _)| t + window <= now)
            && self.locked_until.saturating_add(forget) <= now
    }
}

struct State {
    cfg: AbuseConfig,
    entries: HashMap<LockKey, Entry>,
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
    fn fail(&mut self, key: LockKey, from: ClientKey, now: u64) -> Option<LockedOut> {
        let threshold = self.cfg.auth_failures?.get() as usize;
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
        while e.failures.front().is_some_and(|&(t, _)| t + window <= now) {
            e.failures.pop_front();
        }
        e.failures.push_back((now, from));
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
    pub fn new(cfg: &AbuseConfig) -> Lockout {
        Lockout::with_clock(cfg, SystemClock::shared())
    }

    pub fn with_clock(cfg: &AbuseConfig, clock: SharedClock) -> Lockout {
        Lockout {
            state: Mutex::new(State {
                cfg: cfg.clone(),
                entries: HashMap::new(),
            }),
            clock,
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Before verifying an AUTH: refused if the client or the username is
    /// locked (the longer of the two is reported).
    pub fn check(&self, ip: IpAddr, username: Option<&str>) -> Result<(), LockedOut> {
        let now = self.clock.now();
        let state = self.lock();
        let keys = [
            Some(LockKey::Client(ClientKey::of(ip))),
            username.map(user_key),
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

    /// After a failed AUTH. Returns the lockout this failure started, if
    /// any (already logged here with its key).
    pub fn record_failure(&self, ip: IpAddr, username: Option<&str>) -> Option<LockedOut> {
        let now = self.clock.now();
        let client = ClientKey::of(ip);
        let mut state = self.lock();
        let by_client = state.fail(LockKey::Client(client), client, now);
        let by_user = username.and_then(|u| state.fail(user_key(u), client, now));
        drop(state);
        for l in by_client.iter().chain(by_user.iter()) {
            tracing::warn!(key = %l.key, rule = "abuse.auth_failures", lockout_s = l.remaining.as_secs(), client = %client, "AUTH locked out after repeated failures");
        }
        match (by_client, by_user) {
            (Some(a), Some(b)) => Some(if b.remaining > a.remaining { b } else { a }),
            (a, b) => a.or(b),
        }
    }

    /// After a successful AUTH: forgets this client's failures, and the
    /// username's failures that came from this client. Failures from other
    /// clients stay.
    pub fn record_success(&self, ip: IpAddr, username: Option<&str>) {
        let client = ClientKey::of(ip);
        let mut state = self.lock();
        if let Some(e) = state.entries.get_mut(&LockKey::Client(client)) {
            e.failures.clear();
        }
        if let Some(u) = username
            && let Some(e) = state.entries.get_mut(&user_key(u))
        {
            e.failures.retain(|&(_, from)| from != client);
        }
    }

    /// How long a failed AUTH waits before its reply.
    pub fn failure_delay(&self) -> Duration {
        self.lock().cfg.auth_failure_delay
    }

    /// On reload: new thresholds and durations, same counts and lockouts.
    pub fn reconfigure(&self, cfg: &AbuseConfig) {
        self.lock().cfg = cfg.clone();
    }

    /// Drops entries with nothing left to remember; for a periodic task.
    pub fn sweep(&self) {
        let now = self.clock.now();
        self.lock().sweep(now);
    }

    /// Number of clients and usernames tracked.
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
    use crate::quota::ManualClock;
    use std::num::NonZeroU32;
    use std::sync::Arc;

    const MIN: Duration = Duration::from_secs(60);

    fn lockout(cfg: AbuseConfig) -> (Lockout, Arc<ManualClock>) {
        let clock = Arc::new(ManualClock::new(Duration::from_secs(1_000_000)));
        (Lockout::with_clock(&cfg, clock.clone()), clock)
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn five_failures_lock_the_client_and_the_username() {
        let (l, clock) = lockout(AbuseConfig::default());
        let a = ip("192.0.2.1");
        for i in 0..4 {
            assert_eq!(l.record_failure(a, Some("erp")), None, "failure {i}");
            assert_eq!(l.check(a, Some("erp")), Ok(()));
        }
        let started = l.record_failure(a, Some("erp")).unwrap();
        assert_eq!(started.remaining, 15 * MIN);
        let e = l.check(a, Some("other")).unwrap_err();
        assert_eq!(e.key, LockKey::Client(ClientKey::of(a)));
        assert_eq!(
            e.to_string(),
            "Too many failed AUTH attempts from 192.0.2.1; try again in 900 s"
        );
        let e = l.check(ip("198.51.100.2"), Some("erp")).unwrap_err();
        assert_eq!(e.key, LockKey::User("erp".into()));
        assert_eq!(
            e.to_string(),
            "Too many failed AUTH attempts from user \"erp\"; try again in 900 s"
        );
        assert_eq!(l.check(ip("198.51.100.2"), Some("crm")), Ok(()));
        // It expires.
        clock.advance(15 * MIN - Duration::from_secs(1));
        assert_eq!(l.check(a, None).unwrap_err().remaining_secs(), 1);
        clock.advance(Duration::from_secs(1));
        assert_eq!(l.check(a, Some("erp")), Ok(()));
    }

    #[test]
    fn failures_outside_the_window_do_not_add_up() {
        let (l, clock) = lockout(AbuseConfig::default());
        let a = ip("192.0.2.1");
        for _ in 0..4 {
            l.record_failure(a, Some("erp"));
            clock.advance(3 * MIN);
        }
        // The first failure is now 12 minutes old: only 4 in the window.
        assert_eq!(l.record_failure(a, Some("erp")), None);
        assert_eq!(l.check(a, Some("erp")), Ok(()));
        assert!(l.record_failure(a, Some("erp")).is_some());
    }

    #[test]
    fn repeated_lockouts_double_up_to_the_cap_and_are_forgotten() {
        let (l, clock) = lockout(AbuseConfig::default());
        let a = ip("192.0.2.1");
        let mut lengths = vec![];
        for _ in 0..9 {
            let mut started = None;
            for _ in 0..5 {
                started = l.record_failure(a, None);
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
        assert_eq!(l.record_failure(a, None).unwrap().remaining, 15 * MIN);
    }

    #[test]
    fn attempts_while_locked_neither_count_nor_extend() {
        let (l, clock) = lockout(AbuseConfig::default());
        let a = ip("192.0.2.1");
        for _ in 0..5 {
            l.record_failure(a, None);
        }
        clock.advance(MIN);
        assert_eq!(l.record_failure(a, None), None);
        assert_eq!(l.check(a, None).unwrap_err().remaining, 14 * MIN);
    }

    #[test]
    fn success_clears_only_the_same_clients_failures() {
        let (l, _clock) = lockout(AbuseConfig::default());
        let app = ip("192.0.2.10");
        // Four attackers, one failure each, on the app's username.
        for i in 1..=4 {
            l.record_failure(ip(&format!("203.0.113.{i}")), Some("erp"));
        }
        l.record_success(app, Some("erp"));
        let started = l.record_failure(ip("203.0.113.5"), Some("erp")).unwrap();
        assert_eq!(started.key, LockKey::User("erp".into()));

        // The app's own failures are cleared by its success.
        for _ in 0..4 {
            l.record_failure(app, Some("crm"));
        }
        l.record_success(app, Some("crm"));
        for _ in 0..4 {
            assert_eq!(l.record_failure(app, Some("crm")), None);
        }
        assert_eq!(l.check(app, Some("crm")), Ok(()));
    }

    #[test]
    fn ipv6_clients_count_per_64() {
        let (l, _clock) = lockout(AbuseConfig::default());
        for i in 1..=5 {
            l.record_failure(ip(&format!("2001:db8:0:1::{i}")), None);
        }
        let e = l.check(ip("2001:db8:0:1:ffff::9"), None).unwrap_err();
        assert_eq!(e.key.to_string(), "2001:db8:0:1::/64");
        assert_eq!(l.check(ip("2001:db8:0:2::1"), None), Ok(()));
    }

    #[test]
    fn disabled_and_reconfigured() {
        let (l, _clock) = lockout(AbuseConfig {
            auth_failures: None,
            ..AbuseConfig::default()
        });
        let a = ip("192.0.2.1");
        for _ in 0..50 {
            assert_eq!(l.record_failure(a, Some("erp")), None);
        }
        assert_eq!(l.check(a, Some("erp")), Ok(()));
        assert!(l.is_empty());

        l.reconfigure(&AbuseConfig {
            auth_failures: NonZeroU32::new(2),
            lockout: MIN,
            ..AbuseConfig::default()
        });
        l.record_failure(a, None);
        assert_eq!(l.record_failure(a, None).unwrap().remaining, MIN);
        // A reload keeps the lockout in force.
        l.reconfigure(&AbuseConfig::default());
        assert!(l.check(a, None).is_err());
    }

    #[test]
    fn sweep_forgets_idle_entries_and_long_usernames_are_bounded() {
        let (l, clock) = lockout(AbuseConfig::default());
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
