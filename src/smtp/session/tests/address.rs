//! Address validation in MAIL/RCPT: syntax from the raw bytes, IDNA in
//! the stored envelope, domain patterns, and the asynchronous check step.

use super::*;
use crate::validate::Settings as ValidationConfig;
use crate::validate::{CheckError, DomainPattern};

fn rules(allowed: &[&str], denied: &[&str], check: bool) -> Arc<validate::Rules> {
    let p = |l: &[&str]| l.iter().map(|p| DomainPattern::parse(p).unwrap()).collect();
    Arc::new(validate::Rules::new(&ValidationConfig {
        allowed_recipient_domains: p(allowed),
        denied_recipient_domains: p(denied),
        check_recipient_domain: check,
        ..Default::default()
    }))
}

/// Network-trusted session past MAIL FROM, with `rules`.
fn in_transaction(rules: Arc<validate::Rules>, mail: &str) -> Session {
    let mut s = session_with(
        SessionConfig {
            validation: rules,
            max_recipients: 3,
            ..config()
        },
        TRUSTED,
        false,
    );
    send(&mut s, "EHLO client.example");
    assert!(send(&mut s, mail).starts_with("250 "), "{mail}");
    s
}

#[test]
fn bad_recipient_syntax_is_501_5_1_3_with_the_reason() {
    let mut s = in_transaction(Arc::default(), "MAIL FROM:<a@example.com>");
    for (rcpt, reason) in [
        (
            "<@relay.example,@b.example:user@example.com>",
            "source routes (<@host,...:user@domain>) are not accepted",
        ),
        (
            "<user%elsewhere.example@example.com>",
            "'%' in the local part (percent-hack routing) is not accepted",
        ),
        (
            "<elsewhere!user@example.com>",
            "'!' in the local part (UUCP bang path) is not accepted",
        ),
        ("<postmaster>", "address has no @domain"),
        (
            "<a..b@example.com>",
            "invalid local part: leading, trailing or consecutive dots (quote it if you must)",
        ),
        (
            "<a@exam_ple.com>",
            "invalid domain: character '_' is not allowed in a domain",
        ),
        (
            "<a@[10.0.0.300]>",
            "invalid address literal: not an IPv4 address",
        ),
    ] {
        assert_eq!(
            send(&mut s, &format!("RCPT TO:{rcpt}")),
            format!("501 5.1.3 Invalid recipient address: {reason}\r\n"),
            "{rcpt}"
        );
    }
    let long = format!("RCPT TO:<{}@example.com>", "l".repeat(65));
    assert_eq!(
        send(&mut s, &long),
        "501 5.1.3 Invalid recipient address: local part is longer than 64 octets\r\n"
    );
    assert_eq!(
        send(&mut s, "RCPT TO:<>"),
        "501 5.1.3 Empty recipient address not allowed\r\n"
    );
    assert_eq!(
        send(&mut s, "RCPT TO:<unterminated@example.com"),
        "501 5.5.4 Syntax: RCPT TO:<forward-path> [parameters]\r\n"
    );
    assert_eq!(send(&mut s, "DATA"), "554 5.5.1 No valid recipients\r\n");
}

#[test]
fn bad_sender_syntax_is_501_5_1_7() {
    let mut s = session(TRUSTED, false);
    send(&mut s, "EHLO client.example");
    assert_eq!(
        send(&mut s, "MAIL FROM:<@hop.example:a@example.com>"),
        "501 5.1.3 Invalid sender address: source routes (<@host,...:user@domain>) are not accepted\r\n"
    );
    assert_eq!(
        send(&mut s, "MAIL FROM:<a@example.com.>"),
        "501 5.1.3 Invalid sender address: invalid domain: empty label (leading, trailing or double dot)\r\n"
    );
    assert!(send(&mut s, "RCPT TO:<b@example.com>").starts_with("503"));
}

#[test]
fn literals_quoted_parts_and_idna_reach_the_envelope_normalized() {
    let quoted_allowed = Arc::new(validate::Rules::new(&ValidationConfig {
        allow_quoted_local_parts: true,
        ..Default::default()
    }));
    let mut s = in_transaction(quoted_allowed, "MAIL FROM:<App@Bücher.Example> SMTPUTF8");
    assert_eq!(
        send(&mut s, "RCPT TO:<user@bücher.example>"),
        "250 2.1.5 Recipient <user@xn--bcher-kva.example> ok\r\n"
    );
    assert_eq!(
        send(&mut s, "RCPT TO:<\"john doe\"@[IPv6:2001:DB8::1]>"),
        "250 2.1.5 Recipient <\"john doe\"@[IPv6:2001:db8::1]> ok\r\n"
    );
    assert_eq!(
        send(&mut s, "RCPT TO:<user@XN--BCHER-KVA.example>"),
        "250 2.1.5 Recipient <user@xn--bcher-kva.example> ok\r\n",
        "same mailbox: not added twice"
    );
    assert_eq!(
        send(&mut s, "RCPT TO:<ops@[192.0.2.1]>"),
        "250 2.1.5 Recipient <ops@[192.0.2.1]> ok\r\n"
    );
    let tx = queue(&mut s, b"x\r\n.\r\n");
    assert_eq!(tx.mail_from, "App@xn--bcher-kva.example");
    assert_eq!(
        tx.rcpt_to,
        [
            "user@xn--bcher-kva.example",
            "\"john doe\"@[IPv6:2001:db8::1]",
            "ops@[192.0.2.1]"
        ]
    );
    let mut ascii = in_transaction(Arc::default(), "MAIL FROM:<a@example.com>");
    assert_eq!(
        send(&mut ascii, "RCPT TO:<user@bücher.example>"),
        "553 5.6.7 Non-ASCII address requires SMTPUTF8\r\n"
    );
}

#[test]
fn quoted_local_parts_that_could_split_a_list_are_553_by_default() {
    let mut s = in_transaction(
        rules(&["allowed.example"], &[], false),
        "MAIL FROM:<a@example.com>",
    );
    for rcpt in [
        "\"x, evil@attacker.example, y\"@allowed.example",
        "\"john doe\"@allowed.example",
        "\"a;b\"@allowed.example",
        "\"a<b>\"@allowed.example",
        "\"a:b\"@allowed.example",
        "\"a\\\"b\"@allowed.example",
    ] {
        assert_eq!(
            send(&mut s, &format!("RCPT TO:<{rcpt}>")),
            format!(
                "553 5.1.3 Recipient <{rcpt}> not accepted: quoted local parts may not contain spaces or any of , @ < > ; : \\\r\n"
            ),
        );
    }
    // Quoting that a list parser cannot misread stays allowed.
    assert_eq!(
        send(&mut s, "RCPT TO:<\"john.doe\"@allowed.example>"),
        "250 2.1.5 Recipient <\"john.doe\"@allowed.example> ok\r\n"
    );
}

#[test]
fn domain_patterns_answer_550_5_7_1_naming_the_domain() {
    let mut s = in_transaction(
        rules(
            &["example.com", "*.bücher.example"],
            &["secret.bücher.example"],
            false,
        ),
        "MAIL FROM:<a@example.com> SMTPUTF8",
    );
    assert!(send(&mut s, "RCPT TO:<b@example.com>").starts_with("250 "));
    assert!(send(&mut s, "RCPT TO:<b@shop.bücher.example>").starts_with("250 "));
    assert_eq!(
        send(&mut s, "RCPT TO:<b@example.org>"),
        "550 5.7.1 Recipient <b@example.org> not accepted: recipient domain example.org is not in allowed_recipient_domains\r\n"
    );
    assert_eq!(
        send(&mut s, "RCPT TO:<b@secret.bücher.example>"),
        "550 5.7.1 Recipient <b@secret.xn--bcher-kva.example> not accepted: recipient domain secret.xn--bcher-kva.example is denied by policy\r\n"
    );
    assert_eq!(
        send(&mut s, "RCPT TO:<b@[192.0.2.1]>"),
        "550 5.7.1 Recipient <b@[192.0.2.1]> not accepted: recipient domain [192.0.2.1] is not in allowed_recipient_domains\r\n"
    );
    let tx = queue(&mut s, b"x\r\n.\r\n");
    assert_eq!(
        tx.rcpt_to,
        ["b@example.com", "b@shop.xn--bcher-kva.example"]
    );
}

fn check_step(s: &mut Session, line: &str) -> Address {
    match s.command(format!("{line}\r\n").as_bytes()) {
        Step::CheckRecipient { address } => address,
        other => panic!("{line}: expected CheckRecipient, got {other:?}"),
    }
}

#[test]
fn async_checks_map_to_exact_replies() {
    let mut s = in_transaction(
        rules(&[], &["denied.example"], true),
        "MAIL FROM:<a@example.com> SMTPUTF8",
    );
    // Pure checks still answer without a round trip.
    assert!(send(&mut s, "RCPT TO:<x@denied.example>").starts_with("550 5.7.1 "));
    assert!(send(&mut s, "RCPT TO:<x%y@example.com>").starts_with("501 5.1.3 "));
    let domain = |d: &str| d.to_string();
    let cases = [
        (
            CheckError::NoSuchDomain {
                domain: domain("nx.example"),
            },
            "550 5.1.2 Recipient <u@nx.example> rejected: domain nx.example does not exist",
        ),
        (
            CheckError::NoMailHost {
                domain: domain("nx.example"),
            },
            "550 5.1.2 Recipient <u@nx.example> rejected: domain nx.example has no MX or A/AAAA records",
        ),
        (
            CheckError::NullMx {
                domain: domain("nx.example"),
            },
            "556 5.1.10 Recipient <u@nx.example> rejected: domain nx.example does not accept mail (null MX)",
        ),
        (
            CheckError::DnsUnavailable {
                domain: domain("nx.example"),
                reason: "request timed out".into(),
            },
            "450 4.4.3 Recipient <u@nx.example> deferred: cannot look up domain nx.example: request timed out; try again later",
        ),
        (
            CheckError::Invalid {
                reason: "mailbox unknown".into(),
            },
            "550 5.1.1 Recipient <u@nx.example> rejected: mailbox unknown",
        ),
        (
            CheckError::HookUnavailable {
                reason: "HTTP 503".into(),
            },
            "451 4.4.3 Recipient <u@nx.example> deferred: recipient verification is unavailable: HTTP 503; try again later",
        ),
    ];
    for (error, reply) in cases {
        let address = check_step(&mut s, "RCPT TO:<u@NX.example>");
        assert_eq!(address.to_string(), "u@nx.example");
        assert_eq!(
            wire(&s.recipient_checked(Err(error))),
            format!("{reply}\r\n")
        );
    }
    assert_eq!(send(&mut s, "DATA"), "554 5.5.1 No valid recipients\r\n");
    let address = check_step(&mut s, "RCPT TO:<ok@bücher.example>");
    assert_eq!(address.domain_name(), Some("xn--bcher-kva.example"));
    assert_eq!(
        wire(&s.recipient_checked(Ok(()))),
        "250 2.1.5 Recipient <ok@xn--bcher-kva.example> ok\r\n"
    );
    assert_eq!(
        send(&mut s, "RCPT TO:<ok@xn--bcher-kva.example>"),
        "250 2.1.5 Recipient <ok@xn--bcher-kva.example> ok\r\n",
        "an accepted recipient is not checked again"
    );
    let tx = queue(&mut s, b"x\r\n.\r\n");
    assert_eq!(tx.rcpt_to, ["ok@xn--bcher-kva.example"]);
}

#[test]
fn recipient_limit_applies_before_the_check_and_results_out_of_phase_close() {
    let mut s = in_transaction(rules(&[], &[], true), "MAIL FROM:<a@example.com>");
    for n in 0..3 {
        check_step(&mut s, &format!("RCPT TO:<r{n}@example.com>"));
        assert!(s.recipient_checked(Ok(())).is_positive());
    }
    assert_eq!(
        send(&mut s, "RCPT TO:<r9@example.com>"),
        "452 4.5.3 Too many recipients\r\n"
    );
    assert!(
        send(&mut s, "RCPT TO:<r0@example.com>").starts_with("250 "),
        "duplicate"
    );
    let mut s = in_transaction(rules(&[], &[], true), "MAIL FROM:<a@example.com>");
    check_step(&mut s, "RCPT TO:<r@example.com>");
    assert!(
        s.command(b"RCPT TO:<q@example.com>\r\n").is_close(),
        "a command while checking is a listener bug"
    );
    let mut s = in_transaction(rules(&[], &[], true), "MAIL FROM:<a@example.com>");
    assert!(
        s.recipient_checked(Ok(())).is_close(),
        "nothing was being checked"
    );
}
