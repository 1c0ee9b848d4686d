//! The audit trail against the real binary: one message's whole life in
//! JSON log lines and at the journald wire level (a stand-in journald in a
//! private mount namespace, tests/py/journal_sink.py), `[log] audit_file`
//! across a logrotate-style rename and SIGHUP, and no secret in any log
//! line of a run at `trace` level.

use std::time::Duration;

use base64::Engine;
use serde_json::Value;

use crate::common::clients::{py_script, python_bin};
use crate::common::*;

/// Sends one message over STARTTLS + AUTH with one extra, refused
/// recipient; returns the queue id.
fn send_with_a_refused_recipient(p: &Postern, ca: &TestCa) -> String {
    let mut c = SmtpClient::connect(p.port(0));
    c.greet_starttls(ca);
    c.auth_plain("app", PASSWORD).expect(235, "2.7.0", "auth");
    c.cmd("MAIL FROM:<app@example.com>")
        .expect(250, "2.1.0", "mail");
    c.cmd("RCPT TO:<bob@dest.test>")
        .expect(250, "2.1.5", "rcpt");
    // A quoted local part a receiver could split: refused by default.
    c.cmd("RCPT TO:<\"x,y\"@dest.test>")
        .expect(553, "5.1.3", "refused rcpt");
    let r = c.data(&simple_message("app@example.com", "bob@dest.test", "audit"));
    r.expect(250, "2.0.0", "end of data");
    c.quit();
    r.queue_id().expect("queue id")
}

/// The audit events (target `audit`) among JSON log lines; every line must
/// be a JSON object.
fn audit_events(text: &str) -> Vec<Value> {
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str::<Value>(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .filter(|v| v["target"] == "audit")
        .collect()
}

fn names(events: &[&Value]) -> Vec<String> {
    events
        .iter()
        .map(|e| e["event"].as_str().unwrap_or("?").to_string())
        .collect()
}

#[test]
fn one_messages_life_is_a_complete_ordered_trail_of_json_lines() {
    let ca = TestCa::new();
    let up = MockUpstream::start(&ca);
    let mut cfg = Config::new(&up.url());
    cfg.log_format = "json".into();
    let p = Postern::start(&ca, &cfg);
    let id = send_with_a_refused_recipient(&p, &ca);
    p.delivered(&up, 1);
    p.wait_log_line(&[&id, "\"delivered\""]);

    let events = audit_events(&p.log());
    let accepted = events
        .iter()
        .find(|e| e["event"] == "accepted" && e["queue_id"] == id.as_str())
        .expect("accepted event");
    let session = accepted["session"].as_str().unwrap().to_string();
    assert!(session.starts_with('S'), "{accepted}");
    let of_session: Vec<&Value> = events
        .iter()
        .filter(|e| e["session"] == session.as_str())
        .collect();
    assert_eq!(
        names(&of_session),
        ["connection", "tls", "auth", "refused", "accepted"],
        "{of_session:?}"
    );
    let of_message: Vec<&Value> = events
        .iter()
        .filter(|e| e["queue_id"] == id.as_str())
        .collect();
    assert_eq!(
        names(&of_message),
        ["refused", "accepted", "delivered"],
        "{of_message:?}"
    );
    let [connection, tls, auth, refused, _] = of_session[..] else {
        unreachable!()
    };
    assert_eq!(connection["client_ip"], "127.0.0.1");
    assert_eq!(connection["listener"], format!("127.0.0.1:{}", p.port(0)));
    assert_eq!(
        connection["tls"], "none",
        "STARTTLS listener: plain until upgraded"
    );
    assert_eq!(tls["tls"], "TLSv1_3");
    assert!(
        tls["cipher"].as_str().unwrap().starts_with("TLS13_"),
        "{tls}"
    );
    assert_eq!(auth["credential"], "app");
    assert_eq!(auth["result"], "success");
    assert_eq!(refused["stage"], "rcpt");
    assert_eq!(refused["rule"], "local_part", "{refused}");
    assert!(
        refused["reply"].as_str().unwrap().starts_with("553 5.1.3"),
        "{refused}"
    );
    assert_eq!(accepted["credential"], "app");
    assert_eq!(accepted["sender"], "app@example.com");
    assert_eq!(accepted["recipients"], 1);
    assert!(accepted["size"].as_u64().unwrap() > 100, "{accepted}");
    let delivered = of_message[2];
    assert_eq!(delivered["upstream"], "api");
    assert_eq!(delivered["attempt"], 1);
    assert!(delivered["duration_ms"].is_u64(), "{delivered}");
}

#[test]
fn a_failed_attempt_is_an_attempt_and_a_deferred_event_before_delivered() {
    let ca = TestCa::new();
    let up = MockUpstream::start(&ca);
    up.push(Scripted::status(503).body(b"busy"));
    let mut cfg = Config::new(&up.url())
        .listeners(&["none"])
        .with_loopback_network();
    cfg.log_format = "json".into();
    let p = Postern::start(&ca, &cfg);
    let mut c = SmtpClient::connect(p.port(0));
    c.greet();
    let msg = simple_message("app@example.com", "bob@dest.test", "retried");
    let r = c.send_message("app@example.com", &["bob@dest.test"], &msg);
    r.expect(250, "2.0.0", "accepted");
    c.quit();
    let id = r.queue_id().unwrap();
    p.delivered(&up, 2);
    p.wait_log_line(&[&id, "\"delivered\""]);
    let events = audit_events(&p.log());
    let life: Vec<&Value> = events
        .iter()
        .filter(|e| e["queue_id"] == id.as_str())
        .collect();
    assert_eq!(
        names(&life),
        ["accepted", "attempt", "deferred", "delivered"],
        "{life:?}"
    );
    assert_eq!(life[1]["result"], "transient");
    assert_eq!(life[1]["attempt"], 1);
    assert!(
        life[1]["reason"].as_str().unwrap().contains("503"),
        "{}",
        life[1]
    );
    assert!(
        life[2]["next_attempt"].as_str().unwrap().ends_with('Z'),
        "{}",
        life[2]
    );
    assert_eq!(life[3]["attempt"], 2);
}

#[test]
fn a_failed_auth_is_an_audit_event_without_what_was_typed() {
    let ca = TestCa::new();
    let up = MockUpstream::start(&ca);
    let mut cfg = Config::new(&up.url());
    cfg.log_format = "json".into();
    let p = Postern::start(&ca, &cfg);
    let mut c = SmtpClient::connect(p.port(0));
    c.greet_starttls(&ca);
    c.auth_plain("hunter2-typed-as-name", "pw")
        .expect(535, "5.7.8", "unknown user");
    c.auth_plain("app", "wrong")
        .expect(535, "5.7.8", "bad password");
    c.quit();
    let ok = wait_until(Duration::from_secs(10), || {
        audit_events(&p.log())
            .iter()
            .filter(|e| e["event"] == "auth")
            .count()
            == 2
    });
    assert!(ok, "{}", p.log());
    let events = audit_events(&p.log());
    let auths: Vec<&Value> = events.iter().filter(|e| e["event"] == "auth").collect();
    assert_eq!(auths[0]["result"], "invalid");
    assert!(
        auths[0]["username"]
            .as_str()
            .unwrap()
            .starts_with("unknown user "),
        "{}",
        auths[0]
    );
    assert_eq!(auths[1]["username"], "app");
    assert!(!p.log().contains("hunter2-typed-as-name"));
}

#[test]
fn the_audit_file_survives_a_logrotate_rename_and_sighup() {
    let ca = TestCa::new();
    let up = MockUpstream::start(&ca);
    let mut cfg = Config::new(&up.url())
        .listeners(&["none"])
        .with_loopback_network();
    cfg.log = vec!["audit_file = \"audit.json\"".into()];
    let p = Postern::start(&ca, &cfg);
    let file = p.dir().join("audit.json");
    let send = |subject: &str| {
        let mut c = SmtpClient::connect(p.port(0));
        c.greet();
        let msg = simple_message("app@example.com", "bob@dest.test", subject);
        let r = c.send_message("app@example.com", &["bob@dest.test"], &msg);
        r.expect(250, "2.0.0", "accepted");
        c.quit();
        r.queue_id().unwrap()
    };
    let first = send("before rotation");
    p.delivered(&up, 1);
    p.wait_log_line(&[&first, "delivered"]);
    let rotated = p.dir().join("audit.json.1");
    std::fs::rename(&file, &rotated).unwrap();
    assert!(p.sighup(), "reload failed:\n{}", p.log());
    let second = send("after rotation");
    p.delivered(&up, 2);
    p.wait_log_line(&[&second, "delivered"]);
    // Lines reach the file as they happen; the sync is for crashes.
    let ok = wait_until(Duration::from_secs(5), || {
        std::fs::read_to_string(&file)
            .is_ok_and(|t| t.contains(&format!("\"{second}\"")) && t.contains("\"delivered\""))
    });
    assert!(ok);

    let old = std::fs::read_to_string(&rotated).unwrap();
    let new = std::fs::read_to_string(&file).unwrap();
    let mode =
        std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&file).unwrap().permissions());
    assert_eq!(mode & 0o777, 0o600, "the audit file is private");
    let in_file = |text: &str, id: &str| -> Vec<String> {
        let events = audit_events(text);
        assert_eq!(
            events.len(),
            text.lines().count(),
            "only audit events in the file:\n{text}"
        );
        events
            .iter()
            .filter(|e| e["queue_id"] == id)
            .map(|e| e["event"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(in_file(&old, &first), ["accepted", "delivered"]);
    assert_eq!(in_file(&new, &second), ["accepted", "delivered"]);
    assert!(in_file(&new, &first).is_empty() && in_file(&old, &second).is_empty());
}

#[test]
fn under_journald_each_event_carries_postern_fields() {
    let ca = TestCa::new();
    let up = MockUpstream::start(&ca);
    let out = tempfile::tempdir().unwrap();
    let journal = out.path().join("journal.jsonl");
    let mut cfg = Config::new(&up.url());
    cfg.log_format = "journald".into();
    // A tmpfs over /run/systemd in a private mount namespace: the stand-in
    // journald binds the socket there, the system's journal is untouched.
    cfg.wrapper = vec![
        "unshare".into(),
        "-m".into(),
        "sh".into(),
        "-c".into(),
        "mkdir -p /run/systemd && mount -t tmpfs tmpfs /run/systemd && exec \"$0\" \"$@\"".into(),
        python_bin(),
        py_script("journal_sink.py").to_string_lossy().into_owned(),
        journal.to_string_lossy().into_owned(),
        "--".into(),
    ];
    let p = Postern::start(&ca, &cfg);
    let id = send_with_a_refused_recipient(&p, &ca);
    p.delivered(&up, 1);
    let entries = || -> Vec<Value> {
        std::fs::read_to_string(&journal)
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    };
    let ok = wait_until(Duration::from_secs(10), || {
        entries()
            .iter()
            .any(|e| e["POSTERN_QUEUE_ID"] == id.as_str() && e["POSTERN_EVENT"] == "delivered")
    });
    assert!(ok, "no delivered entry in the journal:\n{:#?}", entries());
    let all = entries();
    let life: Vec<&Value> = all
        .iter()
        .filter(|e| e["POSTERN_QUEUE_ID"] == id.as_str())
        .collect();
    let events: Vec<&str> = life
        .iter()
        .map(|e| e["POSTERN_EVENT"].as_str().unwrap())
        .collect();
    assert_eq!(events, ["refused", "accepted", "delivered"], "{life:#?}");
    let accepted = life[1];
    assert_eq!(accepted["POSTERN_CREDENTIAL"], "app");
    assert_eq!(accepted["POSTERN_CLIENT_IP"], "127.0.0.1");
    assert_eq!(accepted["SYSLOG_IDENTIFIER"], "postern");
    assert_eq!(accepted["MESSAGE"], "accepted");
    assert_eq!(accepted["PRIORITY"], "5", "info is notice");
    assert_eq!(life[2]["POSTERN_UPSTREAM"], "api");
    assert_eq!(life[2]["POSTERN_ATTEMPT"], "1");
    assert_eq!(life[0]["POSTERN_RULE"], "local_part");
    assert!(
        life[0]["POSTERN_REPLY"]
            .as_str()
            .unwrap()
            .starts_with("553 5.1.3"),
        "{:#?}",
        life[0]
    );
    // The session's events are found by its id, as `journalctl
    // POSTERN_SESSION=...` would.
    let session = accepted["POSTERN_SESSION"].as_str().unwrap();
    let of_session: Vec<&str> = all
        .iter()
        .filter(|e| e["POSTERN_SESSION"] == session)
        .map(|e| e["POSTERN_EVENT"].as_str().unwrap())
        .collect();
    assert_eq!(
        of_session,
        ["connection", "tls", "auth", "refused", "accepted"]
    );
}

#[test]
fn no_secret_reaches_a_log_line_at_trace_level() {
    const UPSTREAM_TOKEN: &str = "upstream-bearer-9f8e7d";
    const ADMIN_TOKEN: &str = "admin-bearer-1a2b3c";
    let ca = TestCa::new();
    let up = MockUpstream::start(&ca);
    let admin = crate::common::postern::free_port();
    let mut cfg = Config::new(&up.url()).upstream("bearer_token = \"env:POSTERN_TEST_UP_TOKEN\"");
    cfg.log_level = "trace".into();
    cfg.log = vec!["audit_file = \"audit.json\"".into()];
    cfg.extra = format!(
        "[admin]\naddress = \"127.0.0.1:{admin}\"\nbearer_token = \"env:POSTERN_TEST_ADMIN_TOKEN\"\n"
    );
    let p = Postern::start_with_env(
        &ca,
        &cfg,
        &[
            ("POSTERN_TEST_UP_TOKEN", UPSTREAM_TOKEN),
            ("POSTERN_TEST_ADMIN_TOKEN", ADMIN_TOKEN),
        ],
    );
    send_with_a_refused_recipient(&p, &ca);
    let mut c = SmtpClient::connect(p.port(0));
    c.greet_starttls(&ca);
    c.auth_plain("app", "a-wrong-password-77")
        .expect(535, "5.7.8", "bad");
    c.quit();
    let got = p.delivered(&up, 1);
    assert_eq!(
        got[0].header("authorization"),
        Some(format!("Bearer {UPSTREAM_TOKEN}").as_str()),
        "the token was used"
    );
    let (status, _) = crate::common::http::get(admin, "/metrics", Some(ADMIN_TOKEN), None);
    assert_eq!(status, 200, "scraped with the token");
    p.wait_queue_empty();
    std::thread::sleep(Duration::from_millis(300));

    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    let secrets = [
        PASSWORD.to_string(),
        "a-wrong-password-77".to_string(),
        b64(&format!("\0app\0{PASSWORD}")),
        b64("\0app\0a-wrong-password-77"),
        UPSTREAM_TOKEN.to_string(),
        ADMIN_TOKEN.to_string(),
        // The password hash in the config.
        crate::common::clients::password_hash().to_string(),
    ];
    let log = p.log();
    let audit = std::fs::read_to_string(p.dir().join("audit.json")).unwrap();
    assert!(log.lines().count() > 100, "trace level logs a lot:\n{log}");
    for (name, text) in [("log", &log), ("audit file", &audit)] {
        for s in &secrets {
            assert!(!text.contains(s.as_str()), "{name} holds a secret ({s:?})");
        }
        // The message body never reaches a log either.
        assert!(!text.contains("Subject: audit"), "{name} holds the message");
    }
}
