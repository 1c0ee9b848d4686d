//! `postern credential suspend|resume` against the real daemon: an open
//! session's next MAIL is refused, AUTH is refused (only with the right
//! password does the reply say why), networks credentials too; the
//! suspension survives a reload and a restart, an expiry lifts it by
//! itself, resume lifts it at once, unknown names are errors.

use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use super::{ctl, ok, refused, stderr};
use crate::common::*;

const SUSPENDED_APP: &str = "Credential \"app\" is suspended";

/// A STARTTLS listener (credential `app`, password) and a plain one
/// (credential `local`, by loopback network).
fn config(url: &str) -> Config {
    Config::new(url)
        .listeners(&["starttls", "none"])
        .with_loopback_network()
}

/// A fresh STARTTLS session logged in as `app`.
fn logged_in(p: &Postern, ca: &TestCa) -> SmtpClient {
    let mut c = SmtpClient::connect(p.port(0));
    c.greet_starttls(ca);
    c.auth_plain("app", PASSWORD)
        .expect(235, "2.7.0", "AUTH as app");
    c
}

fn auth(p: &Postern, ca: &TestCa, password: &str) -> Reply {
    let mut c = SmtpClient::connect(p.port(0));
    c.greet_starttls(ca);
    c.auth_plain("app", password)
}

#[test]
fn suspend_refuses_open_sessions_and_auth_and_survives_reload_and_restart() {
    let ca = TestCa::new();
    let up = MockUpstream::start(&ca);
    let cfg = config(&up.url());
    let mut p = Postern::start(&ca, &cfg);
    let mut open = logged_in(&p, &ca);
    let msg = simple_message("app@example.com", "bob@dest.test", "before");
    open.send_message("app@example.com", &["bob@dest.test"], &msg)
        .expect(250, "2.0.0", "before the suspension");
    let mut plain = SmtpClient::connect(p.port(1));
    plain.greet();

    let out = ok(
        &p,
        &[
            "credential",
            "suspend",
            "app",
            "--reason",
            "token leaked in a ticket",
        ],
    );
    assert!(
        out.contains("credential \"app\" suspended until resumed"),
        "{out}"
    );
    // The open session: its next MAIL, at once.
    let r = open.cmd("MAIL FROM:<app@example.com>");
    r.expect(550, "5.7.1", "MAIL of a suspended credential");
    assert_eq!(r.text(), format!("5.7.1 {SUSPENDED_APP}"));
    // A new login with the right password is told why; a wrong one is not.
    let r = auth(&p, &ca, PASSWORD);
    r.expect(535, "5.7.8", "AUTH of a suspended credential");
    assert_eq!(r.text(), format!("5.7.8 {SUSPENDED_APP}"));
    let r = auth(&p, &ca, "not the password");
    r.expect(535, "5.7.8", "wrong password");
    assert!(!r.text().contains("suspended"), "{r:?}");
    // Other credentials are unaffected.
    let r = plain.cmd("MAIL FROM:<scanner@example.com>");
    r.expect(250, "2.1.0", "MAIL of another credential");
    plain.cmd("RSET");

    let status = super::json(&p, &["status", "--json"]);
    let s = &status["suspended"][0];
    assert_eq!(s["credential"], "app");
    assert_eq!(s["reason"], "token leaked in a ticket");
    assert_eq!(s["by"], "operator");
    assert!(s.get("until").is_none(), "{s:#}");
    p.wait_log_line(&["event=\"suspended\"", "credential=\"app\""]);

    let file = p.state_dir.join("suspensions.json");
    let mode = std::fs::metadata(&file).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);

    // A reload keeps it.
    assert!(p.reload(&cfg), "reload failed:\n{}", p.log());
    open.cmd("MAIL FROM:<app@example.com>")
        .expect(550, "5.7.1", "MAIL after a reload");
    auth(&p, &ca, PASSWORD).expect(535, "5.7.8", "AUTH after a reload");
    // So does a restart.
    drop(open);
    p.sigterm();
    p.wait_exit(Duration::from_secs(30));
    p.restart(&cfg);
    let r = auth(&p, &ca, PASSWORD);
    assert_eq!(
        r.text(),
        format!("5.7.8 {SUSPENDED_APP}"),
        "after a restart"
    );

    // A networks credential: refused at MAIL (there is no AUTH).
    ok(&p, &["credential", "suspend", "local", "--for", "1h"]);
    let mut plain = SmtpClient::connect(p.port(1));
    plain.greet();
    let r = plain.cmd("MAIL FROM:<scanner@example.com>");
    r.expect(550, "5.7.1", "MAIL of a suspended networks credential");
    assert_eq!(r.text(), "5.7.1 Credential \"local\" is suspended");

    // Resume lifts it at once, for a session that was refused too.
    let out = ok(&p, &["credential", "resume", "app"]);
    assert!(out.contains("credential \"app\" resumed"), "{out}");
    let mut open = logged_in(&p, &ca);
    ok(&p, &["credential", "suspend", "app"]);
    open.cmd("MAIL FROM:<app@example.com>")
        .expect(550, "5.7.1", "suspended again");
    ok(&p, &["credential", "resume", "app"]);
    let msg = simple_message("app@example.com", "bob@dest.test", "after");
    open.send_message("app@example.com", &["bob@dest.test"], &msg)
        .expect(250, "2.0.0", "after resume");
    ok(&p, &["credential", "resume", "local"]);
    plain.cmd("MAIL FROM:<scanner@example.com>").expect(
        250,
        "2.1.0",
        "networks credential resumed, same session",
    );
    p.delivered(&up, 2);
    p.wait_log_line(&["event=\"resumed\"", "credential=\"local\""]);

    let e = refused(&p, &["credential", "resume", "app"]);
    assert!(e.contains("is not suspended"), "{e}");
    let e = refused(&p, &["credential", "suspend", "nosuch"]);
    assert!(
        e.contains("unknown credential \"nosuch\"") && e.contains("app, local"),
        "{e}"
    );
    let o = ctl(&p, &["credential", "suspend", "app", "--for", "soon"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        super::json(&p, &["status", "--json"])["suspended"]
            .as_array()
            .unwrap()
            .is_empty()
    );
}

#[test]
fn a_timed_suspension_lifts_by_itself() {
    let ca = TestCa::new();
    let up = MockUpstream::start(&ca);
    let p = Postern::start(&ca, &config(&up.url()));
    let mut open = logged_in(&p, &ca);
    let out = ok(&p, &["credential", "suspend", "app", "--for", "2s"]);
    assert!(out.contains("suspended until 20"), "{out}");
    open.cmd("MAIL FROM:<app@example.com>")
        .expect(550, "5.7.1", "MAIL while suspended");
    auth(&p, &ca, PASSWORD).expect(535, "5.7.8", "AUTH while suspended");
    let status = super::json(&p, &["status", "--json"]);
    assert!(
        status["suspended"][0]["until"].as_u64().is_some(),
        "{status:#}"
    );
    std::thread::sleep(Duration::from_millis(2500));
    auth(&p, &ca, PASSWORD).expect(235, "2.7.0", "AUTH after the expiry");
    open.cmd("MAIL FROM:<app@example.com>").expect(
        250,
        "2.1.0",
        "MAIL after the expiry, same session",
    );
    assert!(
        super::json(&p, &["status", "--json"])["suspended"]
            .as_array()
            .unwrap()
            .is_empty()
    );
}

/// `[alerts] on_volume_spike = "suspend"` suspends through the same record
/// (shown with `by = alerts`), and its `volume_suspend_for` lifts it.
#[test]
fn a_volume_spike_suspends_until_its_expiry() {
    let ca = TestCa::new();
    let up = MockUpstream::start(&ca);
    let mut cfg = Config::new(&up.url())
        .listeners(&["none"])
        .with_loopback_network();
    cfg.extra = "[alerts]\nauth_failures_per_network = \"off\"\n\
                 auth_failures_per_username = \"off\"\ninspection_refusals = \"off\"\n\
                 delivery_failure_ratio = \"off\"\nqueue_age = \"off\"\n\
                 volume_spike_factor = 3\nvolume_min_messages = 5\nvolume_window = \"4s\"\n\
                 volume_baseline = 2\non_volume_spike = \"suspend\"\nvolume_suspend_for = \"3s\"\n"
        .to_string();
    let p = Postern::start(&ca, &cfg);
    let mut c = SmtpClient::connect(p.port(0));
    c.greet();
    let send = |c: &mut SmtpClient, i: usize| -> Result<(), Reply> {
        let r = c.cmd("MAIL FROM:<app@example.com>");
        if r.code != 250 {
            return Err(r);
        }
        c.cmd("RCPT TO:<bob@dest.test>")
            .expect(250, "2.1.5", "RCPT");
        let msg = simple_message("app@example.com", "bob@dest.test", &format!("m{i}"));
        c.data(&msg).expect(250, "2.0.0", "message");
        Ok(())
    };
    // Windows are aligned to the clock; a credential is judged against
    // its own history, so it first needs a window of ordinary traffic.
    let next_window = || {
        let ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as u64;
        std::thread::sleep(Duration::from_millis(4000 - ms % 4000 + 100));
    };
    for round in 0..2 {
        next_window();
        for i in 0..2 {
            send(&mut c, round * 2 + i).expect("steady traffic is not refused");
        }
    }
    next_window();
    let mut refusal = None;
    for i in 0..20 {
        if let Err(r) = send(&mut c, 10 + i) {
            refusal = Some((i, r));
            break;
        }
    }
    let (i, r) = refusal.expect("the burst was never refused");
    assert!(
        i >= 5,
        "refused after {i} messages, below volume_min_messages"
    );
    r.expect(550, "5.7.1", "MAIL after the spike");
    assert_eq!(r.text(), "5.7.1 Credential \"local\" is suspended");
    let status = super::json(&p, &["status", "--json"]);
    let s = &status["suspended"][0];
    assert_eq!(
        (s["credential"].as_str(), s["by"].as_str()),
        (Some("local"), Some("alerts"))
    );
    assert!(
        s["reason"].as_str().unwrap().contains("volume_spike"),
        "{s:#}"
    );
    let until = s["until"].as_u64().expect("an expiry");
    assert!(until <= s["since"].as_u64().unwrap() + 3, "{s:#}");
    p.wait_log_line(&["event=\"suspended\"", "by=\"alerts\""]);
    std::thread::sleep(Duration::from_millis(3500));
    c.cmd("MAIL FROM:<app@example.com>").expect(
        250,
        "2.1.0",
        "MAIL after the expiry, same session",
    );
}
