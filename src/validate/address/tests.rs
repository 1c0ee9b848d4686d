use super::*;

fn ok(raw: &str) -> String {
    match parse_path(raw.as_bytes()) {
        Ok(Path::Mailbox(a)) => a.to_string(),
        Ok(Path::Null) => String::new(),
        Err(e) => panic!("{raw}: {e}"),
    }
}

fn err(raw: &str) -> AddressError {
    match parse_path(raw.as_bytes()) {
        Err(e) => e,
        Ok(p) => panic!("{raw} accepted as {p:?}"),
    }
}

#[test]
fn accepts_rfc5321_forms() {
    assert_eq!(ok("<>"), "");
    assert_eq!(ok("<a@example.com>"), "a@example.com");
    assert_eq!(
        ok("<First.Last+tag@Sub.Example.COM>"),
        "First.Last+tag@sub.example.com"
    );
    assert_eq!(ok("<o'brien/x=y@example.com>"), "o'brien/x=y@example.com");
    assert_eq!(ok("<\"john doe\"@example.com>"), "\"john doe\"@example.com");
    assert_eq!(ok("<\"a\\\"b@c\"@example.com>"), "\"a\\\"b@c\"@example.com");
    assert_eq!(ok("<a@[192.0.2.1]>"), "a@[192.0.2.1]");
    assert_eq!(ok("<a@[ipv6:2001:DB8::1]>"), "a@[IPv6:2001:db8::1]");
    assert_eq!(ok("<a@localhost>"), "a@localhost");
}

#[test]
fn idna_becomes_a_labels() {
    assert_eq!(ok("<user@bücher.example>"), "user@xn--bcher-kva.example");
    assert_eq!(ok("<user@BÜCHER.example>"), "user@xn--bcher-kva.example");
    assert_eq!(
        ok("<user@xn--bcher-kva.example>"),
        "user@xn--bcher-kva.example"
    );
    assert_eq!(ok("<üser@example.com>"), "üser@example.com");
    assert!(matches!(
        err("<a@xn--zz-.example>"),
        AddressError::Domain(_)
    ));
    assert!(matches!(
        err("<a@\u{200b}x.example>"),
        AddressError::Domain(_)
    ));
    assert!(matches!(
        err("<a@ｅｘａｍｐｌｅ.com>"),
        AddressError::Domain(_)
    ));
    assert!(matches!(
        err("<a@bu\u{308}cher.example>"),
        AddressError::Domain(_)
    ));
    assert!(matches!(err("<a@-bad.example>"), AddressError::Domain(_)));
}

#[test]
fn rejects_routing_tricks() {
    assert_eq!(
        err("<@relay.example:user@example.com>"),
        AddressError::SourceRoute
    );
    assert_eq!(err("<@a,@b:user@example.com>"), AddressError::SourceRoute);
    assert_eq!(
        err("<user%other.example@relay.example>"),
        AddressError::PercentHack
    );
    assert_eq!(err("<\"user%x\"@relay.example>"), AddressError::PercentHack);
    assert_eq!(err("<host!user@relay.example>"), AddressError::BangPath);
}

#[test]
fn rejects_bad_syntax_with_a_reason() {
    assert_eq!(err("<postmaster>"), AddressError::NoDomain);
    assert_eq!(err("<user@>"), AddressError::Domain("empty domain".into()));
    assert!(matches!(
        err("<.a@example.com>"),
        AddressError::LocalPart(_)
    ));
    assert!(matches!(
        err("<a..b@example.com>"),
        AddressError::LocalPart(_)
    ));
    assert!(matches!(
        err("<a b@example.com>"),
        AddressError::LocalPart(_)
    ));
    assert!(matches!(
        err("<\"ab@example.com>"),
        AddressError::LocalPart(_)
    ));
    assert!(matches!(
        err("<\"\"@example.com>"),
        AddressError::LocalPart(_)
    ));
    assert!(matches!(
        err("<a\u{1}@example.com>"),
        AddressError::LocalPart(_)
    ));
    assert!(matches!(err("<a@exa_mple.com>"), AddressError::Domain(_)));
    assert!(matches!(err("<a@example.com.>"), AddressError::Domain(_)));
    assert!(matches!(err("<a@1.2.3.4>"), AddressError::Domain(_)));
    assert_eq!(
        err("<a@b@example.com>"),
        AddressError::Domain("character '@' is not allowed in a domain".into())
    );
    assert!(matches!(err("<a@[300.1.1.1]>"), AddressError::Literal(_)));
    assert!(matches!(err("<a@[x400:foo]>"), AddressError::Literal(_)));
    assert!(matches!(err("<a@[192.0.2.1>"), AddressError::Literal(_)));
    assert_eq!(err("a@example.com"), AddressError::NoBrackets);
    assert_eq!(
        parse_path(b"<a\xff@example.com>"),
        Err(AddressError::NotUtf8)
    );
}

#[test]
fn length_limits() {
    let local64 = "l".repeat(64);
    assert!(ok(&format!("<{local64}@example.com>")).starts_with(&local64));
    assert_eq!(
        err(&format!("<{local64}l@example.com>")),
        AddressError::LocalPartTooLong
    );
    let label = "d".repeat(63);
    assert!(matches!(
        err(&format!("<a@{}x.example>", label)),
        AddressError::Domain(_)
    ));
    // 4 labels of 63 = 255 octets: a legal name, but the path is too long.
    let long = [label.as_str(); 4].join(".");
    assert_eq!(err(&format!("<a@{long}>")), AddressError::PathTooLong);
    let fits = format!(
        "<{}@{}.{}.{}.example>",
        "l".repeat(61),
        label,
        label,
        "d".repeat(56)
    );
    assert_eq!(fits.len(), 256);
    assert!(parse_path(fits.as_bytes()).is_ok());
    let over = format!(
        "<{}@{}.{}.{}.example>",
        "l".repeat(62),
        label,
        label,
        "d".repeat(56)
    );
    assert_eq!(err(&over), AddressError::PathTooLong);
    // Short as U-labels, too long as A-labels.
    let wide = format!("<{}@{}example>", "l".repeat(60), "ü.".repeat(30));
    assert!(wide.len() <= MAX_PATH);
    assert_eq!(err(&wide), AddressError::PathTooLong);
}
