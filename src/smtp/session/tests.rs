//! Unit tests of the session state machine, driven without any I/O.

use super::*;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use std::net::Ipv4Addr;

mod address;
mod auth;
mod limits;
mod relay;
mod scopes;
mod shared;

const TRUSTED: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 168, 10, 7));
const STRANGER: IpAddr = IpAddr::V4(Ipv4Addr::new(203, 0, 113, 9));

/// Trusts TRUSTED as "scanners"; forbids senders at forbidden.example.
struct FakePolicy;

impl Policy for FakePolicy {
    fn network_credential(&self, peer: IpAddr) -> Option<Arc<str>> {
        (peer == TRUSTED).then(|| Arc::from("scanners"))
    }
    fn check_sender(&self, credential: &str, mail_from: &str) -> Result<(), String> {
        if mail_from.ends_with("@forbidden.example") {
            Err(format!(
                "Sender <{mail_from}> not allowed for credential \"{credential}\""
            ))
        } else {
            Ok(())
        }
    }
}

fn config() -> SessionConfig {
    SessionConfig {
        hostname: "relay.example.com".into(),
        max_message_size: 1000,
        max_recipients: 2,
        max_bad_commands: 20,
        max_junk_commands: 100,
        max_rcpt_commands: 1000,
        starttls: true,
        bare_newline: BareNewline::Reject,
        max_auth_attempts: Some(3),
        validation: Arc::default(),
    }
}

/// What the access layer answers for a good login.
fn granted(credential: &str) -> Result<Grant, Reply> {
    Ok(Grant::named(credential))
}

/// What the access layer answers for a bad password.
fn refused() -> Result<Grant, Reply> {
    Err(Reply::new(
        535,
        "5.7.8",
        "Authentication credentials invalid",
    ))
}

fn session_with(cfg: SessionConfig, peer: IpAddr, tls: bool) -> Session {
    Session::new(Arc::new(cfg), Arc::new(FakePolicy), peer, tls)
}

fn session(peer: IpAddr, tls: bool) -> Session {
    session_with(config(), peer, tls)
}

fn wire(step: &Step) -> String {
    let reply = match step {
        Step::Reply(r) | Step::Close(r) | Step::StartTls(r) | Step::Data(r) => r,
        other => panic!("expected a reply, got {other:?}"),
    };
    String::from_utf8(reply.to_bytes()).expect("replies are UTF-8")
}

/// Sends a command and returns the written reply.
fn send(s: &mut Session, line: &str) -> String {
    wire(&s.command(format!("{line}\r\n").as_bytes()))
}

fn b64(s: &[u8]) -> String {
    BASE64.encode(s)
}

/// EHLO + AUTH PLAIN over TLS, accepted as "erp".
fn authenticated() -> Session {
    let mut s = session(STRANGER, true);
    send(&mut s, "EHLO client.example");
    let step = s.command(format!("AUTH PLAIN {}\r\n", b64(b"\0erp\0pw")).as_bytes());
    assert!(matches!(step, Step::Auth { .. }), "{step:?}");
    assert_eq!(
        wire(&s.auth_result(granted("erp"))),
        "235 2.7.0 Authentication successful\r\n"
    );
    s
}

fn queue(s: &mut Session, data: &[u8]) -> Transaction {
    assert_eq!(send(s, "DATA"), "354 End data with <CR><LF>.<CR><LF>\r\n");
    let mut d = s.new_data_decoder();
    d.feed(data);
    match s.data_finished(d.finish()) {
        Step::Queue(tx) => *tx,
        other => panic!("expected Queue, got {other:?}"),
    }
}

#[test]
fn greeting_and_helo_have_no_enhanced_code() {
    let mut s = session(STRANGER, false);
    assert_eq!(
        s.greeting().to_bytes(),
        b"220 relay.example.com ESMTP postern\r\n"
    );
    assert_eq!(send(&mut s, "HELO client"), "250 relay.example.com\r\n");
}

#[test]
fn ehlo_before_tls_offers_starttls_not_auth() {
    let mut s = session(STRANGER, false);
    assert_eq!(
        send(&mut s, "EHLO client.example"),
        "250-relay.example.com\r\n250-PIPELINING\r\n250-SIZE 1000\r\n250-8BITMIME\r\n\
         250-SMTPUTF8\r\n250-ENHANCEDSTATUSCODES\r\n250 STARTTLS\r\n"
    );
    let mut plain = session_with(
        SessionConfig {
            starttls: false,
            ..config()
        },
        STRANGER,
        false,
    );
    let ehlo = send(&mut plain, "EHLO client.example");
    assert!(ehlo.ends_with("250 ENHANCEDSTATUSCODES\r\n"), "{ehlo}");
    assert!(!ehlo.contains("AUTH") && !ehlo.contains("STARTTLS"));
}

#[test]
fn ehlo_without_domain_or_with_garbage() {
    let mut s = session(STRANGER, false);
    assert_eq!(send(&mut s, "EHLO"), "501 5.5.4 Syntax: EHLO domain\r\n");
    assert_eq!(
        send(&mut s, "EHLO a\x01b"),
        "501 5.5.4 Invalid domain in EHLO/HELO\r\n"
    );
}

#[test]
fn starttls_then_state_is_forgotten() {
    let mut s = session(TRUSTED, false);
    send(&mut s, "EHLO client.example");
    assert!(send(&mut s, "MAIL FROM:<a@example.com>").starts_with("250 2.1.0"));
    let step = s.command(b"STARTTLS\r\n");
    assert!(matches!(step, Step::StartTls(_)));
    assert_eq!(wire(&step), "220 2.0.0 Ready to start TLS\r\n");
    s.tls_started();
    assert!(s.tls_active());
    assert_eq!(
        send(&mut s, "MAIL FROM:<a@example.com>"),
        "503 5.5.1 Send EHLO/HELO first\r\n"
    );
    send(&mut s, "EHLO client.example");
    assert!(
        send(&mut s, "RCPT TO:<b@example.com>").starts_with("503 5.5.1"),
        "transaction forgotten"
    );
    assert_eq!(send(&mut s, "STARTTLS"), "503 5.5.1 TLS already active\r\n");
    let mut off = session_with(
        SessionConfig {
            starttls: false,
            ..config()
        },
        STRANGER,
        false,
    );
    assert_eq!(
        send(&mut off, "STARTTLS"),
        "503 5.5.1 STARTTLS not offered\r\n"
    );
}

#[test]
fn mail_needs_hello_and_a_credential() {
    let mut s = session(STRANGER, false);
    assert_eq!(
        send(&mut s, "MAIL FROM:<a@example.com>"),
        "503 5.5.1 Send EHLO/HELO first\r\n"
    );
    send(&mut s, "EHLO client.example");
    assert_eq!(
        send(&mut s, "MAIL FROM:<a@example.com>"),
        "530 5.7.0 Authentication required (STARTTLS, then AUTH)\r\n"
    );
}

#[test]
fn mail_with_network_trust_and_sender_policy() {
    let mut s = session(TRUSTED, false);
    send(&mut s, "HELO scanner");
    assert_eq!(
        send(&mut s, "MAIL FROM:<x@forbidden.example>"),
        "550 5.7.1 Sender <x@forbidden.example> not allowed for credential \"scanners\"\r\n"
    );
    assert_eq!(
        send(&mut s, "MAIL FROM:<a@example.com> SIZE=1001"),
        "552 5.3.4 Message size exceeds fixed maximum message size\r\n"
    );
    assert_eq!(
        send(&mut s, "MAIL FROM:<a@example.com> FOO=bar"),
        "555 5.5.4 Unsupported parameter FOO=BAR\r\n"
    );
    assert_eq!(
        send(&mut s, "MAIL FROM:<a@example.com> BODY=BINARYMIME"),
        "555 5.5.4 BODY=BINARYMIME not supported\r\n"
    );
    assert_eq!(
        send(&mut s, "MAIL FROM:<üser@example.com>"),
        "553 5.6.7 Non-ASCII address requires SMTPUTF8\r\n"
    );
    assert_eq!(
        send(&mut s, "MAIL FROM:<a@example.com> SIZE=1000"),
        "250 2.1.0 Sender <a@example.com> ok\r\n"
    );
    assert_eq!(
        send(&mut s, "MAIL FROM:<a@example.com>"),
        "503 5.5.1 Nested MAIL command\r\n"
    );
    assert_eq!(s.credential().map(|c| &**c), Some("scanners"));
    send(&mut s, "RCPT TO:<b@example.com>");
    let tx = queue(&mut s, b"hi\r\n.\r\n");
    assert!(!tx.authenticated && !tx.tls && !tx.body_8bit && !tx.smtputf8);
    assert_eq!((&*tx.credential, tx.helo.as_str()), ("scanners", "scanner"));
}

#[test]
fn mail_flags_and_null_sender_reach_the_transaction() {
    let mut s = authenticated();
    assert_eq!(
        send(&mut s, "MAIL FROM:<> BODY=8BITMIME SMTPUTF8"),
        "250 2.1.0 Sender <> ok\r\n"
    );
    assert_eq!(
        send(&mut s, "RCPT TO:<ü@example.com>"),
        "250 2.1.5 Recipient <ü@example.com> ok\r\n"
    );
    let tx = queue(&mut s, b"Subject: x\r\n\r\n..body\r\n.\r\n");
    assert_eq!(tx.mail_from, "");
    assert_eq!(tx.rcpt_to, ["ü@example.com"]);
    assert!(tx.authenticated && tx.tls && tx.body_8bit && tx.smtputf8);
    assert_eq!(
        (&*tx.credential, tx.helo.as_str()),
        ("erp", "client.example")
    );
    assert_eq!(tx.data, b"Subject: x\r\n\r\n.body\r\n");
}

#[test]
fn rcpt_rules() {
    let mut s = authenticated();
    assert_eq!(
        send(&mut s, "RCPT TO:<b@example.com>"),
        "503 5.5.1 Need MAIL command first\r\n"
    );
    send(&mut s, "MAIL FROM:<a@example.com>");
    assert_eq!(
        send(&mut s, "RCPT TO:<>"),
        "501 5.1.3 Empty recipient address not allowed\r\n"
    );
    assert_eq!(
        send(&mut s, "RCPT TO:<ü@example.com>"),
        "553 5.6.7 Non-ASCII address requires SMTPUTF8\r\n"
    );
    assert_eq!(
        send(&mut s, "RCPT TO:<b@example.com>"),
        "250 2.1.5 Recipient <b@example.com> ok\r\n"
    );
    assert_eq!(
        send(&mut s, "RCPT TO:<b@example.com>"),
        "250 2.1.5 Recipient <b@example.com> ok\r\n"
    );
    send(&mut s, "RCPT TO:<c@example.com>");
    assert_eq!(
        send(&mut s, "RCPT TO:<d@example.com>"),
        "452 4.5.3 Too many recipients\r\n"
    );
    let tx = queue(&mut s, b".\r\n");
    assert_eq!(tx.rcpt_to, ["b@example.com", "c@example.com"]);
}

#[test]
fn data_needs_recipients_and_resets_after_queueing() {
    let mut s = authenticated();
    assert_eq!(
        send(&mut s, "DATA"),
        "503 5.5.1 Need MAIL command first\r\n"
    );
    send(&mut s, "MAIL FROM:<a@example.com>");
    assert_eq!(send(&mut s, "DATA"), "554 5.5.1 No valid recipients\r\n");
    send(&mut s, "RCPT TO:<b@example.com>");
    queue(&mut s, b"x\r\n.\r\n");
    assert_eq!(
        wire(&s.queued(Ok("A1B2".into()))),
        "250 2.0.0 Ok: queued as A1B2\r\n"
    );
    assert_eq!(
        send(&mut s, "RCPT TO:<b@example.com>"),
        "503 5.5.1 Need MAIL command first\r\n"
    );
    send(&mut s, "MAIL FROM:<a@example.com>");
    send(&mut s, "RCPT TO:<b@example.com>");
    queue(&mut s, b"x\r\n.\r\n");
    assert_eq!(
        wire(&s.queued(Err(Reply::new(452, "4.3.1", "Spool full")))),
        "452 4.3.1 Spool full\r\n"
    );
    assert!(send(&mut s, "MAIL FROM:<a@example.com>").starts_with("250"));
}

#[test]
fn rejected_data_resets_the_transaction() {
    let mut s = authenticated();
    for (outcome, expected) in [
        (
            DataOutcome::TooLarge,
            "552 5.3.4 Message size exceeds fixed maximum message size\r\n",
        ),
        (
            DataOutcome::BareNewline,
            "550 5.5.2 Message contains bare CR or LF; lines must end in CRLF\r\n",
        ),
    ] {
        send(&mut s, "MAIL FROM:<a@example.com>");
        send(&mut s, "RCPT TO:<b@example.com>");
        assert!(matches!(s.command(b"DATA\r\n"), Step::Data(_)));
        assert_eq!(wire(&s.data_finished(outcome)), expected);
        assert!(send(&mut s, "RCPT TO:<b@example.com>").starts_with("503"));
    }
    assert_eq!(s.data_decoder_params(), (1000, BareNewline::Reject));
}

#[test]
fn simple_commands() {
    let mut s = session(STRANGER, false);
    assert_eq!(send(&mut s, "NOOP"), "250 2.0.0 Ok\r\n");
    assert_eq!(send(&mut s, "RSET"), "250 2.0.0 Ok\r\n");
    assert!(send(&mut s, "VRFY bob").starts_with("252 2.5.0 "));
    assert!(send(&mut s, "HELP").starts_with("214 2.0.0 Supported: EHLO"));
    assert_eq!(
        send(&mut s, "EXPN staff"),
        "502 5.5.1 Command not implemented\r\n"
    );
    assert_eq!(
        send(&mut s, "BDAT 10 LAST"),
        "502 5.5.1 Command not implemented\r\n"
    );
    assert_eq!(send(&mut s, "XYZZY"), "500 5.5.2 Command unrecognized\r\n");
    assert_eq!(
        send(&mut s, "MAIL TO:<a@b>"),
        "501 5.5.4 Syntax: MAIL FROM:<reverse-path> [parameters]\r\n"
    );
    assert_eq!(
        send(&mut s, "NOOP\rMAIL FROM:<a@b.c>"),
        "500 5.5.2 Bare CR, LF or NUL in command\r\n"
    );
    assert_eq!(
        send(&mut s, "NO\0OP"),
        "500 5.5.2 Bare CR, LF or NUL in command\r\n"
    );
    assert_eq!(
        wire(&s.command(b"NOOP\n")),
        "250 2.0.0 Ok\r\n",
        "bare LF ends a command line"
    );
    let quit = s.command(b"QUIT\r\n");
    assert!(matches!(quit, Step::Close(_)));
    assert_eq!(
        wire(&quit),
        "221 2.0.0 relay.example.com closing connection\r\n"
    );
    assert!(s.is_closed() && s.command(b"NOOP\r\n").is_close());
}

#[test]
fn rset_clears_transaction_and_ehlo_too() {
    let mut s = authenticated();
    send(&mut s, "MAIL FROM:<a@example.com>");
    send(&mut s, "RSET");
    assert!(send(&mut s, "RCPT TO:<b@example.com>").starts_with("503"));
    send(&mut s, "MAIL FROM:<a@example.com>");
    send(&mut s, "EHLO again.example");
    assert!(send(&mut s, "RCPT TO:<b@example.com>").starts_with("503"));
    assert!(s.is_authenticated(), "EHLO keeps AUTH (RFC 4954)");
}

#[test]
fn too_many_errors_closes() {
    let mut s = session_with(
        SessionConfig {
            max_bad_commands: 2,
            ..config()
        },
        STRANGER,
        false,
    );
    assert!(send(&mut s, "BOGUS").starts_with("500"));
    assert_eq!(wire(&s.line_too_long()), "500 5.5.2 Line too long\r\n");
    assert_eq!(
        send(&mut s, "NOOP"),
        "250 2.0.0 Ok\r\n",
        "2xx and 4xx do not count"
    );
    let step = s.command(b"BOGUS\r\n");
    assert!(matches!(step, Step::Close(_)));
    assert_eq!(
        wire(&step),
        "421 4.7.0 relay.example.com Too many errors, closing connection\r\n"
    );
}

#[test]
fn timeout_and_shutdown() {
    let mut s = session(STRANGER, false);
    assert_eq!(
        s.timeout().to_bytes(),
        b"421 4.4.2 relay.example.com Timeout exceeded, closing connection\r\n"
    );
    assert!(s.is_closed());
    let mut s = session(STRANGER, false);
    assert_eq!(
        s.shutting_down().to_bytes(),
        b"421 4.3.2 relay.example.com Service shutting down, closing connection\r\n"
    );
}

#[test]
fn out_of_order_events_fail_closed() {
    let mut s = session(STRANGER, false);
    send(&mut s, "EHLO x");
    assert!(s.auth_result(granted("erp")).is_close());
    assert!(!s.is_authenticated());
    let mut s = session(TRUSTED, false);
    send(&mut s, "EHLO x");
    assert!(
        s.data_finished(DataOutcome::Message(b"x\r\n".to_vec()))
            .is_close()
    );
    assert!(session(TRUSTED, false).queued(Ok("X".into())).is_close());
    let mut s = authenticated();
    send(&mut s, "MAIL FROM:<a@example.com>");
    send(&mut s, "RCPT TO:<b@example.com>");
    s.command(b"DATA\r\n");
    assert!(s.data_finished(DataOutcome::Incomplete).is_close());
}

impl Step {
    fn is_close(&self) -> bool {
        matches!(self, Step::Close(_))
    }
    fn is_positive(&self) -> bool {
        matches!(self, Step::Reply(r) if r.is_positive())
    }
}
