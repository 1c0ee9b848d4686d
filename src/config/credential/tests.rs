//! `[credentials.NAME]` scope keys: what loads, and the errors for what
//! does not.

use crate::config::test_util::{BASE, errors_of, load_text};
use std::time::{Duration, SystemTime};

const PHC: &str = "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$4Ev0PV6eZ3+vPhXGsyC5XFYIU0Cdh8I3c7B6fpEZg5Q";

fn with_app(block: &str) -> String {
    format!("{BASE}\n[credentials.app]\nusername = \"app\"\nallowed_senders = [\"*\"]\n{block}\n")
}

#[test]
fn every_scope_key_loads() {
    let text = with_app(&format!(
        r#"secret_hash = "{PHC}"
secret_hashes = ["{PHC}", {{ hash = "{PHC}", expires = 2027-01-31 }}, {{ hash = "{PHC}", expires = 2027-01-31T12:00:00+01:00 }}]
networks = ["10.0.0.0/8", "192.0.2.7"]
allowed_recipient_domains = ["example.net", "*.example.org"]
denied_recipient_domains = ["bad.example.net"]
max_recipients = 5
max_message_size = "10K"
expires = 2028-06-01T00:00:00Z
disabled = true"#
    ));
    let c = load_text(&text).unwrap();
    let app = &c.credentials["app"];
    let login = app.login.as_ref().unwrap();
    assert_eq!(login.secrets.len(), 4);
    assert_eq!(login.secrets[0].expires, None);
    let epoch = |s: u64| SystemTime::UNIX_EPOCH + Duration::from_secs(s);
    assert_eq!(login.secrets[2].expires, Some(epoch(1_801_353_600)));
    assert_eq!(
        login.secrets[3].expires,
        Some(epoch(1_801_353_600 + 11 * 3600))
    );
    assert_eq!(app.networks.len(), 2);
    assert_eq!(app.allowed_recipient_domains.len(), 2);
    assert!(app.allowed_recipient_domains[1].matches("a.example.org"));
    assert!(app.denied_recipient_domains[0].matches("bad.example.net"));
    assert_eq!(app.max_recipients, Some(5));
    assert_eq!(app.max_message_size, Some(10_000));
    assert_eq!(app.expires, Some(epoch(1_843_430_400)));
    assert!(app.disabled);
    assert!(!app.is_active(SystemTime::now()));
}

#[test]
fn expiry_is_checked_against_now() {
    let c = load_text(&with_app(&format!(
        "secret_hashes = [{{ hash = \"{PHC}\", expires = 2001-01-01 }}, \"{PHC}\"]\nexpires = 2001-01-01"
    )))
    .unwrap();
    let app = &c.credentials["app"];
    let now = SystemTime::now();
    assert!(!app.is_active(now));
    let s = &app.login.as_ref().unwrap().secrets;
    assert!(!s[0].is_active(now));
    assert!(s[1].is_active(now));
}

#[test]
fn bad_scope_values_are_located_errors() {
    let e = errors_of(&with_app(
        r#"secret_hashes = ["nope", { hash = "x", expires = 2027-01-31T00:00:00 }]
allowed_recipient_domains = ["*bad*.example"]
max_recipients = 0
max_message_size = 0
expires = 2027-01-31T00:00:00"#,
    ));
    let joined = e.join("\n");
    for key in [
        "credentials.app.secret_hashes",
        "credentials.app.allowed_recipient_domains",
        "credentials.app.max_recipients",
        "credentials.app.max_message_size",
        "credentials.app.expires",
    ] {
        assert!(joined.contains(&format!("key `{key}`")), "{key}: {joined}");
    }
    assert!(joined.contains("not a PHC hash string"), "{joined}");
    assert!(joined.contains("UTC offset"), "{joined}");
    assert!(
        e.iter().all(|l| l.starts_with("/etc/p/main.toml:")),
        "{joined}"
    );
}

#[test]
fn username_needs_a_secret() {
    let e = errors_of(&with_app(""));
    assert!(
        e.iter()
            .any(|l| l.contains("username and secret_hash (or secret_hashes)")),
        "{e:?}"
    );
}
