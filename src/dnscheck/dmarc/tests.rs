use super::super::fake::{FakeDns, block_on};
use super::*;

fn run(dns: FakeDns, domain: &str) -> Vec<String> {
    block_on(check(&dns, domain))
        .iter()
        .map(|f| format!("{} {}", f.status, f.check))
        .collect()
}

#[test]
fn good_weak_missing_and_inherited_records() {
    let good = FakeDns::default().with(
        "_dmarc.example.com",
        "v=DMARC1; p=reject; rua=mailto:d@example.com; adkim=s",
    );
    assert_eq!(
        run(good, "example.com"),
        [
            "PASS dmarc",
            "PASS dmarc-policy",
            "PASS dmarc-rua",
            "PASS dmarc-alignment"
        ]
    );
    let weak = FakeDns::default().with("_dmarc.example.com", "v=DMARC1; p=none; pct=50");
    assert_eq!(
        run(weak, "example.com"),
        [
            "PASS dmarc",
            "WARN dmarc-policy",
            "WARN dmarc-policy",
            "WARN dmarc-rua",
            "PASS dmarc-alignment"
        ]
    );
    let f = block_on(check(
        &FakeDns::default().with("_dmarc.example.com", "v=spf1 -all"),
        "example.com",
    ));
    assert_eq!(f.len(), 1);
    assert_eq!(f[0].status, Status::Fail);
    assert!(
        f[0].fix
            .as_deref()
            .unwrap()
            .contains("_dmarc.example.com. IN TXT \"v=DMARC1; p=quarantine;")
    );
    let parent = FakeDns::default().with(
        "_dmarc.example.com",
        "v=DMARC1; p=none; sp=quarantine; rua=mailto:x@example.com",
    );
    let f = block_on(check(&parent, "mail.example.com"));
    assert!(f[0].detail.contains("inherits"), "{}", f[0]);
    assert_eq!(
        f[1].to_string(),
        "PASS dmarc-policy: sp=quarantine: failing mail is quarantined"
    );
    let two = FakeDns::default()
        .with("_dmarc.example.com", "v=DMARC1; p=reject")
        .with("_dmarc.example.com", "v=DMARC1; p=none");
    assert_eq!(run(two, "example.com"), ["FAIL dmarc"]);
    let bad = FakeDns::default().with("_dmarc.example.com", "v=DMARC1; p=maybe");
    assert_eq!(run(bad, "example.com")[1], "FAIL dmarc-policy");
}
