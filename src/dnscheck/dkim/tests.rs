use super::super::fake::{FakeDns, block_on};
use super::*;
use crate::dkim::{Algorithm, PrivateKey};
use std::sync::Arc;

fn key(selector: &str, algorithm: Algorithm) -> Key {
    let pem = crate::dkim::generate_pem(algorithm, None).unwrap();
    Key {
        domain: "example.com".into(),
        selector: selector.into(),
        algorithm,
        key: Arc::new(PrivateKey::from_pem(algorithm, &pem).unwrap()),
        not_before: None,
        not_after: None,
    }
}

#[test]
fn matching_missing_wrong_and_revoked_keys() {
    let good = key("ed", Algorithm::Ed25519);
    let other = key("ed", Algorithm::Ed25519);
    let run = |record: Option<String>| {
        let mut dns = FakeDns::default();
        if let Some(r) = record {
            dns = dns.with("ed._domainkey.example.com", &r);
        }
        block_on(check(&dns, "example.com", std::slice::from_ref(&good))).remove(0)
    };
    let f = run(Some(good.key.dns_record()));
    assert_eq!(f.status, Status::Pass, "{f}");
    assert_eq!(
        f.detail,
        "selector ed (ed25519): ed._domainkey.example.com publishes the configured key"
    );
    let f = run(None);
    assert_eq!(f.status, Status::Fail);
    assert!(
        f.fix
            .as_deref()
            .unwrap()
            .starts_with("publish ed._domainkey.example.com. IN TXT")
    );
    let f = run(Some(other.key.dns_record()));
    assert!(
        f.detail
            .ends_with("does not match the configured private key"),
        "{f}"
    );
    assert!(
        run(Some("v=DKIM1; k=ed25519; p=".into()))
            .detail
            .contains("revoked")
    );
    assert!(run(Some("v=DKIM1; p=AAAA".into())).detail.contains("k=rsa"));
    assert_eq!(
        run(Some(format!("{}; t=y", good.key.dns_record()))).status,
        Status::Warn
    );
    let none = block_on(check(&FakeDns::default(), "example.com", &[]));
    assert_eq!(none[0].status, Status::Warn);
}

#[test]
fn rsa_accepts_spki_or_pkcs1_publication() {
    let k = key("rsa", Algorithm::Rsa);
    let spki = k.key.public_key();
    assert!(same_key(spki, spki));
    // SPKI header for a 2048-bit key is 24 bytes; the rest is PKCS#1.
    assert!(same_key(spki, &spki[24..]));
    assert!(!same_key(spki, &spki[30..]));
}
