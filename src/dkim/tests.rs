//! Unit tests for header and domain selection and the signer's decisions.
//! Cryptographic correctness is checked by an independent verifier
//! (dkimpy) in tests/dkim.rs.

use super::*;
use crate::dkim::UnsignedPolicy;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

fn ed_key() -> Arc<PrivateKey> {
    let pem = generate_pem(Algorithm::Ed25519, None).unwrap();
    Arc::new(PrivateKey::from_pem(Algorithm::Ed25519, &pem).unwrap())
}

fn slot(domain: &str, selector: &str) -> KeySlot {
    KeySlot {
        domain: domain.into(),
        selector: selector.into(),
        key: ed_key(),
        not_before: None,
        not_after: None,
    }
}

fn t(secs: u64) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(secs)
}

const MSG: &[u8] = b"Received: from x\r\n\tby relay.test\r\n\
    From: \"App\" <App@Example.COM>\r\n\
    To: b@dest.test\r\n\
    X-Mailer: legacy\r\n\
    subject: hi\r\n\
    List-Unsubscribe: <https://example.com/u>\r\n\
    To: c@dest.test\r\n\
    \r\n\
    body\r\n";

#[test]
fn headers_to_sign_lists_present_ones_and_oversigns_from() {
    assert_eq!(
        headers_to_sign(MSG),
        ["From", "To", "Subject", "List-Unsubscribe", "From"]
    );
    let no_from = b"To: b@x\r\nDate: now\r\nMessage-Id: <1@x>\r\n\r\nbody\r\n";
    assert_eq!(headers_to_sign(no_from), ["To", "Date", "Message-ID"]);
    // Header-looking lines in the body are not headers.
    let body_only = b"X-A: 1\r\n\r\nFrom: a@b\r\nCc: c@d\r\n";
    assert!(headers_to_sign(body_only).is_empty());
}

#[test]
fn from_domain_is_lowercase_a_label() {
    assert_eq!(from_domain(MSG).as_deref(), Some("example.com"));
    let utf8 = "From: Jörg <jörg@bücher.example>\r\n\r\nx\r\n";
    assert_eq!(
        from_domain(utf8.as_bytes()).as_deref(),
        Some("xn--bcher-kva.example")
    );
    assert_eq!(from_domain(b"To: a@b.example\r\n\r\nx\r\n"), None);
    assert_eq!(from_domain(b"From: undisclosed\r\n\r\nx\r\n"), None);
    let folded = b"From: =?utf-8?q?A_B?=\r\n <a@Mail.Example.org.>\r\n\r\nx\r\n";
    assert_eq!(from_domain(folded).as_deref(), Some("mail.example.org"));
}

#[test]
fn closest_parent_with_an_active_key_wins() {
    let mut expired = slot("sub.example.com", "old");
    expired.not_after = Some(t(1000));
    let signer = Signer::new(
        vec![slot("example.com", "root"), expired, slot("other.org", "o")],
        UnsignedPolicy::Allow,
    );
    let pick = |d: &str, now| {
        signer.keys_for(d, t(now)).map(|(dom, s)| {
            (
                dom.to_string(),
                s.iter().map(|k| k.selector.clone()).collect::<Vec<_>>(),
            )
        })
    };
    assert_eq!(
        pick("example.com", 0),
        Some(("example.com".into(), vec!["root".into()]))
    );
    assert_eq!(
        pick("a.b.example.com", 0),
        Some(("example.com".into(), vec!["root".into()]))
    );
    // Before its not_after the subdomain's own key is closest...
    assert_eq!(
        pick("x.sub.example.com", 999),
        Some(("sub.example.com".into(), vec!["old".into()]))
    );
    // ...at not_after (exclusive) it is retired and the parent takes over.
    assert_eq!(
        pick("x.sub.example.com", 1000),
        Some(("example.com".into(), vec!["root".into()]))
    );
    assert_eq!(pick("example.net", 0), None);
    // A suffix match is not a parent: "notexample.com" is not under "example.com".
    assert_eq!(pick("notexample.com", 0), None);
}

#[test]
fn not_before_is_inclusive() {
    let mut s = slot("example.com", "new");
    s.not_before = Some(t(500));
    assert!(!s.active(t(499)));
    assert!(s.active(t(500)));
}

#[test]
fn signs_with_every_active_key_of_the_domain() {
    let mut future = slot("example.com", "future");
    future.not_before = Some(SystemTime::now() + Duration::from_secs(86400));
    let signer = Signer::new(
        vec![
            slot("example.com", "ed-a"),
            future,
            slot("example.com", "ed-b"),
        ],
        UnsignedPolicy::Reject,
    );
    let signed = signer.sign(MSG, SystemTime::now()).unwrap().unwrap();
    assert_eq!(signed.domain, "example.com");
    assert_eq!(signed.selectors, ["ed-a", "ed-b"]);
    let text = String::from_utf8(signed.prefix.clone()).unwrap();
    let fields: Vec<&str> = text
        .split("DKIM-Signature: ")
        .filter(|s| !s.is_empty())
        .collect();
    assert_eq!(fields.len(), 2, "{text}");
    for (f, sel) in fields.iter().zip(["ed-a", "ed-b"]) {
        let unfolded: String = f.replace("\r\n\t", "").replace("\r\n ", "");
        assert!(
            unfolded.starts_with(&format!(
                "v=1; a=ed25519-sha256; s={sel}; d=example.com; c=relaxed/relaxed;"
            )),
            "{unfolded}"
        );
        assert!(
            unfolded.contains("h=To:List-Unsubscribe:subject:To:From:From;"),
            "{unfolded}"
        );
        assert!(!unfolded.contains(" l="), "{unfolded}");
        assert!(f.ends_with(";\r\n"), "{f:?}");
    }
    // Each field is CRLF-terminated and folded with CRLF + TAB only.
    assert_eq!(strip_signatures(&[&signed.prefix[..], MSG].concat()), MSG);
}

#[test]
fn unsigned_policy_decides_for_unknown_domains() {
    let allow = Signer::new(vec![slot("example.com", "s")], UnsignedPolicy::Allow);
    let reject = Signer::new(vec![slot("example.com", "s")], UnsignedPolicy::Reject);
    let other = b"From: a@Example.ORG\r\n\r\nx\r\n";
    assert_eq!(allow.sign(other, SystemTime::now()), Ok(None));
    let err = reject.sign(other, SystemTime::now()).unwrap_err();
    assert_eq!(err, SignError::NoKey("example.org".into()));
    let reply = err.reply();
    assert_eq!(
        (reply.code, reply.enhanced.as_deref()),
        (550, Some("5.7.1"))
    );
    assert_eq!(reply.lines, ["No DKIM key for domain example.org"]);
    let no_from = b"Subject: x\r\n\r\nx\r\n";
    assert_eq!(allow.sign(no_from, SystemTime::now()), Ok(None));
    assert_eq!(
        reject.sign(no_from, SystemTime::now()),
        Err(SignError::NoFromDomain)
    );
    let failed = SignError::Failed("x".into()).reply();
    assert_eq!(
        (failed.code, failed.enhanced.as_deref()),
        (451, Some("4.3.0"))
    );
    assert!(Signer::default().is_noop());
    assert_eq!(Signer::default().sign(MSG, SystemTime::now()), Ok(None));
}

#[test]
fn names_are_validated() {
    assert_eq!(
        normalize_domain(" Example.COM. ").as_deref(),
        Ok("example.com")
    );
    assert_eq!(
        normalize_domain("bücher.example").as_deref(),
        Ok("xn--bcher-kva.example")
    );
    assert!(normalize_domain("").is_err());
    assert!(normalize_domain("a..b").is_err());
    assert!(normalize_domain("-a.example").is_err());
    assert!(normalize_domain("a_b.example").is_err());
    assert!(normalize_domain("[192.0.2.1]").is_err());
    assert_eq!(check_selector("pst2026r").as_deref(), Ok("pst2026r"));
    assert_eq!(check_selector("s1.Region").as_deref(), Ok("s1.Region"));
    assert!(check_selector("bad selector").is_err());
    assert!(check_selector("a/b").is_err());
    assert!(check_selector("").is_err());
}

#[test]
fn signing_is_heavy_only_with_an_rsa_key() {
    assert_eq!(Signer::default().cost(), crate::inspect::Cost::Light);
    let ed = Signer::new(vec![slot("example.com", "ed")], UnsignedPolicy::Allow);
    assert_eq!(ed.cost(), crate::inspect::Cost::Light);
    let pem = generate_pem(Algorithm::Rsa, None).unwrap();
    let rsa = KeySlot {
        key: Arc::new(PrivateKey::from_pem(Algorithm::Rsa, &pem).unwrap()),
        ..slot("example.org", "rsa")
    };
    let mixed = Signer::new(vec![slot("example.com", "ed"), rsa], UnsignedPolicy::Allow);
    assert_eq!(mixed.cost(), crate::inspect::Cost::Heavy);
}
