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

#[test]
fn active_lists_lockouts_in_force_longest_first() {
    let (l, clock) = lockout(AbuseSettings::default());
    assert!(l.active().is_empty());
    let a = ip("192.0.2.1");
    for _ in 0..5 {
        l.record_failure(a, Some("erp"));
    }
    clock.advance(MIN);
    let b = ip("192.0.2.2");
    for _ in 0..5 {
        l.record_failure(b, None);
    }
    let active = l.active();
    let keys: Vec<String> = active.iter().map(|x| x.key.to_string()).collect();
    assert_eq!(keys.len(), 3, "{keys:?}");
    assert_eq!(keys[0], ip("192.0.2.2").to_string());
    assert_eq!(active[0].remaining, 15 * MIN);
    assert_eq!(active[1].remaining, 14 * MIN);
    clock.advance(14 * MIN);
    assert_eq!(l.active().len(), 1);
    clock.advance(MIN);
    assert!(l.active().is_empty());
}
