use super::*;

fn rules(allowed: &[&str], denied: &[&str]) -> Rules {
    let p = |l: &[&str]| l.iter().map(|p| DomainPattern::parse(p).unwrap()).collect();
    Rules {
        allowed: p(allowed),
        denied: p(denied),
        ..Rules::default()
    }
}

fn name(d: &str) -> Domain {
    Domain::Name(d.to_string())
}

#[test]
fn denied_wins_and_empty_allow_list_allows_all() {
    let open = rules(&[], &["*.bad.example"]);
    assert_eq!(open.check_domain(&name("example.org")), Ok(()));
    assert_eq!(
        open.check_domain(&name("x.bad.example")),
        Err(PolicyError::Denied {
            domain: "x.bad.example".into()
        })
    );
    let closed = rules(&["example.com", "*.example.com"], &["secret.example.com"]);
    assert_eq!(closed.check_domain(&name("example.com")), Ok(()));
    assert_eq!(closed.check_domain(&name("mail.example.com")), Ok(()));
    assert!(matches!(
        closed.check_domain(&name("secret.example.com")),
        Err(PolicyError::Denied { .. })
    ));
    let literal = Domain::Literal("192.0.2.1".parse().unwrap());
    assert_eq!(
        closed.check_domain(&literal).unwrap_err().to_string(),
        "recipient domain [192.0.2.1] is not in allowed_recipient_domains"
    );
    assert_eq!(open.check_domain(&literal), Ok(()));
}
