//! The known-client record on a manual clock: who is known for what, the
//! TTL, the cap, the file (saved only on change, loaded at start, a broken
//! one moved aside) and regrouping when `ipv6_prefix` changes.

use super::*;
use crate::clock::ManualClock;
use crate::quota::DEFAULT_IPV6_PREFIX;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

const DAY: Duration = Duration::from_secs(86400);

struct Fixture {
    known: KnownClients,
    clock: Arc<ManualClock>,
    dir: tempfile::TempDir,
}

fn fixture_with(cfg: &AbuseSettings, cap: usize) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(Duration::from_secs(1_800_000_000)));
    let (known, err) =
        KnownClients::with_clock(cfg, dir.path().join(FILE_NAME), clock.clone(), cap);
    assert!(err.is_none(), "{err:?}");
    Fixture { known, clock, dir }
}

fn fixture() -> Fixture {
    fixture_with(&AbuseSettings::default(), MAX_PAIRS)
}

impl Fixture {
    /// A second instance on the same file and clock, as after a restart.
    fn reopen(&self, cfg: &AbuseSettings) -> (KnownClients, Option<LoadError>) {
        KnownClients::with_clock(
            cfg,
            self.dir.path().join(FILE_NAME),
            self.clock.clone(),
            MAX_PAIRS,
        )
    }
}

fn key(ip: &str) -> ClientKey {
    ClientKey::of(ip.parse::<IpAddr>().unwrap(), DEFAULT_IPV6_PREFIX)
}

#[test]
fn a_login_makes_the_network_known_for_that_username_until_the_ttl() {
    let f = fixture();
    let app = key("192.0.2.10");
    assert!(!f.known.is_known(app, "erp"));
    assert!(!f.known.is_known_client(app));
    f.known.record(app, "erp");
    assert!(f.known.is_known(app, "erp"));
    assert!(f.known.is_known_client(app));
    // Only for that username, only for that network.
    assert!(!f.known.is_known(app, "crm"));
    assert!(!f.known.is_known(key("192.0.2.11"), "erp"));
    assert!(!f.known.is_known_client(key("192.0.2.11")));
    // Known for 30 days after the last login.
    f.clock.advance(30 * DAY - Duration::from_secs(1));
    assert!(f.known.is_known(app, "erp"));
    f.clock.advance(Duration::from_secs(1));
    assert!(!f.known.is_known(app, "erp"));
    assert!(!f.known.is_known_client(app));
}

#[test]
fn a_later_login_extends_it() {
    let f = fixture();
    let app = key("192.0.2.10");
    f.known.record(app, "erp");
    f.clock.advance(20 * DAY);
    f.known.record(app, "erp");
    f.clock.advance(20 * DAY);
    assert!(f.known.is_known(app, "erp"));
}

#[test]
fn ipv6_networks_are_grouped_by_the_configured_prefix() {
    let f = fixture();
    f.known.record(key("2001:db8:0:1::10"), "erp");
    assert!(f.known.is_known(key("2001:db8:0:1:ffff::1"), "erp"));
    assert!(!f.known.is_known(key("2001:db8:0:2::10"), "erp"));
    // IPv4-mapped IPv6 is the IPv4 address.
    f.known.record(key("::ffff:192.0.2.7"), "erp");
    assert!(f.known.is_known(key("192.0.2.7"), "erp"));

    // A reload to /48 merges the /64s; the record is regrouped.
    let cfg = AbuseSettings {
        ipv6_prefix: 48,
        ..AbuseSettings::default()
    };
    f.known.reconfigure(&cfg);
    let wide = |ip: &str| ClientKey::of(ip.parse().unwrap(), 48);
    assert!(f.known.is_known(wide("2001:db8:0:2::10"), "erp"));
    assert!(!f.known.is_known(wide("2001:db8:1::1"), "erp"));
    assert!(f.known.is_known(wide("192.0.2.7"), "erp"));
}

#[test]
fn saved_only_after_a_change_and_restored_after_a_restart() {
    let f = fixture();
    assert!(!f.known.persist().unwrap(), "nothing to save yet");
    assert!(!f.known.state_file().exists());
    f.known.record(key("192.0.2.10"), "erp");
    f.known.record(key("2001:db8:0:1::10"), "crm");
    assert!(f.known.persist().unwrap());
    assert!(!f.known.persist().unwrap(), "unchanged");
    // A login that only confirms a fresh pair is not a change...
    f.clock.advance(Duration::from_secs(60));
    f.known.record(key("192.0.2.10"), "erp");
    assert!(!f.known.persist().unwrap());
    // ... but one after an hour is (it moves the saved time on).
    f.clock.advance(Duration::from_secs(3600));
    f.known.record(key("192.0.2.10"), "erp");
    assert!(f.known.persist().unwrap());

    let text = std::fs::read_to_string(f.known.state_file()).unwrap();
    assert!(text.contains("\"192.0.2.10/32\""), "{text}");
    assert!(text.contains("\"2001:db8:0:1::/64\""), "{text}");
    assert!(text.contains("\"erp\""), "{text}");
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(f.known.state_file())
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);

    let (again, err) = f.reopen(&AbuseSettings::default());
    assert!(err.is_none(), "{err:?}");
    assert!(again.is_known(key("192.0.2.10"), "erp"));
    assert!(again.is_known(key("2001:db8:0:1::99"), "crm"));
    assert!(!again.is_known(key("192.0.2.10"), "crm"));
    assert_eq!(again.len(), 2);

    // After the TTL a restart does not bring them back, and the next save
    // drops them from the file.
    f.clock.advance(31 * DAY);
    let (late, _) = f.reopen(&AbuseSettings::default());
    assert!(late.is_empty());
    assert!(late.persist().unwrap());
    let text = std::fs::read_to_string(f.known.state_file()).unwrap();
    assert!(!text.contains("erp"), "{text}");
    // The running instance forgets them at its next save too.
    assert!(f.known.persist().unwrap());
    assert!(f.known.is_empty());
}

#[test]
fn the_record_is_bounded_and_evicts_the_least_recently_seen() {
    let f = fixture_with(&AbuseSettings::default(), 64);
    for i in 0..200u32 {
        f.known
            .record(key(&format!("10.0.{}.{}", i / 256, i % 256)), "erp");
        f.clock.advance(Duration::from_secs(1));
        assert!(f.known.len() <= 64, "{} pairs after {i}", f.known.len());
    }
    // The newest are all there, the oldest are gone.
    for i in 190..200u32 {
        assert!(f.known.is_known(key(&format!("10.0.0.{i}")), "erp"), "{i}");
    }
    assert!(!f.known.is_known(key("10.0.0.0"), "erp"));
    // Recently seen survive even if first seen long ago.
    let f = fixture_with(&AbuseSettings::default(), 16);
    f.known.record(key("192.0.2.1"), "erp");
    for i in 0..40u32 {
        f.clock.advance(Duration::from_secs(7200));
        f.known.record(key("192.0.2.1"), "erp");
        f.known.record(key(&format!("10.0.0.{i}")), "erp");
    }
    assert!(f.known.is_known(key("192.0.2.1"), "erp"));
    assert!(f.known.len() <= 16);
}

#[test]
fn a_broken_file_is_moved_aside_and_the_record_starts_empty() {
    let f = fixture();
    std::fs::write(f.known.state_file(), b"{ not json").unwrap();
    let (k, err) = f.reopen(&AbuseSettings::default());
    let err = err.expect("a load error");
    assert!(
        err.to_string().contains("is not a known-clients file"),
        "{err}"
    );
    assert!(k.is_empty());
    assert!(!f.known.state_file().exists());
    assert!(f.dir.path().join("known-clients.json.corrupt").exists());

    // A file from the future (unknown version) is not trusted either.
    std::fs::write(
        f.known.state_file(),
        br#"{"version":9,"saved_at":0,"clients":[]}"#,
    )
    .unwrap();
    let (_, err) = f.reopen(&AbuseSettings::default());
    assert!(err.unwrap().to_string().contains("unknown version 9"));
}

#[test]
fn a_shorter_ttl_on_reload_applies_to_existing_pairs() {
    let f = fixture();
    f.known.record(key("192.0.2.10"), "erp");
    f.clock.advance(2 * DAY);
    f.known.reconfigure(&AbuseSettings {
        known_client_ttl: DAY,
        ..AbuseSettings::default()
    });
    assert!(!f.known.is_known(key("192.0.2.10"), "erp"));
}

#[tokio::test]
async fn the_persister_saves_at_shutdown() {
    let f = fixture();
    let known = Arc::new(f.known);
    known.record(key("192.0.2.10"), "erp");
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(crate::quota::persist_every(
        Arc::clone(&known),
        Duration::from_secs(3600),
        async {
            let _ = rx.await;
        },
    ));
    tx.send(()).unwrap();
    task.await.unwrap();
    let text = std::fs::read_to_string(known.state_file()).unwrap();
    assert!(text.contains("\"erp\""), "{text}");
}
