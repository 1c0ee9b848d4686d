use super::*;
use crate::clock::ManualClock;
use std::sync::Arc;

/// Grouped as by default (IPv6 per /64).
fn key(ip: &str) -> ClientKey {
    ClientKey::of(ip.parse().unwrap(), crate::quota::DEFAULT_IPV6_PREFIX)
}

fn rate(n: Option<u32>) -> (ConnectionRate, Arc<ManualClock>) {
    let clock = Arc::new(ManualClock::new(Duration::from_secs(1_000_000)));
    let cfg = AbuseSettings {
        connections_per_ip_per_minute: n.and_then(NonZeroU32::new),
        ..AbuseSettings::default()
    };
    (ConnectionRate::with_clock(&cfg, clock.clone()), clock)
}

#[test]
fn sixty_per_minute_then_refused_with_retry_hint() {
    let (r, clock) = rate(Some(60));
    let ip = key("192.0.2.7");
    for i in 0..60 {
        assert_eq!(r.check(ip), Ok(()), "connection {i}");
    }
    let e = r.check(ip).unwrap_err();
    assert_eq!(e.retry_after, Duration::from_secs(1));
    assert_eq!(
        e.to_string(),
        "Too many connections from 192.0.2.7; try again in 1 s"
    );
    // Another address is not affected.
    assert_eq!(r.check(key("192.0.2.8")), Ok(()));
    clock.advance(Duration::from_secs(1));
    assert_eq!(r.check(ip), Ok(()));
    assert!(r.check(ip).is_err());
}

#[test]
fn ipv6_counts_per_64_and_mapped_v4_as_v4() {
    let (r, _clock) = rate(Some(2));
    assert!(r.check(key("2001:db8:1:2::1")).is_ok());
    assert!(r.check(key("2001:db8:1:2::ffff")).is_ok());
    let e = r.check(key("2001:db8:1:2:aaaa::3")).unwrap_err();
    assert_eq!(e.key.to_string(), "2001:db8:1:2::/64");
    assert!(r.check(key("2001:db8:1:3::1")).is_ok());
    assert!(r.check(key("::ffff:192.0.2.1")).is_ok());
    assert!(r.check(key("192.0.2.1")).is_ok());
    let e = r.check(key("192.0.2.1")).unwrap_err();
    assert_eq!(e.key.to_string(), "192.0.2.1");
}

#[test]
fn unlimited_and_reconfigure() {
    let (r, _clock) = rate(None);
    let ip = key("198.51.100.1");
    for _ in 0..1000 {
        assert!(r.check(ip).is_ok());
    }
    assert!(r.is_empty());
    let mut cfg = AbuseSettings {
        connections_per_ip_per_minute: NonZeroU32::new(1),
        ..AbuseSettings::default()
    };
    r.reconfigure(&cfg);
    assert!(r.check(ip).is_ok());
    assert!(r.check(ip).is_err());
    // Same limit again: the count is kept.
    cfg.auth_failures = NonZeroU32::new(9);
    r.reconfigure(&cfg);
    assert!(r.check(ip).is_err());
    assert_eq!(r.len(), 1);
}
