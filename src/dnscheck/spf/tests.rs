use super::super::fake::{FakeDns, block_on};
use super::*;

fn statuses(f: &[Finding]) -> Vec<(String, Status)> {
    f.iter().map(|f| (f.check.clone(), f.status)).collect()
}

#[test]
fn parses_terms_and_counts_lookups() {
    let t = parse("v=spf1 ip4:192.0.2.0/24 ip6:2001:db8::/32 a mx:mx.example/24 include:x.example ~all redirect=y.example exp=e.example").unwrap();
    assert_eq!(lookups(&t), 4);
    assert_eq!(delegates(&t), ["x.example", "y.example"]);
    for bad in [
        "v=spf1 include",
        "v=spf1 ip4:300.0.0.1",
        "v=spf1 foo:bar",
        "v=spf1 all:x",
        "v=spf2 -all",
        "v=spf1 -ip6:192.0.2.1",
    ] {
        assert!(parse(bad).is_err(), "{bad}");
    }
}

#[test]
fn nested_includes_count_and_authorize() {
    let mut dns = FakeDns::default()
        .with("example.com", "v=spf1 include:_spf.example.com -all")
        .with("example.com", "google-site-verification=abc")
        .with(
            "_spf.example.com",
            "v=spf1 include:amazonses.com include:gone.example a mx ~all",
        )
        .with("amazonses.com", "v=spf1 ip4:199.255.192.0/22 -all");
    dns.broken.push("gone.example".into());
    let ups: Vec<(String, Kind)> = [
        ("ses", Kind::Ses),
        ("graph", Kind::Msgraph),
        ("api", Kind::Http),
    ]
    .iter()
    .map(|(n, k)| (n.to_string(), *k))
    .collect();
    let f = block_on(check(&dns, "example.com", &ups));
    assert_eq!(
        statuses(&f),
        [
            ("spf".into(), Status::Pass),
            ("spf-syntax".into(), Status::Pass),
            ("spf-lookups".into(), Status::Warn),
            ("spf-all".into(), Status::Pass),
            ("spf-upstream".into(), Status::Pass),
            ("spf-upstream".into(), Status::Fail),
        ]
    );
    assert!(
        f[2].detail
            .starts_with("5 DNS-querying terms (1 in the record, 4 in included records"),
        "{}",
        f[2]
    );
    assert!(
        f[2].detail
            .contains("cannot look up gone.example: SERVFAIL"),
        "{}",
        f[2]
    );
    assert_eq!(
        f[5].fix.as_deref(),
        Some("add include:spf.protection.outlook.com before the all mechanism")
    );
}

#[test]
fn each_failure_is_reported() {
    let run = |records: &[&str]| {
        let mut dns = FakeDns::default();
        for r in records {
            dns = dns.with("d.example", r);
        }
        block_on(check(&dns, "d.example", &[]))
    };
    let f = run(&[]);
    assert_eq!(statuses(&f), [("spf".into(), Status::Fail)]);
    assert!(
        f[0].fix
            .as_deref()
            .unwrap()
            .contains("d.example. IN TXT \"v=spf1 -all\"")
    );
    assert_eq!(
        statuses(&run(&["v=spf1 -all", "v=spf1 ~all"])),
        [("spf".into(), Status::Fail)]
    );
    let f = run(&["v=spf1 bogus -all"]);
    assert_eq!(
        f[1].to_string().split(" [fix").next(),
        Some("FAIL spf-syntax: unknown mechanism \"bogus\"")
    );
    let many = format!("v=spf1 {}-all", "a ".repeat(11));
    assert_eq!(run(&[&many])[2].status, Status::Fail);
    assert_eq!(run(&["v=spf1 +all"])[3].status, Status::Warn);
    assert_eq!(run(&["v=spf1 mx ?all"])[3].status, Status::Warn);
    assert_eq!(run(&["v=spf1 mx"])[3].status, Status::Warn);
    assert_eq!(run(&["v=spf1 redirect=x.example"])[3].status, Status::Pass);
}
