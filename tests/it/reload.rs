//! Live reload (issue 4): SIGHUP re-reads the whole configuration. A new
//! config applies to new connections at once and to open sessions at their
//! next MAIL FROM; a broken one is refused with its file:line and the daemon
//! keeps serving the old one; quota counters and lockouts survive; a new TLS
//! certificate is presented to the next handshake.

use crate::common::clients::hash_secret;
use crate::common::postern::toml_str;
use crate::common::*;
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use std::net::TcpStream;
use std::sync::OnceLock;
use std::time::Duration;

/// The secret a rotation moves to.
const NEW_PASSWORD: &str = "the rotated secret";

fn new_hash() -> &'static str {
    static HASH: OnceLock<String> = OnceLock::new();
    HASH.get_or_init(|| hash_secret(NEW_PASSWORD))
}

const INVALID: &str = "Authentication credentials invalid";
const NO_LONGER: &str = "Authentication credentials no longer valid; authenticate again";

/// `[credentials.NAME]` with `username`, senders `*@example.com`, the secret
/// line(s) and the extra `lines`. `secrets` is the full secret line(s).
fn cred(name: &str, secrets: &str, lines: &[&str]) -> String {
    let mut b = format!(
        "[credentials.{name}]\nusername = \"{name}\"\n{secrets}\nallowed_senders = [\"*@example.com\"]\n"
    );
    for l in lines {
        b.push_str(l);
        b.push('\n');
    }
    b
}

/// `secret_hash = ...` for [`PASSWORD`].
fn old_secret() -> String {
    format!("secret_hash = {}", toml_str(password_hash()))
}

fn login(p: &Postern, ca: &TestCa, user: &str, pass: &str) -> (SmtpClient, Reply) {
    let mut c = SmtpClient::connect(p.port(0));
    c.greet_starttls(ca);
    let r = c.auth_plain(user, pass);
    (c, r)
}

#[track_caller]
fn authed(p: &Postern, ca: &TestCa, user: &str, pass: &str) -> SmtpClient {
    let (c, r) = login(p, ca, user, pass);
    r.expect(235, "2.7.0", &format!("AUTH as {user}"));
    c
}

/// Sends a message that must be queued; returns its bytes.
#[track_caller]
fn send_ok(c: &mut SmtpClient, from: &str, subject: &str) -> Vec<u8> {
    let msg = simple_message(from, "bob@dest.test", subject);
    c.send_message(from, &["bob@dest.test"], &msg)
        .expect(250, "2.0.0", subject);
    msg
}

#[track_caller]
fn reload_ok(p: &Postern, cfg: &Config) {
    assert!(p.reload(cfg), "reload refused; log:\n{}", p.log());
}

/// Asserts every message in `sent` arrived at `reqs` exactly once (any order).
#[track_caller]
fn assert_received(reqs: &[Recorded], sent: &[&Vec<u8>]) {
    assert_eq!(reqs.len(), sent.len(), "{reqs:#?}");
    for msg in sent {
        let n = reqs
            .iter()
            .filter(|r| split_received(&r.body).1 == msg.as_slice())
            .count();
        assert_eq!(n, 1, "message not received exactly once:\n{}", show(msg));
    }
}

#[test]
fn key_rotation_old_secret_stops_at_reload_open_sessions_at_next_mail() {
    let ca = TestCa::new();
    let up = MockUpstream::start(&ca);
    let both = format!(
        "secret_hashes = [{}, {}]",
        toml_str(password_hash()),
        toml_str(new_hash())
    );
    let only_new = format!("secret_hashes = [{}]", toml_str(new_hash()));
    let mut cfg = Config::new(&up.url());
    cfg.credentials = vec![cred("app", &both, &[])];
    let p = Postern::start(&ca, &cfg);

    let mut s_old = authed(&p, &ca, "app", PASSWORD);
    let m1 = send_ok(&mut s_old, "app@example.com", "old secret before reload");
    let mut s_new = authed(&p, &ca, "app", NEW_PASSWORD);
    let m2 = send_ok(&mut s_new, "app@example.com", "new secret before reload");

    cfg.credentials = vec![cred("app", &only_new, &[])];
    reload_ok(&p, &cfg);

    let r = login(&p, &ca, "app", PASSWORD).1;
    r.expect(535, "5.7.8", "old secret after reload");
    assert!(r.text().contains(INVALID), "{r:?}");
    let mut c = authed(&p, &ca, "app", NEW_PASSWORD);
    let m3 = send_ok(&mut c, "app@example.com", "new secret, new session");
    c.quit();

    // The session that used the removed secret is stopped at its next MAIL...
    let r = s_old.cmd("MAIL FROM:<app@example.com>");
    r.expect(
        535,
        "5.7.8",
        "MAIL in a session authenticated with the removed secret",
    );
    assert!(r.text().contains(NO_LONGER), "{r:?}");
    // ...forgets its AUTH, and may authenticate again.
    s_old.cmd("MAIL FROM:<app@example.com>").expect(
        530,
        "5.7.0",
        "MAIL after the session lost its AUTH",
    );
    s_old
        .auth_plain("app", NEW_PASSWORD)
        .expect(235, "2.7.0", "AUTH again with the new secret");
    let m4 = send_ok(
        &mut s_old,
        "app@example.com",
        "same session, re-authenticated",
    );
    s_old.quit();

    // The session that used the kept secret goes on.
    let m5 = send_ok(&mut s_new, "app@example.com", "new secret after reload");
    s_new.quit();

    p.delivered(&up, 5);
    p.wait_queue_empty();
    assert_received(&up.requests(), &[&m1, &m2, &m3, &m4, &m5]);
}

/// 1-based line of the first line of `text` containing `needle`.
fn line_of(text: &str, needle: &str) -> usize {
    text.lines()
        .position(|l| l.contains(needle))
        .unwrap_or_else(|| panic!("{needle:?} not in config:\n{text}"))
        + 1
}

/// Whether `log` names `path:line` (not a longer line number).
fn names_position(log: &str, path: &str, line: usize) -> bool {
    let at = format!("{path}:{line}");
    log.match_indices(&at).any(|(i, _)| {
        !log[i + at.len()..]
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_digit())
    })
}

#[test]
fn broken_reload_is_refused_with_its_position_and_mail_keeps_flowing() {
    let ca = TestCa::new();
    let up = MockUpstream::start(&ca);
    let cfg = Config::new(&up.url());
    let p = Postern::start(&ca, &cfg);
    let path = p.config_path.to_string_lossy().into_owned();

    // Unknown key (and a disable that must therefore not take effect).
    let mut bad = cfg.clone();
    bad.credentials = vec![cred(
        "app",
        &old_secret(),
        &["disabled = true", "bogus_key = 1"],
    )];
    assert!(!p.reload(&bad), "a config with an unknown key was taken");
    let text = std::fs::read_to_string(&p.config_path).expect("read config");
    let log = p.log();
    assert!(
        log.contains("configuration reload failed; keeping the current configuration"),
        "{log}"
    );
    assert!(
        names_position(&log, &path, line_of(&text, "bogus_key")) && log.contains("bogus_key"),
        "error should name {path}:{} and the key:\n{log}",
        line_of(&text, "bogus_key")
    );
    let mut c = authed(&p, &ca, "app", PASSWORD);
    let m1 = send_ok(&mut c, "app@example.com", "after unknown key");
    c.quit();

    // A dangling route.
    let mut bad = cfg.clone();
    bad.credentials = vec![cred("app", &old_secret(), &["route = \"nowhere\""])];
    assert!(!p.reload(&bad), "a config with a dangling route was taken");
    let text = std::fs::read_to_string(&p.config_path).expect("read config");
    let log = p.log();
    assert!(
        names_position(&log, &path, line_of(&text, "nowhere")) && log.contains("nowhere"),
        "error should name {path}:{} and the route:\n{log}",
        line_of(&text, "nowhere")
    );
    let mut c = authed(&p, &ca, "app", PASSWORD);
    let m2 = send_ok(&mut c, "app@example.com", "after dangling route");
    c.quit();

    // The daemon is still reloadable afterwards; one outcome line per reload.
    reload_ok(&p, &cfg);
    let log = p.log();
    assert_eq!(log.matches("configuration reloaded").count(), 1, "{log}");
    assert_eq!(
        log.matches("configuration reload failed; keeping the current configuration")
            .count(),
        2,
        "{log}"
    );
    p.delivered(&up, 2);
    p.wait_queue_empty();
    assert_received(&up.requests(), &[&m1, &m2]);
}

/// One message on a fresh plain connection (network credential); the reply
/// to MAIL FROM if refused, else to the end of DATA.
fn send_plain(p: &Postern, subject: &str) -> Reply {
    let mut c = SmtpClient::connect(p.port(0));
    c.greet();
    let r = c.cmd("MAIL FROM:<lan@example.com>");
    if r.code != 250 {
        c.quit();
        return r;
    }
    c.cmd("RCPT TO:<bob@dest.test>").expect_code(250, "RCPT");
    let r = c.data(&simple_message("lan@example.com", "bob@dest.test", subject));
    c.quit();
    r
}

#[test]
fn quota_counters_survive_a_reload() {
    let ca = TestCa::new();
    let up = MockUpstream::start(&ca);
    let mut cfg = Config::new(&up.url()).listeners(&["none"]);
    cfg.credentials = vec![
        Config::networks_credential("lan", &["127.0.0.0/8"], &["*@example.com"])
            + "quota = { per_minute = 2 }\n",
    ];
    let p = Postern::start(&ca, &cfg);
    send_plain(&p, "one").expect(250, "2.0.0", "first");
    send_plain(&p, "two").expect(250, "2.0.0", "second");

    // An unrelated change.
    let cfg = cfg.credential(Config::password_credential(
        "app",
        "app",
        &["*@example.com"],
    ));
    reload_ok(&p, &cfg);
    let r = send_plain(&p, "three");
    r.expect(451, "4.7.1", "third message after reload");
    assert!(r.text().contains("credential lan"), "{r:?}");

    p.delivered(&up, 2);
    p.wait_queue_empty();
    assert_eq!(up.count(), 2, "{:#?}", up.requests());
}

#[test]
fn lockout_survives_a_reload() {
    let ca = TestCa::new();
    let up = MockUpstream::start(&ca);
    let cfg = Config::new(&up.url())
        .abuse("auth_failures = 2")
        .abuse("lockout = \"1h\"")
        .abuse("auth_failure_delay = \"0s\"");
    let p = Postern::start(&ca, &cfg);
    for _ in 0..2 {
        login(&p, &ca, "app", "not the password")
            .1
            .expect(535, "5.7.8", "failure");
    }
    login(&p, &ca, "app", PASSWORD)
        .1
        .expect(454, "4.7.0", "locked before reload");
    reload_ok(&p, &cfg.clone().server("max_recipients = 50"));
    login(&p, &ca, "app", PASSWORD)
        .1
        .expect(454, "4.7.0", "still locked after reload");
}

#[test]
fn disabling_a_credential_and_moving_a_route_by_reload() {
    let ca = TestCa::new();
    let up1 = MockUpstream::start(&ca);
    let up2 = MockUpstream::start(&ca);
    let mut cfg = Config::new(&up1.url());
    cfg.credentials = vec![
        cred("app", &old_secret(), &[]),
        cred("b", &old_secret(), &[]),
    ];
    cfg.extra = format!(
        "[routes.second]\nupstreams = [\"api2\"]\n\n[upstreams.api2]\nkind = \"http\"\nurl = {}\nca_file = {}\n",
        toml_str(&up2.url()),
        toml_str(&ca.ca_pem.to_string_lossy())
    );
    let p = Postern::start(&ca, &cfg);

    let mut s_app = authed(&p, &ca, "app", PASSWORD);
    let m1 = send_ok(&mut s_app, "app@example.com", "app before reload");
    let mut s_b = authed(&p, &ca, "b", PASSWORD);
    let m2 = send_ok(&mut s_b, "b@example.com", "b before reload");
    p.delivered(&up1, 2);

    cfg.credentials = vec![
        cred("app", &old_secret(), &["disabled = true"]),
        cred("b", &old_secret(), &["route = \"second\""]),
    ];
    reload_ok(&p, &cfg);

    let r = s_app.cmd("MAIL FROM:<app@example.com>");
    r.expect(535, "5.7.8", "MAIL after the credential was disabled");
    assert!(r.text().contains(NO_LONGER), "{r:?}");
    s_app
        .cmd("MAIL FROM:<app@example.com>")
        .expect(530, "5.7.0", "session forgot its AUTH");
    s_app.quit();
    let r = login(&p, &ca, "app", PASSWORD).1;
    r.expect(535, "5.7.8", "AUTH with a disabled credential");
    assert!(r.text().contains(INVALID), "{r:?}");

    // The open session takes the new route at its next MAIL, new ones too.
    let m3 = send_ok(&mut s_b, "b@example.com", "b open session after reload");
    s_b.quit();
    let mut c = authed(&p, &ca, "b", PASSWORD);
    let m4 = send_ok(&mut c, "b@example.com", "b new session after reload");
    c.quit();

    p.delivered(&up2, 2);
    p.wait_queue_empty();
    assert_received(&up1.requests(), &[&m1, &m2]);
    assert_received(&up2.requests(), &[&m3, &m4]);
}

/// DER of the certificate postern presents on implicit-TLS `port` to a
/// client trusting only `ca`; Err when the handshake fails.
fn presented_cert(port: u16, ca: &TestCa) -> Result<Vec<u8>, String> {
    let mut sock = TcpStream::connect(("127.0.0.1", port)).map_err(|e| e.to_string())?;
    sock.set_read_timeout(Some(Duration::from_secs(30)))
        .map_err(|e| e.to_string())?;
    let mut conn = rustls::ClientConnection::new(ca.client_config(), TestCa::server_name())
        .map_err(|e| e.to_string())?;
    while conn.is_handshaking() {
        conn.complete_io(&mut sock).map_err(|e| e.to_string())?;
    }
    conn.peer_certificates()
        .and_then(|chain| chain.first())
        .map(|c| c.to_vec())
        .ok_or_else(|| "no peer certificate".to_string())
}

fn der_of(ca: &TestCa) -> Vec<u8> {
    CertificateDer::from_pem_file(&ca.cert_pem)
        .expect("read server cert PEM")
        .to_vec()
}

#[test]
fn tls_certificate_is_reloaded_for_new_connections() {
    let ca = TestCa::new();
    // An unrelated CA and certificate: trusting one CA tells the two apart.
    let ca2 = TestCa::new();
    let up = MockUpstream::start(&ca);
    let cfg = Config::new(&up.url()).listeners(&["implicit"]);
    let p = Postern::start(&ca, &cfg);
    let port = p.port(0);

    assert_eq!(presented_cert(port, &ca), Ok(der_of(&ca)), "before reload");
    let mut open = SmtpClient::connect_tls(port, &ca);
    open.greet();
    open.auth_plain("app", PASSWORD)
        .expect(235, "2.7.0", "AUTH before reload");

    let mut cfg2 = cfg.clone();
    cfg2.tls = false;
    cfg2.extra = format!(
        "[tls]\ncertificate = {}\nprivate_key = {}\n",
        toml_str(&ca2.cert_pem.to_string_lossy()),
        toml_str(&ca2.key_pem.to_string_lossy())
    );
    reload_ok(&p, &cfg2);

    assert_eq!(presented_cert(port, &ca2), Ok(der_of(&ca2)), "after reload");
    assert!(
        presented_cert(port, &ca).is_err(),
        "old certificate still presented after reload"
    );

    // The session opened before the reload keeps its TLS and goes on.
    let m1 = send_ok(&mut open, "app@example.com", "open TLS session");
    open.quit();
    let mut c = SmtpClient::connect_tls(port, &ca2);
    c.greet();
    c.auth_plain("app", PASSWORD)
        .expect(235, "2.7.0", "AUTH with the new certificate");
    let m2 = send_ok(&mut c, "app@example.com", "new certificate");
    c.quit();
    p.delivered(&up, 2);
    p.wait_queue_empty();
    assert_received(&up.requests(), &[&m1, &m2]);
}

#[test]
fn listener_changes_wait_for_a_restart() {
    let ca = TestCa::new();
    let up = MockUpstream::start(&ca);
    let cfg = Config::new(&up.url());
    let p = Postern::start(&ca, &cfg);

    let port = crate::common::postern::free_port();
    let mut cfg2 = cfg.clone();
    cfg2.extra = format!("[[listeners]]\naddress = \"127.0.0.1:{port}\"\ntls = \"none\"\n");
    reload_ok(&p, &cfg2);
    let log = p.log();
    assert!(
        log.lines()
            .any(|l| l.contains("WARN") && l.to_ascii_lowercase().contains("restart")),
        "a listener change should be logged as needing a restart:\n{log}"
    );
    assert!(
        TcpStream::connect(("127.0.0.1", port)).is_err(),
        "the new listener was opened without a restart"
    );
    // The old listener and everything else keep working.
    let mut c = authed(&p, &ca, "app", PASSWORD);
    let m1 = send_ok(&mut c, "app@example.com", "after listener change");
    c.quit();
    p.delivered(&up, 1);
    p.wait_queue_empty();
    assert_received(&up.requests(), &[&m1]);
}

#[test]
fn sighup_rereads_included_files() {
    let ca = TestCa::new();
    let up = MockUpstream::start(&ca);
    let p = Postern::start(&ca, &Config::new(&up.url()));
    let confd = p.dir().join("conf.d");
    std::fs::create_dir_all(&confd).expect("mkdir conf.d");
    let app2 = confd.join("app2.toml");
    std::fs::write(&app2, cred("app2", &old_secret(), &[])).expect("write app2.toml");
    // `include` is a top-level key, so it goes before the first table.
    let main = std::fs::read_to_string(&p.config_path).expect("read config");
    let include = format!(
        "include = [{}]\n",
        toml_str(&confd.join("*.toml").to_string_lossy())
    );
    std::fs::write(&p.config_path, include + &main).expect("write config");

    assert_eq!(
        login(&p, &ca, "app2", PASSWORD).1.code,
        535,
        "app2 before it is loaded"
    );
    assert!(p.sighup(), "reload with include refused:\n{}", p.log());
    let mut c = authed(&p, &ca, "app2", PASSWORD);
    let m1 = send_ok(&mut c, "app2@example.com", "from an included credential");
    c.quit();

    // Only the included file changes.
    std::fs::write(&app2, cred("app2", &old_secret(), &["disabled = true"]))
        .expect("rewrite app2.toml");
    assert!(p.sighup(), "second reload refused:\n{}", p.log());
    let r = login(&p, &ca, "app2", PASSWORD).1;
    r.expect(535, "5.7.8", "app2 disabled in the included file");
    assert!(r.text().contains(INVALID), "{r:?}");

    p.delivered(&up, 1);
    p.wait_queue_empty();
    assert_received(&up.requests(), &[&m1]);
}

#[test]
fn a_new_quota_applies_to_an_open_session_at_its_next_mail() {
    let ca = TestCa::new();
    let up = MockUpstream::start(&ca);
    let mut cfg = Config::new(&up.url()).listeners(&["none"]);
    cfg.credentials = vec![Config::networks_credential(
        "lan",
        &["127.0.0.0/8"],
        &["*@example.com"],
    )];
    let p = Postern::start(&ca, &cfg);
    let mut open = SmtpClient::connect(p.port(0));
    open.greet();

    cfg.credentials[0].push_str("quota = { per_minute = 1 }\n");
    reload_ok(&p, &cfg);
    let m1 = send_ok(&mut open, "lan@example.com", "first under the new quota");
    let r = open.cmd("MAIL FROM:<lan@example.com>");
    r.expect(451, "4.7.1", "second message under per_minute = 1");
    assert!(r.text().contains("credential lan"), "{r:?}");
    open.quit();
    send_plain(&p, "new session").expect(451, "4.7.1", "new session, same quota");

    p.delivered(&up, 1);
    p.wait_queue_empty();
    assert_received(&up.requests(), &[&m1]);
}
