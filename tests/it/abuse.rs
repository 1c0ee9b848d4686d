//! Abuse protection (issue 4) against the real binary: failed AUTH locks out
//! the client IP and the username independently, a lockout refuses even the
//! right password and ends by itself, one connection gets three AUTH tries,
//! and a client opening connections too fast is turned away at the greeting.
//!
//! Every test client is on loopback, so distinct "client IPs" are made by
//! binding the client socket to 127.0.0.2, 127.0.0.3, ... (all loopback on
//! Linux).

use crate::common::*;
use std::net::IpAddr;
use std::time::{Duration, Instant};

fn ip(s: &str) -> IpAddr {
    s.parse().expect("test IP literal")
}

/// Lockout after 3 failures for 2 s, answered at once; users `app` and `other`.
fn lockout_config(url: &str) -> Config {
    Config::new(url)
        .credential(Config::password_credential(
            "other",
            "other",
            &["*@example.com"],
        ))
        .abuse("auth_failures = 3")
        .abuse("lockout = \"2s\"")
        .abuse("auth_failure_delay = \"0s\"")
}

/// One AUTH PLAIN from `src` on a fresh STARTTLS connection.
fn auth_from(p: &Postern, ca: &TestCa, src: &str, user: &str, pass: &str) -> Reply {
    let mut c = SmtpClient::connect_from(ip(src), p.port(0));
    c.greet_starttls(ca);
    c.auth_plain(user, pass)
}

/// A failed AUTH from `src`: must be the ordinary 535 (also the one that
/// reaches the threshold).
#[track_caller]
fn fail_from(p: &Postern, ca: &TestCa, src: &str, user: &str) {
    auth_from(p, ca, src, user, "not the password").expect(
        535,
        "5.7.8",
        &format!("failed AUTH as {user:?} from {src}"),
    );
}

/// Panics unless `r` is the lockout refusal naming `what`.
#[track_caller]
fn assert_locked(r: &Reply, what: &str) {
    r.expect(454, "4.7.0", &format!("AUTH while {what} is locked"));
    let t = r.text();
    assert!(
        t.contains(&format!("Too many failed AUTH attempts from {what}"))
            && t.contains("try again in"),
        "454 should name {what} and say when to retry: {r:?}"
    );
}

/// Panics unless the log has the lockout line with `key=KEY` and, for the
/// 454 that followed, a refusal line with the same key.
#[track_caller]
fn assert_lockout_logged(p: &Postern, key: &str) {
    let log = p.log();
    let key = format!("key={key}");
    let lockout = "AUTH locked out after repeated failures";
    assert!(
        log.lines().any(|l| l.contains(lockout) && l.contains(&key)),
        "no `{lockout}` line with {key}:\n{log}"
    );
    assert!(
        log.lines()
            .any(|l| !l.contains(lockout) && l.contains(&key)),
        "the refused AUTH is not logged with {key}:\n{log}"
    );
}

#[test]
fn failures_lock_the_client_ip_even_for_the_right_password() {
    let ca = TestCa::new();
    let up = MockUpstream::start(&ca);
    let p = Postern::start(&ca, &lockout_config(&up.url()));

    // Different usernames: only the IP reaches the threshold.
    for user in ["ghost1", "ghost2", "ghost3"] {
        fail_from(&p, &ca, "127.0.0.1", user);
    }
    let r = auth_from(&p, &ca, "127.0.0.1", "app", PASSWORD);
    assert_locked(&r, "127.0.0.1");
    assert_lockout_logged(&p, "127.0.0.1");

    // The lock is on the IP, not on "app".
    let mut c = SmtpClient::connect_from(ip("127.0.0.2"), p.port(0));
    c.greet_starttls(&ca);
    c.auth_plain("app", PASSWORD)
        .expect(235, "2.7.0", "app from another IP");
    let msg = simple_message("app@example.com", "bob@dest.test", "from 127.0.0.2");
    c.send_message("app@example.com", &["bob@dest.test"], &msg)
        .expect(250, "2.0.0", "message from another IP");
    c.quit();
    let reqs = p.delivered(&up, 1);
    assert_forwarded(&reqs[0].body, &msg);
}

#[test]
fn failures_from_several_ips_lock_the_username_everywhere() {
    let ca = TestCa::new();
    let up = MockUpstream::start(&ca);
    let p = Postern::start(&ca, &lockout_config(&up.url()));

    fail_from(&p, &ca, "127.0.0.2", "app");
    fail_from(&p, &ca, "127.0.0.2", "app");
    fail_from(&p, &ca, "127.0.0.3", "app");

    let r = auth_from(&p, &ca, "127.0.0.4", "app", PASSWORD);
    assert_locked(&r, "user \"app\"");
    assert_lockout_logged(&p, "user \"app\"");

    // Neither the fresh IP nor the IPs with fewer failures are locked.
    auth_from(&p, &ca, "127.0.0.4", "other", PASSWORD).expect(
        235,
        "2.7.0",
        "another username from 127.0.0.4",
    );
    auth_from(&p, &ca, "127.0.0.2", "other", PASSWORD).expect(
        235,
        "2.7.0",
        "another username from 127.0.0.2 (2 failures)",
    );
}

#[test]
fn lockout_ends_by_itself() {
    let ca = TestCa::new();
    let up = MockUpstream::start(&ca);
    let p = Postern::start(&ca, &lockout_config(&up.url()));

    for _ in 0..3 {
        fail_from(&p, &ca, "127.0.0.1", "app");
    }
    let r = auth_from(&p, &ca, "127.0.0.1", "app", PASSWORD);
    r.expect(454, "4.7.0", "right password while locked");

    // lockout = 2s; poll (one AUTH per connection) with a generous deadline.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let mut c = SmtpClient::connect(p.port(0));
        c.greet_starttls(&ca);
        let r = c.auth_plain("app", PASSWORD);
        if r.code == 235 {
            let msg = simple_message("app@example.com", "bob@dest.test", "after lockout");
            c.send_message("app@example.com", &["bob@dest.test"], &msg)
                .expect(250, "2.0.0", "message after the lockout");
            c.quit();
            let reqs = p.delivered(&up, 1);
            assert_forwarded(&reqs[0].body, &msg);
            break;
        }
        r.expect(454, "4.7.0", "while still locked");
        assert!(
            Instant::now() < deadline,
            "lockout of 2s still in force after 60s: {r:?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn fourth_auth_on_one_connection_gets_421_and_close() {
    let ca = TestCa::new();
    let up = MockUpstream::start(&ca);
    // Default auth_failures (5): the three failures below lock nothing.
    let p = Postern::start(
        &ca,
        &Config::new(&up.url()).abuse("auth_failure_delay = \"0s\""),
    );

    let mut c = SmtpClient::connect(p.port(0));
    c.greet_starttls(&ca);
    for i in 1..=3 {
        c.auth_plain("app", "not the password")
            .expect(535, "5.7.8", &format!("attempt {i}"));
    }
    let r = c.auth_plain("app", PASSWORD);
    r.expect(421, "4.7.0", "fourth AUTH on one connection");
    assert!(
        r.text()
            .contains("Too many AUTH attempts, closing connection"),
        "{r:?}"
    );
    let rest = c.read_to_eof().expect("server closes after 421");
    assert!(rest.is_empty(), "bytes after 421: {}", show(&rest));

    // Only that connection is affected.
    auth_from(&p, &ca, "127.0.0.1", "app", PASSWORD).expect(
        235,
        "2.7.0",
        "new connection after 421",
    );
}

#[test]
fn success_clears_only_its_own_ip() {
    let ca = TestCa::new();
    let up = MockUpstream::start(&ca);
    let p = Postern::start(&ca, &lockout_config(&up.url()));

    // IP counter of 127.0.0.2: a success from 127.0.0.3 does not reset it.
    fail_from(&p, &ca, "127.0.0.2", "ghost1");
    fail_from(&p, &ca, "127.0.0.2", "ghost2");
    auth_from(&p, &ca, "127.0.0.3", "other", PASSWORD).expect(235, "2.7.0", "success elsewhere");
    fail_from(&p, &ca, "127.0.0.2", "ghost3");
    let r = auth_from(&p, &ca, "127.0.0.2", "other", PASSWORD);
    assert_locked(&r, "127.0.0.2");

    // Username counter: a success for "app" from 127.0.0.6 leaves the
    // failures from 127.0.0.5 standing.
    fail_from(&p, &ca, "127.0.0.5", "app");
    fail_from(&p, &ca, "127.0.0.5", "app");
    auth_from(&p, &ca, "127.0.0.6", "app", PASSWORD).expect(235, "2.7.0", "app from .6");
    fail_from(&p, &ca, "127.0.0.7", "app");
    let r = auth_from(&p, &ca, "127.0.0.8", "app", PASSWORD);
    assert_locked(&r, "user \"app\"");

    // A success does clear its own (username, IP) pair: 127.0.0.9 mistypes
    // "other" twice, succeeds, mistypes twice more, and is still not locked
    // (4 failures, but 2 since).
    fail_from(&p, &ca, "127.0.0.9", "other");
    fail_from(&p, &ca, "127.0.0.9", "other");
    auth_from(&p, &ca, "127.0.0.9", "other", PASSWORD).expect(235, "2.7.0", "success on .9");
    fail_from(&p, &ca, "127.0.0.9", "other");
    fail_from(&p, &ca, "127.0.0.9", "other");
    auth_from(&p, &ca, "127.0.0.9", "other", PASSWORD).expect(
        235,
        "2.7.0",
        "2 failures since the last success",
    );
}

#[test]
fn spraying_other_usernames_after_one_success_is_still_counted() {
    let ca = TestCa::new();
    let up = MockUpstream::start(&ca);
    let p = Postern::start(&ca, &lockout_config(&up.url()));

    // 127.0.0.9 holds one valid credential ("other") and sprays the rest:
    // its success must not reset its IP's count.
    fail_from(&p, &ca, "127.0.0.9", "ghost1");
    fail_from(&p, &ca, "127.0.0.9", "ghost2");
    auth_from(&p, &ca, "127.0.0.9", "other", PASSWORD).expect(235, "2.7.0", "its own login");
    fail_from(&p, &ca, "127.0.0.9", "ghost3");
    let r = auth_from(&p, &ca, "127.0.0.9", "other", PASSWORD);
    assert_locked(&r, "127.0.0.9");
    assert_lockout_logged(&p, "127.0.0.9");
}

/// Default thresholds (5 failures, 15 minutes), answered at once; users
/// `app` and `other`.
fn default_lockout_config(url: &str) -> Config {
    Config::new(url)
        .credential(Config::password_credential(
            "other",
            "other",
            &["*@example.com"],
        ))
        .abuse("auth_failure_delay = \"0s\"")
}

/// AUTH as `app` from `src`, then one message; panics unless both succeed.
#[track_caller]
fn login_and_send(p: &Postern, ca: &TestCa, src: &str, subject: &str) -> Vec<u8> {
    let mut c = SmtpClient::connect_from(ip(src), p.port(0));
    c.greet_starttls(ca);
    c.auth_plain("app", PASSWORD)
        .expect(235, "2.7.0", &format!("app from {src} ({subject})"));
    let msg = simple_message("app@example.com", "bob@dest.test", subject);
    c.send_message("app@example.com", &["bob@dest.test"], &msg)
        .expect(250, "2.0.0", &format!("message from {src} ({subject})"));
    c.quit();
    msg
}

/// Five wrong passwords for `app`, from 127.0.0.2 and 127.0.0.3: the
/// username is locked for every network not known for it.
#[track_caller]
fn stuff_app_from_two_addresses(p: &Postern, ca: &TestCa) {
    for src in [
        "127.0.0.2",
        "127.0.0.3",
        "127.0.0.2",
        "127.0.0.3",
        "127.0.0.2",
    ] {
        fail_from(p, ca, src, "app");
    }
    let r = auth_from(p, ca, "127.0.0.4", "app", PASSWORD);
    assert_locked(&r, "user \"app\"");
}

#[test]
fn a_username_lockout_spares_the_network_the_application_logs_in_from() {
    let ca = TestCa::new();
    let up = MockUpstream::start(&ca);
    let p = Postern::start(&ca, &default_lockout_config(&up.url()));

    // The application's usual address, where it has logged in before.
    let first = login_and_send(&p, &ca, "127.0.0.1", "before the attack");
    stuff_app_from_two_addresses(&p, &ca);

    // 127.0.0.4 never logged in as app: locked out (above). 127.0.0.1 is
    // served, and so are its messages.
    let second = login_and_send(&p, &ca, "127.0.0.1", "during the attack");
    let reqs = p.delivered(&up, 2);
    let bodies: Vec<&[u8]> = reqs.iter().map(|r| r.body.as_slice()).collect();
    for (msg, what) in [(&first, "first"), (&second, "second")] {
        assert!(
            bodies.iter().any(|b| split_received(b).1 == msg.as_slice()),
            "{what} message not delivered"
        );
    }
    // Another username is not affected at all, and the attackers' own
    // addresses are not locked for it (2 and 3 failures).
    auth_from(&p, &ca, "127.0.0.2", "other", PASSWORD).expect(235, "2.7.0", "other from .2");
}

/// The known-clients file postern keeps in its state_dir.
fn known_file(p: &Postern) -> std::path::PathBuf {
    p.state_dir.join("known-clients.json")
}

#[test]
fn known_networks_survive_a_crash_a_restart_and_a_reload() {
    let ca = TestCa::new();
    let up = MockUpstream::start(&ca);
    let cfg = default_lockout_config(&up.url());
    let mut p = Postern::start(&ca, &cfg);

    login_and_send(&p, &ca, "127.0.0.1", "makes .1 known");
    // Saved within a few seconds, without a shutdown: survives kill -9.
    let saved = wait_until(Duration::from_secs(30), || {
        std::fs::read_to_string(known_file(&p)).is_ok_and(|t| t.contains("\"127.0.0.1/32\""))
    });
    assert!(saved, "known-clients.json never named 127.0.0.1/32");
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(known_file(&p))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600, "known-clients.json must be owner-only");
    p.kill9();
    p.restart(&cfg);

    // A login just before a clean stop is saved at shutdown.
    auth_from(&p, &ca, "127.0.0.5", "other", PASSWORD).expect(235, "2.7.0", "other from .5");
    p.sigterm();
    p.wait_exit(Duration::from_secs(60));
    let text = std::fs::read_to_string(known_file(&p)).expect("known-clients.json");
    assert!(text.contains("\"127.0.0.5/32\""), "{text}");
    p.restart(&cfg);

    stuff_app_from_two_addresses(&p, &ca);
    login_and_send(&p, &ca, "127.0.0.1", "after the restart");
    assert!(p.reload(&cfg), "reload failed:\n{}", p.log());
    login_and_send(&p, &ca, "127.0.0.1", "after the reload");
    // The lockout itself also survived the reload.
    let r = auth_from(&p, &ca, "127.0.0.4", "app", PASSWORD);
    assert_locked(&r, "user \"app\"");
    p.delivered(&up, 3);
}

#[test]
fn a_failed_auth_for_an_unknown_username_does_not_log_what_was_typed() {
    let ca = TestCa::new();
    let up = MockUpstream::start(&ca);
    let p = Postern::start(&ca, &lockout_config(&up.url()));

    // A password typed into the username field, three times: the username
    // lockout starts, and the fourth attempt is refused with 454.
    let typed = "Tr0ub4dor-and-3";
    for src in ["127.0.0.2", "127.0.0.3", "127.0.0.4"] {
        fail_from(&p, &ca, src, typed);
    }
    let r = auth_from(&p, &ca, "127.0.0.5", typed, PASSWORD);
    r.expect(454, "4.7.0", "unknown username locked");
    // A known username is logged as it is.
    fail_from(&p, &ca, "127.0.0.6", "app");

    p.wait_log_line(&["authentication failed", "username=app"]);
    let log = p.log();
    assert!(
        !log.contains(typed),
        "the typed username is in the log:\n{log}"
    );
    let hashed: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("authentication failed: unknown username"))
        .collect();
    assert_eq!(hashed.len(), 3, "{log}");
    // The same text gives the same hash, so repeated attempts can be told apart.
    let hash = |l: &str| {
        l.split("username_hash=")
            .nth(1)
            .and_then(|r| r.split_whitespace().next())
            .map(str::to_string)
            .unwrap_or_else(|| panic!("no username_hash in {l}"))
    };
    let h = hash(hashed[0]);
    assert_eq!(h.len(), 12, "{h}");
    assert!(hashed.iter().all(|l| hash(l) == h), "{log}");
    assert!(
        log.lines()
            .any(|l| l.contains("AUTH locked out") && l.contains(&format!("unknown user {h}"))),
        "lockout line should name the hash:\n{log}"
    );
}

#[test]
fn too_many_connections_per_minute_get_421_at_the_greeting() {
    let ca = TestCa::new();
    let up = MockUpstream::start(&ca);
    let mut cfg = Config::new(&up.url());
    cfg.abuse = vec!["connections_per_ip_per_minute = 5".into()];
    let p = Postern::start(&ca, &cfg);

    // 127.0.0.2 is not used by the harness's readiness probe, so the count is exact.
    for i in 1..=5 {
        let mut c = SmtpClient::connect_from(ip("127.0.0.2"), p.port(0));
        c.read_reply()
            .expect_code(220, &format!("greeting of connection {i}"));
        c.quit();
    }
    let mut c = SmtpClient::connect_from(ip("127.0.0.2"), p.port(0));
    let r = c.read_reply();
    r.expect(421, "4.7.0", "greeting of the sixth connection");
    assert!(
        r.text()
            .contains("Too many connections from 127.0.0.2; try again in"),
        "{r:?}"
    );
    let rest = c.read_to_eof().expect("server closes after 421");
    assert!(rest.is_empty(), "bytes after 421: {}", show(&rest));

    // Other clients are not affected, and can still send.
    let mut c = SmtpClient::connect_from(ip("127.0.0.3"), p.port(0));
    c.greet_starttls(&ca);
    c.auth_plain("app", PASSWORD)
        .expect(235, "2.7.0", "AUTH from 127.0.0.3");
    let msg = simple_message("app@example.com", "bob@dest.test", "other client");
    c.send_message("app@example.com", &["bob@dest.test"], &msg)
        .expect(250, "2.0.0", "message from 127.0.0.3");
    c.quit();
    p.delivered(&up, 1);

    let log = p.log();
    assert!(
        log.lines().any(|l| l.contains("key=127.0.0.2")),
        "refusal not logged with key=127.0.0.2:\n{log}"
    );
}

/// N from `... try again in N s`.
fn retry_secs(r: &Reply) -> u64 {
    let t = r.text();
    t.split("try again in ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.trim_end_matches('s').parse().ok())
        .unwrap_or_else(|| panic!("no retry time in {r:?}"))
}

/// Wrong passwords as "app" from 127.0.0.2 until one is refused with 454
/// (at most `limit` attempts); returns that refusal.
fn fail_until_locked(p: &Postern, ca: &TestCa, limit: usize) -> Reply {
    for _ in 0..limit {
        let r = auth_from(p, ca, "127.0.0.2", "app", "not the password");
        if r.code == 454 {
            return r;
        }
        r.expect(535, "5.7.8", "failure before the lockout");
    }
    auth_from(p, ca, "127.0.0.2", "app", PASSWORD)
}

#[test]
fn repeated_lockouts_double() {
    let ca = TestCa::new();
    let up = MockUpstream::start(&ca);
    let cfg = Config::new(&up.url())
        .abuse("auth_failures = 3")
        .abuse("lockout = \"3s\"")
        .abuse("lockout_max = \"8s\"")
        .abuse("auth_failure_delay = \"0s\"");
    let p = Postern::start(&ca, &cfg);

    let first = fail_until_locked(&p, &ca, 3);
    assert_locked(&first, "127.0.0.2");
    let n = retry_secs(&first);
    assert!((1..=3).contains(&n), "first lockout is 3s: {first:?}");

    // Wait it out (poll with a deadline), then fail again: 6 s. (The cap,
    // lockout_max, is unit-tested in src/access/lockout.rs.)
    let deadline = Instant::now() + Duration::from_secs(60);
    while auth_from(&p, &ca, "127.0.0.2", "app", PASSWORD).code != 235 {
        assert!(Instant::now() < deadline, "first lockout never ended");
        std::thread::sleep(Duration::from_millis(200));
    }
    // That success cleared 127.0.0.2; "app" keeps its lockout history.
    let second = fail_until_locked(&p, &ca, 3);
    second.expect(454, "4.7.0", "second lockout");
    let n = retry_secs(&second);
    assert!(
        (4..=6).contains(&n),
        "second lockout should be 2 x 3s (2 s of slack for a slow machine): {second:?}"
    );
}

#[test]
fn a_failed_auth_is_answered_after_the_failure_delay() {
    let ca = TestCa::new();
    let up = MockUpstream::start(&ca);
    let p = Postern::start(
        &ca,
        &Config::new(&up.url()).abuse("auth_failure_delay = \"2s\""),
    );
    let mut c = SmtpClient::connect(p.port(0));
    c.greet_starttls(&ca);
    // A lower bound only: the reply may not come before the delay.
    let t = Instant::now();
    c.auth_plain("app", "not the password")
        .expect(535, "5.7.8", "wrong password");
    let waited = t.elapsed();
    assert!(
        waited >= Duration::from_millis(1900),
        "535 came after {waited:?}, before auth_failure_delay = 2s"
    );
    c.auth_plain("app", PASSWORD)
        .expect(235, "2.7.0", "right password on the same connection");
    c.quit();
}
