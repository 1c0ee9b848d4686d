//! Credential scopes (issue 4): every per-credential rule is shown from both
//! sides against the real binary: the case it allows goes through to the
//! upstream byte for byte, the case it refuses gets the contract's exact
//! reply, and nothing refused ever reaches the upstream.

use crate::common::clients::hash_secret;
use crate::common::postern::toml_str;
use crate::common::*;
use std::sync::OnceLock;

/// A second secret, for credentials that list more than one.
const OTHER_PASSWORD: &str = "second secret for key rotation";

/// argon2 is slow in a debug build; hash the second secret once per binary.
fn other_hash() -> &'static str {
    static HASH: OnceLock<String> = OnceLock::new();
    HASH.get_or_init(|| hash_secret(OTHER_PASSWORD))
}

const INVALID: &str = "Authentication credentials invalid";

/// These tests fail AUTH from 127.0.0.1 on purpose; keep the lockout
/// (tested in abuse.rs) and its delay out of the way.
fn base(url: &str) -> Config {
    Config::new(url)
        .abuse("auth_failures = 1000")
        .abuse("auth_failure_delay = \"0s\"")
}

/// `[credentials.NAME]` with `username`, [`PASSWORD`], senders `*@example.com`
/// and the extra `lines`.
fn cred(name: &str, username: &str, lines: &[&str]) -> String {
    let mut b = format!(
        "[credentials.{name}]\nusername = {}\nsecret_hash = {}\nallowed_senders = [\"*@example.com\"]\n",
        toml_str(username),
        toml_str(password_hash()),
    );
    for l in lines {
        b.push_str(l);
        b.push('\n');
    }
    b
}

/// Fresh STARTTLS connection and one AUTH PLAIN; returns both.
fn login(p: &Postern, ca: &TestCa, user: &str, pass: &str) -> (SmtpClient, Reply) {
    let mut c = SmtpClient::connect(p.port(0));
    c.greet_starttls(ca);
    let r = c.auth_plain(user, pass);
    (c, r)
}

/// The reply to one AUTH on a fresh connection.
fn auth_reply(p: &Postern, ca: &TestCa, user: &str, pass: &str) -> Reply {
    login(p, ca, user, pass).1
}

/// An authenticated session; panics unless AUTH gives 235.
#[track_caller]
fn authed(p: &Postern, ca: &TestCa, user: &str, pass: &str) -> SmtpClient {
    let (c, r) = login(p, ca, user, pass);
    r.expect(235, "2.7.0", &format!("AUTH as {user}"));
    c
}

/// Sends a message that must be queued; returns its bytes.
#[track_caller]
fn send_ok(c: &mut SmtpClient, from: &str, rcpts: &[&str], subject: &str) -> Vec<u8> {
    let msg = simple_message(from, rcpts[0], subject);
    c.send_message(from, rcpts, &msg)
        .expect(250, "2.0.0", subject);
    msg
}

/// Asserts `r` is a 535 5.7.8 indistinguishable from a wrong password.
#[track_caller]
fn assert_like_wrong_password(r: &Reply, wrong: &Reply, ctx: &str) {
    r.expect(535, "5.7.8", ctx);
    assert_eq!(
        r.lines, wrong.lines,
        "{ctx}: must read exactly like a wrong password"
    );
}

/// A message of at least `n` bytes (CRLF lines, ends with CRLF).
fn big_message(n: usize) -> Vec<u8> {
    let mut m = b"From: <app@example.com>\r\nTo: <bob@dest.test>\r\nSubject: big\r\n\r\n".to_vec();
    while m.len() < n {
        m.extend_from_slice(b"0123456789abcdefghijklmnopqrstuvwxyz0123456789abcdefghijklmnop\r\n");
    }
    m
}

#[test]
fn every_listed_secret_works_until_its_entry_expires() {
    let ca = TestCa::new();
    let up = MockUpstream::start(&ca);
    let mut cfg = base(&up.url());
    let (h1, h2) = (toml_str(password_hash()), toml_str(other_hash()));
    cfg.credentials = vec![
        format!(
            "[credentials.app]\nusername = \"app\"\nsecret_hashes = [{h1}, {h2}]\nallowed_senders = [\"*@example.com\"]\n"
        ),
        // secret_hash and secret_hashes together: all listed hashes count.
        format!(
            "[credentials.both]\nusername = \"both\"\nsecret_hash = {h1}\nsecret_hashes = [{{ hash = {h2}, expires = 2099-01-01T00:00:00Z }}]\nallowed_senders = [\"*@example.com\"]\n"
        ),
        format!(
            "[credentials.rot]\nusername = \"rot\"\nsecret_hashes = [{{ hash = {h1}, expires = 2020-01-01T00:00:00Z }}, {h2}]\nallowed_senders = [\"*@example.com\"]\n"
        ),
    ];
    let p = Postern::start(&ca, &cfg);

    let wrong = auth_reply(&p, &ca, "app", "not the password");
    wrong.expect(535, "5.7.8", "wrong password");
    assert!(wrong.text().contains(INVALID), "{wrong:?}");

    for (user, pass) in [
        ("app", PASSWORD),
        ("app", OTHER_PASSWORD),
        ("both", PASSWORD),
        ("both", OTHER_PASSWORD),
    ] {
        auth_reply(&p, &ca, user, pass).expect(
            235,
            "2.7.0",
            &format!("{user} with a listed secret"),
        );
    }
    let r = auth_reply(&p, &ca, "rot", PASSWORD);
    assert_like_wrong_password(&r, &wrong, "secret whose entry expired in 2020");

    let mut c = authed(&p, &ca, "rot", OTHER_PASSWORD);
    let msg = send_ok(
        &mut c,
        "rot@example.com",
        &["bob@dest.test"],
        "after rotation",
    );
    c.quit();
    p.only_delivery(&up, &msg);
}

#[test]
fn networks_limit_where_a_login_may_be_used() {
    let ca = TestCa::new();
    let up = MockUpstream::start(&ca);
    let mut cfg = Config::new(&up.url());
    // A low threshold shows the networks refusals are not counted as failures.
    cfg.abuse = vec![
        "connections_per_ip_per_minute = \"unlimited\"".into(),
        "auth_failures = 3".into(),
        "auth_failure_delay = \"0s\"".into(),
    ];
    cfg.credentials = vec![
        cred("app", "app", &["networks = [\"10.0.0.0/8\"]"]),
        cred("lan", "lan", &["networks = [\"127.0.0.0/8\"]"]),
        cred("other", "other", &[]),
    ];
    let p = Postern::start(&ca, &cfg);

    for i in 0..4 {
        let r = auth_reply(&p, &ca, "app", PASSWORD);
        r.expect(
            535,
            "5.7.8",
            &format!("right password from outside networks (#{i})"),
        );
        assert!(
            r.text()
                .contains("Credential \"app\" may not be used from this address (networks)"),
            "{r:?}"
        );
    }
    // Right password or not, this peer may not use "app".
    auth_reply(&p, &ca, "app", "wrong").expect(535, "5.7.8", "wrong password from outside");

    // Not counted: neither 127.0.0.1 nor "app" is locked out now.
    auth_reply(&p, &ca, "other", PASSWORD).expect(235, "2.7.0", "other credential, same IP");

    // networks on a login credential does not trust the network without AUTH.
    let mut c = SmtpClient::connect(p.port(0));
    c.greet_starttls(&ca);
    c.cmd("MAIL FROM:<lan@example.com>")
        .expect(530, "5.7.0", "MAIL without AUTH");
    c.quit();

    let mut c = authed(&p, &ca, "lan", PASSWORD);
    let msg = send_ok(
        &mut c,
        "lan@example.com",
        &["bob@dest.test"],
        "from inside networks",
    );
    c.quit();
    p.only_delivery(&up, &msg);
}

#[test]
fn recipient_domains_are_allowed_and_denied_per_credential() {
    let ca = TestCa::new();
    let up = MockUpstream::start(&ca);
    let mut cfg = base(&up.url());
    cfg.credentials = vec![
        cred(
            "app",
            "app",
            &[
                "allowed_recipient_domains = [\"dest.test\", \"*.corp.test\"]",
                "denied_recipient_domains = [\"secret.corp.test\"]",
            ],
        ),
        cred(
            "nodeny",
            "nodeny",
            &["denied_recipient_domains = [\"blocked.test\"]"],
        ),
    ];
    let p = Postern::start(&ca, &cfg);

    let mut c = authed(&p, &ca, "app", PASSWORD);
    c.cmd("MAIL FROM:<app@example.com>")
        .expect_code(250, "MAIL");
    for ok in ["bob@dest.test", "ann@eu.corp.test", "Carol@DEST.test"] {
        c.cmd(&format!("RCPT TO:<{ok}>")).expect_code(250, ok);
    }
    for (bad, why) in [
        ("x@corp.test", "*.corp.test is strict subdomains only"),
        ("x@other.test", "not in the allow-list"),
        ("x@secret.corp.test", "denied wins over allowed"),
        ("x@dest.test.evil", "lookalike"),
    ] {
        let r = c.cmd(&format!("RCPT TO:<{bad}>"));
        r.expect(550, "5.7.1", why);
        assert!(
            r.text().contains(&format!(
                "Recipient <{bad}> not allowed for credential \"app\""
            )),
            "{why}: {r:?}"
        );
    }
    let msg = simple_message("app@example.com", "bob@dest.test", "recipient domains");
    c.data(&msg)
        .expect(250, "2.0.0", "DATA to the accepted recipients");
    c.quit();

    // A deny-list alone allows everything else.
    let mut c = authed(&p, &ca, "nodeny", PASSWORD);
    c.cmd("MAIL FROM:<nodeny@example.com>")
        .expect_code(250, "MAIL");
    c.cmd("RCPT TO:<a@dest.test>")
        .expect_code(250, "RCPT anywhere");
    let r = c.cmd("RCPT TO:<a@blocked.test>");
    r.expect(550, "5.7.1", "denied domain");
    assert!(
        r.text()
            .contains("Recipient <a@blocked.test> not allowed for credential \"nodeny\""),
        "{r:?}"
    );
    c.cmd("RSET").expect_code(250, "RSET");
    c.quit();

    let reqs = p.delivered(&up, 1);
    assert_eq!(
        reqs[0].header_all("x-postern-rcpt-to").join(", "),
        // postern lower-cases the domain part of an accepted address.
        "bob@dest.test, ann@eu.corp.test, Carol@dest.test"
    );
    assert_forwarded(&reqs[0].body, &msg);
    p.wait_queue_empty();
    assert_eq!(up.count(), 1, "only the one message may be forwarded");
}

#[test]
fn max_recipients_per_credential_gets_452_and_keeps_the_accepted_ones() {
    let ca = TestCa::new();
    let up = MockUpstream::start(&ca);
    let mut cfg = base(&up.url());
    cfg.credentials = vec![cred("app", "app", &["max_recipients = 2"])];
    let p = Postern::start(&ca, &cfg);

    let mut c = authed(&p, &ca, "app", PASSWORD);
    c.cmd("MAIL FROM:<app@example.com>")
        .expect_code(250, "MAIL");
    c.cmd("RCPT TO:<r1@dest.test>").expect_code(250, "RCPT 1");
    c.cmd("RCPT TO:<r2@dest.test>").expect_code(250, "RCPT 2");
    for n in 3..=4 {
        let r = c.cmd(&format!("RCPT TO:<r{n}@dest.test>"));
        r.expect(452, "4.5.3", &format!("RCPT {n}"));
        assert!(
            r.text()
                .contains("Too many recipients (credential \"app\" allows 2)"),
            "{r:?}"
        );
    }
    let msg = simple_message("app@example.com", "r1@dest.test", "two recipients");
    c.data(&msg).expect(250, "2.0.0", "DATA");
    c.quit();

    let reqs = p.delivered(&up, 1);
    assert_eq!(
        reqs[0].header_all("x-postern-rcpt-to").join(", "),
        "r1@dest.test, r2@dest.test"
    );
    assert_forwarded(&reqs[0].body, &msg);
    p.wait_queue_empty();
    assert_eq!(up.count(), 1);
}

#[test]
fn max_message_size_per_credential_is_advertised_and_enforced() {
    let ca = TestCa::new();
    let up = MockUpstream::start(&ca);
    let mut cfg = base(&up.url());
    cfg.credentials = vec![cred("app", "app", &["max_message_size = \"10KiB\""])];
    let p = Postern::start(&ca, &cfg);

    let mut c = SmtpClient::connect(p.port(0));
    let before = c.greet_starttls(&ca);
    assert!(
        !before.ehlo_keywords().iter().any(|k| k == "SIZE 10240"),
        "the credential's limit is not known before AUTH: {before:?}"
    );
    c.auth_plain("app", PASSWORD).expect(235, "2.7.0", "AUTH");
    let ehlo = c.cmd("EHLO client.test");
    ehlo.expect_code(250, "EHLO after AUTH");
    assert!(
        ehlo.ehlo_keywords().iter().any(|k| k == "SIZE 10240"),
        "EHLO after AUTH should advertise the credential's SIZE 10240: {ehlo:?}"
    );

    let r = c.cmd("MAIL FROM:<app@example.com> SIZE=20000");
    r.expect(552, "5.3.4", "MAIL SIZE= over the credential's limit");
    assert!(
        r.text().contains("credential \"app\"") && r.text().contains("10240 bytes"),
        "{r:?}"
    );
    c.cmd("MAIL FROM:<app@example.com> SIZE=5000")
        .expect_code(250, "MAIL SIZE= within the limit");
    c.cmd("RSET").expect_code(250, "RSET");

    c.cmd("MAIL FROM:<app@example.com>")
        .expect_code(250, "MAIL");
    c.cmd("RCPT TO:<bob@dest.test>").expect_code(250, "RCPT");
    c.data(&big_message(20 * 1024))
        .expect(552, "5.3.4", "DATA over the credential's limit");

    let msg = send_ok(
        &mut c,
        "app@example.com",
        &["bob@dest.test"],
        "small enough",
    );
    c.quit();
    let reqs = p.delivered(&up, 1);
    assert_forwarded(&reqs[0].body, &msg);
    p.wait_queue_empty();
    assert_eq!(up.count(), 1, "the oversize message must not be forwarded");
}

#[test]
fn each_credential_uses_its_route() {
    let ca = TestCa::new();
    let up1 = MockUpstream::start(&ca);
    let up2 = MockUpstream::start(&ca);
    let mut cfg = base(&up1.url());
    cfg.credentials = vec![cred("a", "a", &[]), cred("b", "b", &["route = \"second\""])];
    cfg.extra = format!(
        "[routes.second]\nupstreams = [\"api2\"]\n\n[upstreams.api2]\nkind = \"http\"\nurl = {}\nca_file = {}\n",
        toml_str(&up2.url()),
        toml_str(&ca.ca_pem.to_string_lossy())
    );
    let p = Postern::start(&ca, &cfg);

    let mut c = authed(&p, &ca, "a", PASSWORD);
    let msg_a = send_ok(
        &mut c,
        "a@example.com",
        &["bob@dest.test"],
        "via route default",
    );
    c.quit();
    let mut c = authed(&p, &ca, "b", PASSWORD);
    let msg_b = send_ok(
        &mut c,
        "b@example.com",
        &["bob@dest.test"],
        "via route second",
    );
    c.quit();

    let r1 = p.delivered(&up1, 1);
    let r2 = p.delivered(&up2, 1);
    assert_forwarded(&r1[0].body, &msg_a);
    assert_forwarded(&r2[0].body, &msg_b);
    p.wait_queue_empty();
    assert_eq!((up1.count(), up2.count()), (1, 1));
}

#[test]
fn expired_and_disabled_credentials_fail_like_a_wrong_password() {
    let ca = TestCa::new();
    let up = MockUpstream::start(&ca);
    let mut cfg = base(&up.url());
    cfg.credentials = vec![
        cred("app", "app", &[]),
        cred("past", "past", &["expires = 2020-01-01T00:00:00Z"]),
        cred("pastdate", "pastdate", &["expires = 2020-01-31"]),
        cred("future", "future", &["expires = 2099-12-31T00:00:00Z"]),
        cred("off", "off", &["disabled = true"]),
        cred("on", "on", &["disabled = false"]),
    ];
    let p = Postern::start(&ca, &cfg);

    let wrong = auth_reply(&p, &ca, "app", "not the password");
    wrong.expect(535, "5.7.8", "wrong password");
    assert!(wrong.text().contains(INVALID), "{wrong:?}");
    for user in ["past", "pastdate", "off"] {
        let (mut c, r) = login(&p, &ca, user, PASSWORD);
        assert_like_wrong_password(&r, &wrong, user);
        c.cmd("MAIL FROM:<app@example.com>").expect(
            530,
            "5.7.0",
            &format!("MAIL after refused AUTH as {user}"),
        );
        c.quit();
    }
    for user in ["future", "on"] {
        let mut c = authed(&p, &ca, user, PASSWORD);
        send_ok(&mut c, "app@example.com", &["bob@dest.test"], user);
        c.quit();
    }
    p.delivered(&up, 2);
    p.wait_queue_empty();
    assert_eq!(up.count(), 2);
}

/// A plain listener where 127.0.0.1 is (maybe) trusted by network.
fn network_only(url: &str, creds: Vec<String>) -> Config {
    let mut cfg = base(url).listeners(&["none"]);
    cfg.credentials = creds;
    cfg
}

#[test]
fn disabled_or_expired_network_credential_does_not_apply() {
    let ca = TestCa::new();
    let up = MockUpstream::start(&ca);
    let off = Config::networks_credential("off", &["127.0.0.1/32"], &["*@example.com"])
        + "disabled = true\n";
    let stale = Config::networks_credential("stale", &["127.0.0.0/8"], &["*@example.com"])
        + "expires = 2020-01-01T00:00:00Z\n";
    let p = Postern::start(&ca, &network_only(&up.url(), vec![off, stale]));

    let mut c = SmtpClient::connect(p.port(0));
    c.greet();
    c.cmd("MAIL FROM:<app@example.com>").expect(
        530,
        "5.7.0",
        "MAIL with only a disabled and an expired network credential",
    );
    c.quit();
    assert!(p.queue_files().is_empty(), "{:?}", p.queue_files());
    assert_eq!(up.count(), 0);
}

#[test]
fn a_disabled_network_credential_leaves_the_next_match_in_charge() {
    let ca = TestCa::new();
    let up = MockUpstream::start(&ca);
    // The more specific /32 would win if it were enabled.
    let pinned = Config::networks_credential("pinned", &["127.0.0.1/32"], &["*@example.com"])
        + "disabled = true\n";
    let lan = Config::networks_credential("lan", &["127.0.0.0/8"], &["lan@example.com"]);
    let p = Postern::start(&ca, &network_only(&up.url(), vec![pinned, lan]));

    let mut c = SmtpClient::connect(p.port(0));
    c.greet();
    let r = c.cmd("MAIL FROM:<app@example.com>");
    r.expect(550, "5.7.1", "sender only the disabled credential allows");
    assert!(r.text().contains("credential \"lan\""), "{r:?}");
    c.cmd("RSET").expect_code(250, "RSET");
    let msg = send_ok(&mut c, "lan@example.com", &["bob@dest.test"], "via lan");
    c.quit();
    p.only_delivery(&up, &msg);
}

#[test]
fn advertised_size_is_the_smallest_of_server_and_credential() {
    let ca = TestCa::new();
    let up = MockUpstream::start(&ca);
    let mut cfg = base(&up.url())
        .listeners(&["starttls", "none"])
        .server("max_message_size = \"20KiB\"");
    cfg.credentials = vec![
        // Integer bytes are accepted as well as size strings.
        Config::networks_credential("lan", &["127.0.0.0/8"], &["*@example.com"])
            + "max_message_size = 10240\n",
        cred("roomy", "roomy", &["max_message_size = \"1MiB\""]),
    ];
    let p = Postern::start(&ca, &cfg);

    // Network credential (plain listener): known from the first EHLO.
    let mut c = SmtpClient::connect(p.port(1));
    let ehlo = c.greet();
    assert!(
        ehlo.ehlo_keywords().iter().any(|k| k == "SIZE 10240"),
        "network credential's SIZE 10240 expected: {ehlo:?}"
    );
    let r = c.cmd("MAIL FROM:<lan@example.com> SIZE=15000");
    r.expect(552, "5.3.4", "SIZE= over the network credential's limit");
    assert!(r.text().contains("credential \"lan\""), "{r:?}");
    c.quit();

    // A credential limit above the server's does not raise it.
    let mut c = authed(&p, &ca, "roomy", PASSWORD);
    let ehlo = c.cmd("EHLO client.test");
    assert!(
        ehlo.ehlo_keywords().iter().any(|k| k == "SIZE 20480"),
        "server limit SIZE 20480 expected: {ehlo:?}"
    );
    c.cmd("MAIL FROM:<roomy@example.com> SIZE=30000").expect(
        552,
        "5.3.4",
        "SIZE= over the server limit",
    );
    c.quit();
    assert!(p.queue_files().is_empty(), "{:?}", p.queue_files());
    assert_eq!(up.count(), 0);
}

#[test]
fn route_announces_and_enforces_its_smallest_upstream_limit() {
    // Postmark takes at most 10,000,000 bytes; postern keeps 16 KiB of that
    // for the headers it adds after DATA (Received, DKIM-Signature).
    const LIMIT: usize = 10_000_000 - 16 * 1024;
    let ca = TestCa::new();
    let up = MockUpstream::start(&ca);
    let mut cfg = base(&up.url());
    cfg.default_route = vec!["api".into(), "pm".into()];
    cfg.extra = "[upstreams.pm]\nkind = \"postmark\"\nserver_token = \"env:POSTERN_TEST_PM_TOKEN\"\nbase_url = \"https://127.0.0.1:9\"\n".into();
    let p = Postern::start_with_env(&ca, &cfg, &[("POSTERN_TEST_PM_TOKEN", "pm-token")]);

    let mut c = authed(&p, &ca, "app", PASSWORD);
    let ehlo = c.cmd("EHLO client.test");
    assert!(
        ehlo.ehlo_keywords()
            .iter()
            .any(|k| *k == format!("SIZE {LIMIT}")),
        "route limit SIZE {LIMIT} expected: {ehlo:?}"
    );
    let r = c.cmd(&format!("MAIL FROM:<app@example.com> SIZE={}", LIMIT + 1));
    r.expect(552, "5.3.4", "SIZE= over the route's limit");
    assert!(
        r.text()
            .contains(&format!("route \"default\" ({LIMIT} bytes)")),
        "{r:?}"
    );
    // A message the route can carry still goes (to the primary).
    send_ok(
        &mut c,
        "app@example.com",
        &["bob@dest.test"],
        "fits the route",
    );
    c.quit();
    p.wait_queue_empty();
    assert_eq!(up.count(), 1);
}
