//! Session-wide limits on commands that move no mail (junk), on RCPT
//! commands across transactions, and refused recipients as bad commands.

use super::*;

fn limited(junk: u32, rcpts: u32, bad: u32) -> Session {
    session_with(
        SessionConfig {
            max_junk_commands: junk,
            max_rcpt_commands: rcpts,
            max_bad_commands: bad,
            ..config()
        },
        TRUSTED,
        false,
    )
}

const TOO_MANY_ERRORS: &str = "421 4.7.0 relay.example.com Too many errors, closing connection\r\n";

#[test]
fn junk_beyond_the_limit_counts_as_bad_commands() {
    let mut s = limited(5, 1000, 2);
    send(&mut s, "EHLO client.example");
    for cmd in ["NOOP", "RSET", "HELP", "VRFY bob", "EHLO again.example"] {
        assert!(
            s.command(format!("{cmd}\r\n").as_bytes()).is_positive(),
            "{cmd}"
        );
    }
    // Junk 6 and 7 are still answered, as bad commands 1 and 2 ...
    assert_eq!(send(&mut s, "NOOP"), "250 2.0.0 Ok\r\n");
    assert!(send(&mut s, "HELO again").starts_with("250 "));
    // ... and the 8th is one bad command too many.
    let step = s.command(b"RSET\r\n");
    assert!(step.is_close());
    assert_eq!(wire(&step), TOO_MANY_ERRORS);
    assert!(s.is_closed());
}

#[test]
fn junk_and_errors_share_the_bad_command_budget() {
    let mut s = limited(1, 1000, 1);
    send(&mut s, "EHLO client.example");
    assert!(
        s.command(b"NOOP\r\n").is_positive(),
        "within the junk limit"
    );
    assert!(send(&mut s, "BOGUS").starts_with("500 "), "bad command 1");
    assert_eq!(wire(&s.command(b"NOOP\r\n")), TOO_MANY_ERRORS);
}

#[test]
fn expn_uses_the_junk_allowance_and_counts_once_as_bad() {
    let mut s = limited(2, 1000, 2);
    send(&mut s, "EHLO client.example");
    assert_eq!(
        send(&mut s, "EXPN staff"),
        "502 5.5.1 Command not implemented\r\n"
    );
    assert_eq!(
        send(&mut s, "EXPN staff"),
        "502 5.5.1 Command not implemented\r\n"
    );
    // Junk is used up and two bad commands are counted: any bad one closes.
    assert_eq!(wire(&s.command(b"NOOP\r\n")), TOO_MANY_ERRORS);
}

#[test]
fn first_hello_and_the_one_after_starttls_are_not_junk() {
    let mut s = session_with(
        SessionConfig {
            max_junk_commands: 0,
            max_bad_commands: 0,
            ..config()
        },
        STRANGER,
        false,
    );
    assert!(send(&mut s, "EHLO client.example").starts_with("250-"));
    assert!(matches!(s.command(b"STARTTLS\r\n"), Step::StartTls(_)));
    s.tls_started();
    assert!(send(&mut s, "EHLO client.example").starts_with("250-"));
    assert_eq!(
        wire(&s.command(b"EHLO client.example\r\n")),
        TOO_MANY_ERRORS
    );
}

#[test]
fn mail_transactions_are_not_junk() {
    let mut s = limited(1, 1000, 0);
    send(&mut s, "EHLO client.example");
    for _ in 0..50 {
        assert!(send(&mut s, "MAIL FROM:<a@example.com>").starts_with("250 "));
        assert!(send(&mut s, "RCPT TO:<b@example.com>").starts_with("250 "));
        let _ = queue(&mut s, b"x\r\n.\r\n");
        assert!(s.queued(Ok("ID".into())).is_positive());
    }
    assert!(s.command(b"NOOP\r\n").is_positive(), "the one junk command");
    assert!(s.command(b"NOOP\r\n").is_close());
}

#[test]
fn rcpt_commands_are_counted_across_transactions() {
    let mut s = limited(1000, 4, 20);
    send(&mut s, "EHLO client.example");
    // Without MAIL (503), after RSET, after EHLO: every RCPT counts.
    assert!(send(&mut s, "RCPT TO:<a@example.com>").starts_with("503 "));
    send(&mut s, "MAIL FROM:<a@example.com>");
    assert!(send(&mut s, "RCPT TO:<b@example.com>").starts_with("250 "));
    send(&mut s, "RSET");
    send(&mut s, "MAIL FROM:<a@example.com>");
    assert!(send(&mut s, "RCPT TO:<c@example.com>").starts_with("250 "));
    send(&mut s, "EHLO again.example");
    send(&mut s, "MAIL FROM:<a@example.com>");
    assert!(send(&mut s, "RCPT TO:<d@example.com>").starts_with("250 "));
    let step = s.command(b"RCPT TO:<e@example.com>\r\n");
    assert!(step.is_close());
    assert_eq!(
        wire(&step),
        "421 4.7.0 relay.example.com Too many RCPT commands in one session, closing connection\r\n"
    );
    assert!(s.is_closed());
}

#[test]
fn temporary_rcpt_refusals_count_as_bad_commands() {
    // max_recipients is 2 in the test config.
    let mut s = limited(1000, 1000, 2);
    send(&mut s, "EHLO client.example");
    send(&mut s, "MAIL FROM:<a@example.com>");
    send(&mut s, "RCPT TO:<a@example.com>");
    send(&mut s, "RCPT TO:<b@example.com>");
    for r in ["c", "d"] {
        assert_eq!(
            send(&mut s, &format!("RCPT TO:<{r}@example.com>")),
            "452 4.5.3 Too many recipients\r\n"
        );
    }
    assert!(
        send(&mut s, "RCPT TO:<a@example.com>").starts_with("250 "),
        "a duplicate is accepted, not counted"
    );
    assert_eq!(
        wire(&s.command(b"RCPT TO:<e@example.com>\r\n")),
        TOO_MANY_ERRORS
    );
}

#[test]
fn deferred_recipient_checks_count_as_bad_commands() {
    let rules = crate::validate::Settings {
        check_recipient_domain: true,
        ..Default::default()
    };
    let mut s = session_with(
        SessionConfig {
            validation: Arc::new(validate::Rules::new(&rules)),
            max_bad_commands: 1,
            ..config()
        },
        TRUSTED,
        false,
    );
    send(&mut s, "EHLO client.example");
    send(&mut s, "MAIL FROM:<a@example.com>");
    let deferred = || validate::CheckError::DnsUnavailable {
        domain: "dest.example".into(),
        reason: "timeout".into(),
    };
    assert!(matches!(
        s.command(b"RCPT TO:<a@dest.example>\r\n"),
        Step::CheckRecipient { .. }
    ));
    assert!(wire(&s.recipient_checked(Err(deferred()))).starts_with("450 4.4.3 "));
    assert!(matches!(
        s.command(b"RCPT TO:<b@dest.example>\r\n"),
        Step::CheckRecipient { .. }
    ));
    assert_eq!(wire(&s.recipient_checked(Err(deferred()))), TOO_MANY_ERRORS);
}

#[test]
fn session_duration_reply() {
    let mut s = session(STRANGER, false);
    assert_eq!(
        s.expired().to_bytes(),
        b"421 4.4.2 relay.example.com Maximum session duration exceeded, closing connection\r\n"
    );
    assert!(s.is_closed());
}
