//! Quotas end to end on a manual clock: limits, layering, all-or-nothing,
//! reload and restart.

use super::*;
use super::{Rule, Setting};
use crate::clock::ManualClock;
use std::num::NonZeroU32;

const MIN: Duration = Duration::from_secs(60);
const HOUR: Duration = Duration::from_secs(3600);

fn max(n: u32) -> Setting {
    NonZeroU32::new(n).map_or(Setting::Unlimited, Setting::Max)
}

/// Limits from `key = value` pairs, as they would be written in TOML.
fn limits(pairs: &[(&str, u32)]) -> Limits {
    let mut l = Limits::default();
    for &(k, v) in pairs {
        let slot = match k {
            "per_minute" => &mut l.messages.per_minute,
            "per_hour" => &mut l.messages.per_hour,
            "per_day" => &mut l.messages.per_day,
            "burst" => &mut l.messages.burst,
            "recipients_per_minute" => &mut l.recipients.per_minute,
            "recipients_per_hour" => &mut l.recipients.per_hour,
            "recipients_per_day" => &mut l.recipients.per_day,
            "recipients_burst" => &mut l.recipients.burst,
            other => panic!("unknown key {other}"),
        };
        *slot = max(v);
    }
    l
}

struct Fixture {
    q: Quotas,
    clock: Arc<ManualClock>,
    _dir: tempfile::TempDir,
}

fn start_clock() -> Arc<ManualClock> {
    // A fixed day boundary plus a little, so bucket edges are predictable.
    Arc::new(ManualClock::new(Duration::from_secs(1_800_000_000 + 10)))
}

fn fixture(cfg: &Settings) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let clock = start_clock();
    let (q, err) = Quotas::with_clock(cfg, dir.path().join(STATE_FILE_NAME), clock.clone());
    assert!(err.is_none(), "{err:?}");
    Fixture {
        q,
        clock,
        _dir: dir,
    }
}

fn subject<'a>(credential: &'a str, sender: &'a str, ip: &str) -> Subject<'a> {
    Subject {
        credential,
        credential_quota: None,
        sender,
        from_domain: "",
        client: ClientKey::of(ip.parse().unwrap(), DEFAULT_IPV6_PREFIX),
    }
}

#[test]
fn sixth_message_in_a_minute_is_refused_with_retry_hint() {
    let cfg = Settings {
        credential: limits(&[("per_minute", 5)]),
        ..Settings::default()
    };
    let f = fixture(&cfg);
    let s = subject("erp", "billing@example.com", "192.0.2.1");
    for i in 0..5 {
        assert_eq!(f.q.check_message(&s), Ok(()), "message {i}");
    }
    let r = f.q.check_message(&s).unwrap_err();
    assert_eq!(
        r.to_string(),
        "Rate limit \"quota.credential.per_minute\" exceeded for credential erp; retry in 12 s"
    );
    assert_eq!(r.retry_after, Duration::from_secs(12));
    f.clock.advance(Duration::from_secs(11));
    assert!(f.q.check_message(&s).is_err());
    f.clock.advance(Duration::from_secs(1));
    assert_eq!(f.q.check_message(&s), Ok(()));
    assert!(f.q.check_message(&s).is_err());
    // Another credential has its own counter.
    assert_eq!(
        f.q.check_message(&subject("crm", "billing@example.com", "192.0.2.1")),
        Ok(())
    );
}

#[test]
fn a_refusal_by_one_key_counts_against_no_other() {
    let cfg = Settings {
        sender: limits(&[("per_minute", 1)]),
        ip: limits(&[("per_minute", 3)]),
        ..Settings::default()
    };
    let f = fixture(&cfg);
    let ip = "198.51.100.9";
    assert_eq!(f.q.check_message(&subject("", "a@x.test", ip)), Ok(()));
    let r = f.q.check_message(&subject("", "a@x.test", ip)).unwrap_err();
    assert_eq!(r.rule, "quota.sender.per_minute");
    assert_eq!(r.key, "sender a@x.test");
    // Had the refused message counted for the IP, c@ would be refused.
    assert_eq!(f.q.check_message(&subject("", "b@x.test", ip)), Ok(()));
    assert_eq!(f.q.check_message(&subject("", "c@x.test", ip)), Ok(()));
    let r = f.q.check_message(&subject("", "d@x.test", ip)).unwrap_err();
    assert_eq!(
        (r.rule.as_str(), r.key.as_str()),
        ("quota.ip.per_minute", "ip 198.51.100.9")
    );
}

#[test]
fn the_longest_wait_is_reported_when_several_limits_refuse() {
    let cfg = Settings {
        sender: limits(&[("per_minute", 1), ("per_hour", 1)]),
        ..Settings::default()
    };
    let f = fixture(&cfg);
    let s = subject("", "a@x.test", "192.0.2.1");
    assert_eq!(f.q.check_message(&s), Ok(()));
    let r = f.q.check_message(&s).unwrap_err();
    assert_eq!(r.rule, "quota.sender.per_hour");
    // The count made 10 s after a 5-minute boundary leaves the rolling hour
    // when the 13th bucket after it begins.
    assert_eq!(r.retry_after, Duration::from_secs(65 * 60 - 10));
}

#[test]
fn credential_override_layers_on_defaults_and_names_its_key() {
    let cfg = Settings {
        credential: limits(&[("per_minute", 2), ("per_hour", 6)]),
        ..Settings::default()
    };
    let f = fixture(&cfg);
    let over = limits(&[("per_minute", 4), ("per_day", 5)]);
    let s = Subject {
        credential_quota: Some(&over),
        ..subject("erp", "a@x.test", "192.0.2.1")
    };
    for _ in 0..4 {
        assert_eq!(f.q.check_message(&s), Ok(()));
    }
    let r = f.q.check_message(&s).unwrap_err();
    assert_eq!(r.rule, "credentials.erp.quota.per_minute");
    f.clock.advance(MIN);
    assert_eq!(f.q.check_message(&s), Ok(()));
    let r = f.q.check_message(&s).unwrap_err();
    assert_eq!(r.rule, "credentials.erp.quota.per_day");
    // With per_day lifted, the inherited per_hour = 6 applies, and its
    // refusal names the default.
    let lifted = Limits {
        messages: super::Windows {
            per_day: Setting::Unlimited,
            ..over.messages
        },
        ..over
    };
    let s = Subject {
        credential_quota: Some(&lifted),
        ..s
    };
    assert_eq!(f.q.check_message(&s), Ok(()));
    let r = f.q.check_message(&s).unwrap_err();
    assert_eq!(r.rule, "quota.credential.per_hour");
}

fn rule(name: &str, senders: &[&str], shared: bool, l: Limits) -> Rule {
    Rule {
        name: name.into(),
        senders: senders.iter().map(|s| s.to_string()).collect(),
        shared,
        limits: l,
    }
}

#[test]
fn sender_rules_override_defaults_most_specific_first() {
    let cfg = Settings {
        sender: limits(&[("per_hour", 1), ("per_minute", 100)]),
        rules: vec![
            rule("catchall", &["*"], false, limits(&[("per_hour", 2)])),
            rule(
                "newsletters",
                &["*@news.example.com"],
                false,
                limits(&[("per_hour", 3)]),
            ),
            rule(
                "ceo",
                &["ceo@news.example.com"],
                false,
                limits(&[("per_hour", 4)]),
            ),
        ],
        ..Settings::default()
    };
    let f = fixture(&cfg);
    let count = |sender: &str| {
        let s = subject("", sender, "192.0.2.1");
        let mut n = 0;
        let refusal = loop {
            match f.q.check_message(&s) {
                Ok(()) => n += 1,
                Err(r) => break r,
            }
        };
        (n, refusal.rule)
    };
    assert_eq!(
        count("a@news.example.com"),
        (3, "quota.rules.newsletters.per_hour".into())
    );
    assert_eq!(
        count("B@News.Example.com"),
        (3, "quota.rules.newsletters.per_hour".into())
    );
    assert_eq!(
        count("ceo@news.example.com"),
        (4, "quota.rules.ceo.per_hour".into())
    );
    assert_eq!(
        count("x@other.test"),
        (2, "quota.rules.catchall.per_hour".into())
    );
    assert_eq!(
        count("postmaster"),
        (2, "quota.rules.catchall.per_hour".into())
    );
}

#[test]
fn sender_defaults_apply_without_rules_and_keys_ignore_case() {
    let cfg = Settings {
        sender: limits(&[("per_day", 2)]),
        ..Settings::default()
    };
    let f = fixture(&cfg);
    assert_eq!(
        f.q.check_message(&subject("", "Billing@Example.COM", "192.0.2.1")),
        Ok(())
    );
    assert_eq!(
        f.q.check_message(&subject("", "billing@example.com", "192.0.2.2")),
        Ok(())
    );
    let r =
        f.q.check_message(&subject("", "BILLING@example.com", "192.0.2.3"))
            .unwrap_err();
    assert_eq!(r.key, "sender billing@example.com");
    // The null sender has no sender key.
    assert_eq!(f.q.check_message(&subject("", "", "192.0.2.1")), Ok(()));
}

#[test]
fn shared_rule_pools_its_senders() {
    let cfg = Settings {
        rules: vec![rule(
            "bulk",
            &["*@news.example.com"],
            true,
            limits(&[("per_hour", 3)]),
        )],
        ..Settings::default()
    };
    let f = fixture(&cfg);
    for s in [
        "a@news.example.com",
        "b@news.example.com",
        "c@news.example.com",
    ] {
        assert_eq!(f.q.check_message(&subject("", s, "192.0.2.1")), Ok(()));
    }
    let r =
        f.q.check_message(&subject("", "d@news.example.com", "192.0.2.1"))
            .unwrap_err();
    assert_eq!(
        (r.rule.as_str(), r.key.as_str()),
        ("quota.rules.bulk.per_hour", "rule bulk")
    );
    assert_eq!(
        f.q.check_message(&subject("", "a@other.test", "192.0.2.1")),
        Ok(())
    );
}

#[test]
fn domain_limit_uses_from_domain_or_the_senders_domain() {
    let cfg = Settings {
        domain: limits(&[("per_minute", 2)]),
        ..Settings::default()
    };
    let f = fixture(&cfg);
    assert_eq!(
        f.q.check_message(&subject("", "a@Example.com", "192.0.2.1")),
        Ok(())
    );
    let s = Subject {
        from_domain: "EXAMPLE.COM",
        ..subject("", "bounce@mailer.test", "192.0.2.1")
    };
    assert_eq!(f.q.check_message(&s), Ok(()));
    let r =
        f.q.check_message(&subject("", "b@example.com", "192.0.2.1"))
            .unwrap_err();
    assert_eq!(r.key, "domain example.com");
}

#[test]
fn recipients_count_separately_from_messages() {
    let cfg = Settings {
        credential: limits(&[("per_minute", 1), ("recipients_per_minute", 3)]),
        ..Settings::default()
    };
    let f = fixture(&cfg);
    let s = subject("erp", "a@x.test", "192.0.2.1");
    assert_eq!(f.q.check_message(&s), Ok(()));
    for _ in 0..3 {
        assert_eq!(f.q.check_recipient(&s), Ok(()));
    }
    let r = f.q.check_recipient(&s).unwrap_err();
    assert_eq!(r.rule, "quota.credential.recipients_per_minute");
    assert_eq!(r.retry_after, Duration::from_secs(20));
}

#[test]
fn burst_lets_fewer_through_back_to_back() {
    let cfg = Settings {
        ip: limits(&[("per_minute", 60), ("burst", 2)]),
        ..Settings::default()
    };
    let f = fixture(&cfg);
    let s = subject("", "a@x.test", "2001:db8::1");
    assert_eq!(f.q.check_message(&s), Ok(()));
    assert_eq!(f.q.check_message(&s), Ok(()));
    let r = f.q.check_message(&s).unwrap_err();
    assert_eq!(r.key, "ip 2001:db8::/64");
    assert_eq!(r.retry_after, Duration::from_secs(1));
    f.clock.advance(Duration::from_secs(1));
    assert_eq!(f.q.check_message(&s), Ok(()));
}

#[test]
fn refund_gives_back_an_aborted_transaction() {
    let cfg = Settings {
        sender: limits(&[("per_minute", 1), ("per_day", 1), ("recipients_per_day", 1)]),
        ..Settings::default()
    };
    let f = fixture(&cfg);
    let s = subject("", "a@x.test", "192.0.2.1");
    assert_eq!(f.q.check_message(&s), Ok(()));
    assert_eq!(f.q.check_recipient(&s), Ok(()));
    assert!(f.q.check_message(&s).is_err());
    assert!(f.q.check_recipient(&s).is_err());
    f.q.refund(&s, 1, 1);
    assert_eq!(f.q.check_message(&s), Ok(()));
    assert_eq!(f.q.check_recipient(&s), Ok(()));
}

#[test]
fn reconfigure_keeps_counters() {
    let cfg = Settings {
        sender: limits(&[("per_day", 3), ("per_minute", 2)]),
        ..Settings::default()
    };
    let f = fixture(&cfg);
    let s = subject("", "a@x.test", "192.0.2.1");
    assert_eq!(f.q.check_message(&s), Ok(()));
    assert_eq!(f.q.check_message(&s), Ok(()));
    f.q.reconfigure(&Settings {
        sender: limits(&[("per_day", 4), ("per_minute", 2)]),
        ..Settings::default()
    });
    // The minute state was kept (a fresh one would let this through).
    assert_eq!(
        f.q.check_message(&s).unwrap_err().rule,
        "quota.sender.per_minute"
    );
    f.clock.advance(MIN);
    assert_eq!(f.q.check_message(&s), Ok(()));
    assert_eq!(f.q.check_message(&s), Ok(()));
    // The day count was kept too: 4 in all under the new per_day = 4.
    assert_eq!(
        f.q.check_message(&s).unwrap_err().rule,
        "quota.sender.per_day"
    );
    f.q.reconfigure(&Settings::default());
    assert_eq!(f.q.check_message(&s), Ok(()));
}

#[test]
fn day_counters_survive_a_restart() {
    let cfg = Settings {
        credential: limits(&[("per_day", 3), ("recipients_per_hour", 2)]),
        ..Settings::default()
    };
    let f = fixture(&cfg);
    let s = subject("erp", "a@x.test", "192.0.2.1");
    for _ in 0..3 {
        assert_eq!(f.q.check_message(&s), Ok(()));
    }
    assert_eq!(f.q.check_recipient(&s), Ok(()));
    assert!(f.q.persist().unwrap());
    // Nothing new: nothing written.
    assert!(!f.q.persist().unwrap());
    let path = f.q.state_file().to_path_buf();
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
        0o600
    );
    assert!(!path.with_extension("json.tmp").exists());

    // "Restart" two hours later with the same file.
    f.clock.advance(2 * HOUR);
    let (q2, err) = Quotas::with_clock(&cfg, path.clone(), f.clock.clone());
    assert!(err.is_none(), "{err:?}");
    let r = q2.check_message(&s).unwrap_err();
    assert_eq!(r.rule, "quota.credential.per_day");
    // Counted at 10 s past an hour boundary, 2 h ago: free 25 h after that
    // hour began.
    assert_eq!(r.retry_after, Duration::from_secs(23 * 3600 - 10));
    // The recipient's hour window has passed in the meantime.
    assert_eq!(q2.check_recipient(&s), Ok(()));
    assert_eq!(q2.check_recipient(&s), Ok(()));
    assert!(q2.check_recipient(&s).is_err());
    f.clock.advance(23 * HOUR);
    assert_eq!(q2.check_message(&s), Ok(()));
}

#[test]
fn a_corrupt_state_file_is_moved_aside_and_counting_starts_empty() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(STATE_FILE_NAME);
    std::fs::write(&path, b"{not json").unwrap();
    let (q, err) = Quotas::with_clock(&Settings::default(), path.clone(), start_clock());
    let err = err.unwrap();
    assert!(matches!(err, LoadError::Corrupt { .. }), "{err}");
    assert!(
        err.to_string().contains("quota-state.json.corrupt"),
        "{err}"
    );
    assert_eq!(
        std::fs::read(dir.path().join("quota-state.json.corrupt")).unwrap(),
        b"{not json"
    );
    assert!(!path.exists());
    assert!(q.is_empty());
}

#[test]
fn unlimited_configuration_tracks_nothing() {
    let f = fixture(&Settings::default());
    for i in 0..1000 {
        let sender = format!("s{i}@x.test");
        assert_eq!(
            f.q.check_message(&subject("erp", &sender, "192.0.2.1")),
            Ok(())
        );
        assert_eq!(
            f.q.check_recipient(&subject("erp", &sender, "192.0.2.1")),
            Ok(())
        );
    }
    assert!(f.q.is_empty());
    assert!(!f.q.persist().unwrap());
}

#[test]
fn idle_keys_are_pruned_on_persist() {
    let cfg = Settings {
        sender: limits(&[("per_minute", 10), ("per_hour", 10)]),
        ..Settings::default()
    };
    let f = fixture(&cfg);
    for i in 0..50 {
        let sender = format!("s{i}@x.test");
        assert_eq!(
            f.q.check_message(&subject("", &sender, "192.0.2.1")),
            Ok(())
        );
    }
    assert_eq!(f.q.len(), 50);
    f.clock.advance(MIN);
    f.q.persist().unwrap();
    assert_eq!(f.q.len(), 50, "hour counters still hold them");
    f.clock.advance(2 * HOUR);
    f.q.persist().unwrap();
    assert!(f.q.is_empty());
}

#[test]
fn refusal_text_rounds_up_to_whole_seconds() {
    let r = Refusal {
        rule: "quota.ip.per_minute".into(),
        key: "ip 192.0.2.1".into(),
        retry_after: Duration::from_millis(1001),
        unavailable: false,
    };
    assert_eq!(r.retry_secs(), 2);
    let zero = Refusal {
        retry_after: Duration::ZERO,
        ..r
    };
    assert_eq!(zero.retry_secs(), 1);
}

#[tokio::test]
async fn persister_saves_on_shutdown() {
    let cfg = Settings {
        sender: limits(&[("per_day", 5)]),
        ..Settings::default()
    };
    let f = fixture(&cfg);
    let q = Arc::new(f.q);
    assert_eq!(
        q.check_message(&subject("", "a@x.test", "192.0.2.1")),
        Ok(())
    );
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(persist_every(
        Arc::clone(&q),
        Duration::from_secs(3600),
        async {
            let _ = rx.await;
        },
    ));
    tx.send(()).unwrap();
    task.await.unwrap();
    let text = std::fs::read_to_string(q.state_file()).unwrap();
    assert!(text.contains("\"a@x.test\""), "{text}");
    assert!(text.contains("\"messages_day\""), "{text}");
}

#[test]
fn hostile_state_records_are_skipped_not_trusted() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(STATE_FILE_NAME);
    // Day bucket of the fixture clock: 1_800_000_010 s / 3600 = 500000.
    std::fs::write(
        &path,
        r#"{"version":1,"saved_at":0,"keys":[
            {"dim":"sender","key":"a@x.test","messages_day":{"head":500000,"counts":[3]}},
            {"dim":"sender","key":"b@x.test","messages_day":{"head":500000,"counts":[1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1]}},
            {"dim":"sender","key":"c@x.test","messages_day":{"head":18446744073709551615,"counts":[9]}}
        ]}"#,
    )
    .unwrap();
    let cfg = Settings {
        sender: limits(&[("per_day", 3)]),
        ..Settings::default()
    };
    let (q, err) = Quotas::with_clock(&cfg, path.clone(), start_clock());
    assert!(err.is_none(), "{err:?}");
    assert_eq!(
        q.check_message(&subject("", "a@x.test", "192.0.2.1"))
            .unwrap_err()
            .rule,
        "quota.sender.per_day"
    );
    for s in ["b@x.test", "c@x.test"] {
        assert_eq!(q.check_message(&subject("", s, "192.0.2.1")), Ok(()), "{s}");
    }
    std::fs::write(&path, r#"{"version":99,"saved_at":0,"keys":[]}"#).unwrap();
    let (_, err) = Quotas::with_clock(&cfg, path, start_clock());
    assert!(err.unwrap().to_string().contains("unknown version 99"));
}

#[test]
fn client_keys_follow_the_configured_ipv6_prefix() {
    let k = |ip: &str, p: u8| ClientKey::of(ip.parse().unwrap(), p).to_string();
    assert_eq!(k("2001:db8:1:2:3:4:5:6", 64), "2001:db8:1:2::/64");
    assert_eq!(k("2001:db8:1:2:3:4:5:6", 48), "2001:db8:1::/48");
    assert_eq!(k("2001:db8:1:2:3:4:5:6", 128), "2001:db8:1:2:3:4:5:6");
    // IPv4, and IPv4-mapped IPv6, are always one address.
    assert_eq!(k("192.0.2.1", 48), "192.0.2.1");
    assert_eq!(k("::ffff:192.0.2.1", 48), "192.0.2.1");

    // Quotas by IP count the same networks.
    let cfg = Settings {
        ip: limits(&[("per_minute", 1)]),
        ..Settings::default()
    };
    let f = fixture(&cfg);
    let s = |ip: &str| Subject {
        client: ClientKey::of(ip.parse().unwrap(), 48),
        ..subject("", "a@x.test", "192.0.2.1")
    };
    assert_eq!(f.q.check_message(&s("2001:db8:1:2::1")), Ok(()));
    let r = f.q.check_message(&s("2001:db8:1:ff::1")).unwrap_err();
    assert_eq!(r.key, "ip 2001:db8:1::/48");
}

#[test]
fn busiest_keys_are_those_with_most_messages_this_hour() {
    let cfg = Settings {
        credential: limits(&[("per_hour", 100)]),
        sender: limits(&[("per_day", 100), ("recipients_per_hour", 100)]),
        ..Settings::default()
    };
    let f = fixture(&cfg);
    assert!(f.q.busiest(5).is_empty());
    for _ in 0..3 {
        f.q.check_message(&subject("erp", "a@x.test", "192.0.2.1"))
            .unwrap();
    }
    f.q.check_message(&subject("crm", "b@x.test", "192.0.2.1"))
        .unwrap();
    f.q.check_recipient(&subject("crm", "b@x.test", "192.0.2.1"))
        .unwrap();
    let top = f.q.busiest(2);
    assert_eq!(
        top.iter().map(|k| k.key.as_str()).collect::<Vec<_>>(),
        ["credential erp", "credential crm"]
    );
    assert_eq!(top[0].messages_hour, 3);
    let all = f.q.busiest(10);
    let sender_b = all.iter().find(|k| k.key == "sender b@x.test").unwrap();
    assert_eq!((sender_b.messages_day, sender_b.recipients_hour), (1, 1));
    // Past the hour (and its one extra bucket) the hourly counts are gone; the
    // daily ones stay.
    f.clock.advance(HOUR + 6 * MIN);
    let later = f.q.busiest(10);
    assert!(later.iter().all(|k| k.messages_hour == 0));
    assert!(
        later
            .iter()
            .any(|k| k.key == "sender a@x.test" && k.messages_day == 3)
    );
}
