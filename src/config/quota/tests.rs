//! `[quota]`, credential `quota`, `[abuse]` and upstream pacing keys.

use super::*;
use crate::config::test_util::{BASE, errors_of, load_text};
use crate::config::{Config, load_str};
use std::path::Path;
use std::time::Duration;

fn load(extra: &str) -> Result<Config, Vec<String>> {
    load_text(&format!("{BASE}{extra}"))
}

fn n(v: u32) -> Setting {
    Setting::Max(NonZeroU32::new(v).unwrap())
}

/// Line number of `needle` in BASE + extra, for asserting error positions.
fn line_of(extra: &str, needle: &str) -> usize {
    let text = format!("{BASE}{extra}");
    text.lines().position(|l| l.contains(needle)).unwrap() + 1
}

#[test]
fn defaults_are_unlimited_and_abuse_has_documented_defaults() {
    let c = load("").unwrap();
    assert_eq!(c.quota, crate::quota::Settings::default());
    assert_eq!(c.credentials["lan"].quota, None);
    let a = &c.abuse;
    assert_eq!(a.auth_failures, NonZeroU32::new(5));
    assert_eq!(a.auth_window, Duration::from_secs(600));
    assert_eq!(a.lockout, Duration::from_secs(900));
    assert_eq!(a.lockout_max, Duration::from_secs(86400));
    assert_eq!(a.max_auth_attempts_per_connection, NonZeroU32::new(3));
    assert_eq!(a.auth_failure_delay, Duration::from_secs(1));
    assert_eq!(a.connections_per_ip_per_minute, NonZeroU32::new(60));
    assert_eq!(a.known_client_ttl, Duration::from_secs(30 * 86400));
    assert_eq!(a.ipv6_prefix, 64);
    assert!(c.upstreams["out"].max_concurrency.is_none());
    assert!(c.upstreams["out"].rate.is_none());
}

#[test]
fn full_quota_section_parses() {
    let c = load(
        r#"
[quota.credential]
per_minute = 60
burst = 10
per_day = 5000
recipients_per_day = 20000

[quota.sender]
per_hour = 200

[quota.domain]
per_day = "unlimited"

[quota.ip]
per_minute = 120

[[quota.rules]]
name = "newsletters"
senders = ["*@News.Example.com", "promo@example.com"]
per_hour = 500

[[quota.rules]]
name = "bulk-pool"
senders = ["*@bulk.example.com"]
shared = true
recipients_per_hour = "unlimited"
"#,
    )
    .unwrap();
    let q = &c.quota;
    assert_eq!(q.credential.messages.per_minute, n(60));
    assert_eq!(q.credential.messages.burst, n(10));
    assert_eq!(q.credential.messages.per_day, n(5000));
    assert_eq!(q.credential.messages.per_hour, Setting::Inherit);
    assert_eq!(q.credential.recipients.per_day, n(20000));
    assert_eq!(q.sender.messages.per_hour, n(200));
    assert_eq!(q.domain.messages.per_day, Setting::Unlimited);
    assert_eq!(q.ip.messages.per_minute, n(120));
    assert_eq!(q.rules.len(), 2);
    assert_eq!(q.rules[0].name, "newsletters");
    assert_eq!(
        q.rules[0].senders,
        ["*@news.example.com", "promo@example.com"]
    );
    assert!(!q.rules[0].shared);
    assert_eq!(q.rules[0].limits.messages.per_hour, n(500));
    assert!(q.rules[1].shared);
    assert_eq!(q.rules[1].limits.recipients.per_hour, Setting::Unlimited);
}

#[test]
fn credential_quota_inline_table() {
    let c = load(
        r#"
[credentials.erp]
networks = ["10.1.0.0/16"]
allowed_senders = ["*"]
quota = { per_minute = 60, per_day = 5000, recipients_per_day = 20000 }
"#,
    )
    .unwrap();
    let q = c.credentials["erp"].quota.unwrap();
    assert_eq!(q.messages.per_minute, n(60));
    assert_eq!(q.messages.per_day, n(5000));
    assert_eq!(q.recipients.per_day, n(20000));
    assert_eq!(q.recipients.per_minute, Setting::Inherit);
}

#[test]
fn bad_limits_name_file_line_and_key() {
    let extra = r#"
[quota.sender]
per_minute = 0
per_hour = "lots"
per_day = -3
burst = "unlimited"
"#;
    let e = load(extra).unwrap_err();
    assert_eq!(e.len(), 4, "{e:#?}");
    let at = |needle: &str| format!("/etc/p/main.toml:{}:", line_of(extra, needle));
    assert!(e[0].starts_with(&at("per_minute = 0")), "{e:#?}");
    assert!(e[0].contains("key `quota.sender.per_minute`"), "{e:#?}");
    assert!(e[0].contains("write \"unlimited\" for no limit"), "{e:#?}");
    assert!(
        e[1].contains("key `quota.sender.per_hour`") && e[1].contains("\"lots\""),
        "{e:#?}"
    );
    assert!(e[2].contains("key `quota.sender.per_day`"), "{e:#?}");
    assert!(e[3].contains("key `quota.sender.burst`"), "{e:#?}");
}

#[test]
fn unknown_keys_and_wrong_types_are_errors() {
    let e = load("[quota.ip]\nper_mintue = 5\n").unwrap_err();
    assert!(
        e[0].contains("per_mintue") && e[0].contains("unknown field"),
        "{e:#?}"
    );
    let e = load("[quota.ip]\nper_minute = 1.5\n").unwrap_err();
    assert!(
        e[0].contains("a positive integer or \"unlimited\""),
        "{e:#?}"
    );
    let e = load(
        "[credentials.lan2]\nnetworks = [\"10.0.0.0/8\"]\nallowed_senders = [\"*\"]\nquota = { per_mnute = 1 }\n",
    )
    .unwrap_err();
    assert!(e[0].contains("per_mnute"), "{e:#?}");
    let e = load("[credentials.lan2]\nnetworks = [\"10.0.0.0/8\"]\nallowed_senders = [\"*\"]\nquota = { per_day = 0 }\n")
        .unwrap_err();
    assert!(
        e[0].contains("key `credentials.lan2.quota.per_day`"),
        "{e:#?}"
    );
}

#[test]
fn rule_errors() {
    let extra = r#"
[[quota.rules]]
name = "a"
senders = ["*@x.test"]

[[quota.rules]]
name = "a"
senders = ["bad pattern", "*@*.x.test"]

[[quota.rules]]
name = "has space"
senders = []
"#;
    let e = load(extra).unwrap_err();
    let text = e.join("\n");
    assert!(text.contains("already named \"a\""), "{text}");
    assert!(
        text.contains("key `quota.rules.a.senders`: invalid sender pattern \"bad pattern\""),
        "{text}"
    );
    assert!(text.contains("\"*@*.x.test\""), "{text}");
    assert!(text.contains("a rule name must be non-empty"), "{text}");
    assert!(
        text.contains("a rule needs at least one sender pattern"),
        "{text}"
    );
    assert_eq!(e.len(), 5, "{text}");
}

#[test]
fn abuse_section() {
    let c = load(
        r#"
[abuse]
auth_failures = 3
auth_window = "5m"
lockout = "1m"
lockout_max = "1h"
max_auth_attempts_per_connection = 2
auth_failure_delay = "500ms"
connections_per_ip_per_minute = "unlimited"
known_client_ttl = "7d"
ipv6_prefix = 56
"#,
    )
    .unwrap();
    let a = c.abuse;
    assert_eq!(a.auth_failures, NonZeroU32::new(3));
    assert_eq!(a.auth_window, Duration::from_secs(300));
    assert_eq!(a.lockout, Duration::from_secs(60));
    assert_eq!(a.lockout_max, Duration::from_secs(3600));
    assert_eq!(a.max_auth_attempts_per_connection, NonZeroU32::new(2));
    assert_eq!(a.auth_failure_delay, Duration::from_millis(500));
    assert_eq!(a.connections_per_ip_per_minute, None);
    assert_eq!(a.known_client_ttl, Duration::from_secs(7 * 86400));
    assert_eq!(a.ipv6_prefix, 56);

    let extra = "[abuse]\nlockout = \"2h\"\nlockout_max = \"1h\"\nauth_failure_delay = \"1m\"\nauth_window = \"0s\"\nauth_failures = 0\n";
    let e = load(extra).unwrap_err();
    let text = e.join("\n");
    assert!(
        text.contains("key `abuse.lockout_max`: lockout_max is shorter than lockout"),
        "{text}"
    );
    assert!(text.contains("key `abuse.auth_failure_delay`"), "{text}");
    assert!(
        text.contains("key `abuse.auth_window`: must be longer than zero"),
        "{text}"
    );
    assert!(text.contains("key `abuse.auth_failures`"), "{text}");
    assert!(
        text.contains(&format!("main.toml:{}:", line_of(extra, "lockout_max"))),
        "{text}"
    );
    for bad in ["ipv6_prefix = 24", "ipv6_prefix = 129", "ipv6_prefix = -1"] {
        let e = load(&format!("[abuse]\n{bad}\n")).unwrap_err().join("\n");
        assert!(
            e.contains("key `abuse.ipv6_prefix`: must be a prefix length from 32 to 128"),
            "{bad}: {e}"
        );
    }
    let e = load("[abuse]\nknown_client_ttl = \"0s\"\n")
        .unwrap_err()
        .join("\n");
    assert!(
        e.contains("key `abuse.known_client_ttl`: must be longer than zero"),
        "{e}"
    );
    let e = load("[abuse]\nlockout_minutes = 5\n").unwrap_err();
    assert!(e[0].contains("lockout_minutes"), "{e:#?}");
}

#[test]
fn upstream_pacing_keys() {
    let c = load("").unwrap();
    assert!(c.upstreams["out"].rate.is_none());
    let text = BASE.replace(
        "kind = \"directory\"",
        "kind = \"directory\"\nmax_concurrency = 4\nrate = \"30/min\"",
    );
    let c = load_str(Path::new("/etc/p/main.toml"), &text).unwrap();
    let u = &c.upstreams["out"];
    assert_eq!(u.max_concurrency, Some(4));
    let rate = u.rate.unwrap();
    assert_eq!((rate.count.get(), rate.per), (30, Duration::from_secs(60)));

    let text = BASE.replace(
        "kind = \"directory\"",
        "kind = \"directory\"\nmax_concurrency = 0\nrate = \"30 per minute\"",
    );
    let e = errors_of(&text);
    let all = e.join("\n");
    assert!(
        all.contains("key `upstreams.out.max_concurrency`: 0 is not between 1 and 1024"),
        "{all}"
    );
    assert!(
        all.contains("key `upstreams.out.rate`: invalid rate \"30 per minute\""),
        "{all}"
    );
    let rate_line = text.lines().position(|l| l.starts_with("rate")).unwrap() + 1;
    assert!(all.contains(&format!("main.toml:{rate_line}:")), "{all}");
}
