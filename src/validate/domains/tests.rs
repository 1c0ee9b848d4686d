use super::*;

#[test]
fn exact_and_subdomain_patterns() {
    let exact = DomainPattern::parse("Example.COM").unwrap();
    assert!(exact.matches("example.com"));
    assert!(!exact.matches("mail.example.com"));
    assert!(!exact.matches("badexample.com"));
    let sub = DomainPattern::parse(" *.example.com ").unwrap();
    assert_eq!(sub.to_string(), "*.example.com");
    assert!(sub.matches("mail.example.com"));
    assert!(sub.matches("a.b.example.com"));
    assert!(!sub.matches("example.com"));
    assert!(!sub.matches("badexample.com"));
    let idn = DomainPattern::parse("*.bücher.example").unwrap();
    assert!(idn.matches("shop.xn--bcher-kva.example"));
}

#[test]
fn bad_patterns_are_explained() {
    for bad in [
        "",
        "*",
        "ex*mple.com",
        "*.*.example.com",
        "a..b",
        "*example.com",
        "@x.com",
    ] {
        let e = DomainPattern::parse(bad).unwrap_err();
        assert!(e.contains("invalid domain pattern"), "{bad}: {e}");
    }
}
