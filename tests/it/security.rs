//! Access-control tests: AUTH only over TLS, unauthenticated and
//! wrongly-authenticated clients refused with the contract's codes, source
//! network credentials honoured only for their network, allowed_senders
//! enforced, and STARTTLS command injection (CVE-2011-0411 style) not answered.

use crate::common::*;

fn auth_lines(ehlo: &Reply) -> Vec<String> {
    ehlo.ehlo_keywords()
        .into_iter()
        .filter(|k| k.starts_with("AUTH"))
        .collect()
}

#[test]
fn auth_is_not_offered_or_accepted_before_starttls() {
    let ca = TestCa::new();
    let up = MockUpstream::start(&ca);
    let p = Postern::start(&ca, &Config::new(&up.url()));

    let mut c = SmtpClient::connect(p.port(0));
    let ehlo = c.greet();
    let kw = ehlo.ehlo_keywords();
    assert!(
        kw.iter().any(|k| k == "STARTTLS"),
        "STARTTLS not advertised: {ehlo:?}"
    );
    assert!(
        auth_lines(&ehlo).is_empty(),
        "AUTH advertised before TLS: {ehlo:?}"
    );

    use base64::Engine;
    let token = base64::engine::general_purpose::STANDARD.encode(format!("\0app\0{PASSWORD}"));
    let r = c.cmd(&format!("AUTH PLAIN {token}"));
    r.expect(538, "5.7.11", "AUTH PLAIN before STARTTLS");
    let r = c.cmd("AUTH LOGIN");
    r.expect(538, "5.7.11", "AUTH LOGIN before STARTTLS");

    // After STARTTLS the same credentials work.
    let r = c.cmd("STARTTLS");
    assert_eq!(r.code, 220, "{r:?}");
    c.upgrade_tls(&ca).expect("handshake");
    let ehlo = c.cmd("EHLO client.test");
    let auth = auth_lines(&ehlo);
    assert_eq!(auth.len(), 1, "AUTH advertised once after TLS: {ehlo:?}");
    assert!(
        auth[0].contains("PLAIN") && auth[0].contains("LOGIN"),
        "{ehlo:?}"
    );
    assert!(
        !ehlo.ehlo_keywords().iter().any(|k| k == "STARTTLS"),
        "STARTTLS offered twice: {ehlo:?}"
    );
    c.auth_plain("app", PASSWORD)
        .expect(235, "2.7.0", "AUTH PLAIN after TLS");
    c.quit();
}

#[test]
fn mail_without_auth_gets_530() {
    let ca = TestCa::new();
    let up = MockUpstream::start(&ca);
    let p = Postern::start(&ca, &Config::new(&up.url()));

    // Before TLS.
    let mut c = SmtpClient::connect(p.port(0));
    c.greet();
    c.cmd("MAIL FROM:<app@example.com>")
        .expect(530, "5.7.0", "MAIL before TLS");
    // After TLS, still unauthenticated.
    let mut c = SmtpClient::connect(p.port(0));
    c.greet_starttls(&ca);
    c.cmd("MAIL FROM:<app@example.com>")
        .expect(530, "5.7.0", "MAIL without AUTH");
    let r = c.cmd("RCPT TO:<bob@dest.test>");
    assert!(r.code >= 500, "RCPT without MAIL must fail: {r:?}");
    c.quit();
    assert!(p.queue_files().is_empty(), "{:?}", p.queue_files());
    assert_eq!(up.count(), 0);
}

#[test]
fn wrong_password_gets_535() {
    let ca = TestCa::new();
    let up = MockUpstream::start(&ca);
    let p = Postern::start(&ca, &Config::new(&up.url()));

    let mut c = SmtpClient::connect(p.port(0));
    c.greet_starttls(&ca);
    c.auth_plain("app", "not the password")
        .expect(535, "5.7.8", "wrong password");
    c.auth_plain("nosuchuser", PASSWORD)
        .expect(535, "5.7.8", "unknown user");
    c.cmd("MAIL FROM:<app@example.com>")
        .expect(530, "5.7.0", "MAIL after failed AUTH");
    c.quit();

    // Control: the right password on a fresh connection sends.
    let mut c = SmtpClient::connect(p.port(0));
    c.greet_starttls(&ca);
    c.auth_plain("app", PASSWORD)
        .expect(235, "2.7.0", "right password");
    let msg = simple_message("app@example.com", "bob@dest.test", "after failures");
    c.send_message("app@example.com", &["bob@dest.test"], &msg)
        .expect(250, "2.0.0", "control message");
    c.quit();
    p.only_delivery(&up, &msg);
}

#[test]
fn networks_credential_sends_without_auth_from_its_network() {
    let ca = TestCa::new();
    let up = MockUpstream::start(&ca);
    let cfg = Config::new(&up.url())
        .listeners(&["none"])
        .with_loopback_network();
    let p = Postern::start(&ca, &cfg);

    let mut c = SmtpClient::connect(p.port(0));
    let ehlo = c.greet();
    assert!(
        auth_lines(&ehlo).is_empty(),
        "AUTH offered on a tls=none listener: {ehlo:?}"
    );
    assert!(
        !ehlo.ehlo_keywords().iter().any(|k| k == "STARTTLS"),
        "{ehlo:?}"
    );
    let msg = simple_message("scanner@example.com", "ops@dest.test", "from network");
    let r = c.send_message("scanner@example.com", &["ops@dest.test"], &msg);
    r.expect(250, "2.0.0", "networks credential");
    let id = r.queue_id().expect("queue id");
    c.quit();

    let reqs = p.delivered(&up, 1);
    assert_eq!(reqs[0].one_header("x-postern-queue-id"), id);
    assert_eq!(
        reqs[0].one_header("x-postern-mail-from"),
        "scanner@example.com"
    );
    assert_eq!(reqs[0].one_header("x-postern-rcpt-to"), "ops@dest.test");
    assert_forwarded(&reqs[0].body, &msg);
    p.wait_queue_empty();
    assert_eq!(up.count(), 1);
}

#[test]
fn networks_credential_for_other_network_does_not_trust_loopback() {
    let ca = TestCa::new();
    let up = MockUpstream::start(&ca);
    let cfg = Config::new(&up.url())
        .listeners(&["none", "starttls"])
        .credential(Config::networks_credential(
            "branch",
            &["10.99.0.0/16"],
            &["*@example.com"],
        ));
    let p = Postern::start(&ca, &cfg);

    let mut c = SmtpClient::connect(p.port(0));
    c.greet();
    c.cmd("MAIL FROM:<scanner@example.com>")
        .expect(530, "5.7.0", "MAIL from 127.0.0.1");
    c.quit();

    // Control over the authenticated listener; it must be the only delivery.
    let mut c = SmtpClient::connect(p.port(1));
    c.greet_starttls(&ca);
    c.auth_plain("app", PASSWORD).expect(235, "2.7.0", "AUTH");
    let msg = simple_message("app@example.com", "bob@dest.test", "control");
    c.send_message("app@example.com", &["bob@dest.test"], &msg)
        .expect(250, "2.0.0", "control");
    c.quit();
    p.only_delivery(&up, &msg);
}

#[test]
fn sender_outside_allowed_senders_gets_550_5_7_1() {
    let ca = TestCa::new();
    let up = MockUpstream::start(&ca);
    let p = Postern::start(&ca, &Config::new(&up.url()));

    let mut c = SmtpClient::connect(p.port(0));
    c.greet_starttls(&ca);
    c.auth_plain("app", PASSWORD).expect(235, "2.7.0", "AUTH");
    let r = c.cmd("MAIL FROM:<ceo@evil.test>");
    r.expect(550, "5.7.1", "MAIL FROM outside allowed_senders");
    assert!(
        r.text().contains("ceo@evil.test"),
        "reply should name the sender: {r:?}"
    );
    // A lookalike domain is not a match for *@example.com either.
    c.cmd("MAIL FROM:<x@notexample.com>")
        .expect(550, "5.7.1", "lookalike domain");
    c.cmd("RSET").expect_code(250, "RSET");
    let msg = simple_message("billing@example.com", "bob@dest.test", "allowed");
    c.send_message("billing@example.com", &["bob@dest.test"], &msg)
        .expect(250, "2.0.0", "allowed sender");
    c.quit();
    let reqs = p.delivered(&up, 1);
    assert_eq!(
        reqs[0].one_header("x-postern-mail-from"),
        "billing@example.com"
    );
    assert_forwarded(&reqs[0].body, &msg);
    p.wait_queue_empty();
    assert_eq!(up.count(), 1);
}

#[test]
fn starttls_command_injection_is_not_answered() {
    let ca = TestCa::new();
    let up = MockUpstream::start(&ca);
    let p = Postern::start(&ca, &Config::new(&up.url()));

    let mut c = SmtpClient::connect(p.port(0));
    c.greet();
    c.send(b"STARTTLS\r\nRSET\r\n");
    let r = c.read_reply();
    assert_eq!(r.code, 220, "STARTTLS: {r:?}");
    // upgrade_tls panics if a plaintext reply to RSET arrived before the handshake.
    c.upgrade_tls(&ca)
        .expect("handshake after pipelined STARTTLS");
    let first = c.cmd("EHLO client.test");
    assert_eq!(first.code, 250, "{first:?}");
    assert!(
        first.lines.len() > 1 && first.lines[0].starts_with("250-relay.test"),
        "first reply after TLS must be the EHLO reply, got {first:?} (injected RSET answered?)"
    );
    assert!(
        !auth_lines(&first).is_empty(),
        "EHLO after TLS should offer AUTH: {first:?}"
    );
    c.cmd("NOOP").expect_code(250, "NOOP");
    c.quit();
}
