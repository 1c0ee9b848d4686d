//! `postern spool ...` and `postern status` against the real daemon over
//! its control socket, and against a stopped daemon's spool: listing (human
//! and JSON), show (headers, never the body; history), retry of a dead
//! letter (delivered, bytes checked), purge (gone from disk), hold and
//! release (a held message is not delivered though due, across a restart),
//! refusals without a daemon, the socket's mode. Credentials: `credential`.

use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::process::Output;
use std::time::Duration;

use crate::common::clients::{postern_bin, postern_cmd};
use crate::common::*;

mod credential;

/// Plain listener with the loopback `networks` credential, so messages go in
/// without TLS; `retry` is the delivery back-off (initial = max).
fn networked(url: &str, retry: &str) -> Config {
    let mut c = Config::new(url)
        .listeners(&["none"])
        .with_loopback_network();
    c.delivery = vec![
        format!("retry_initial = \"{retry}\""),
        format!("retry_max = \"{retry}\""),
    ];
    c
}

/// `postern ARGS --config <p's config>` with empty stdin (not a terminal).
fn ctl(p: &Postern, args: &[&str]) -> Output {
    let config = p.config_path.to_string_lossy().into_owned();
    let mut all: Vec<&str> = args.to_vec();
    all.extend(["--config", config.as_str()]);
    postern_cmd(&all, b"")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Runs a command that must succeed; returns its stdout.
#[track_caller]
fn ok(p: &Postern, args: &[&str]) -> String {
    let o = ctl(p, args);
    assert!(
        o.status.success(),
        "postern {args:?} failed ({:?})\nstdout: {}\nstderr: {}\nlog:\n{}",
        o.status,
        stdout(&o),
        stderr(&o),
        p.log()
    );
    stdout(&o)
}

/// Runs a command that must fail with exit 1; returns its stderr.
#[track_caller]
fn refused(p: &Postern, args: &[&str]) -> String {
    let o = ctl(p, args);
    assert_eq!(
        o.status.code(),
        Some(1),
        "postern {args:?} should exit 1\nstdout: {}\nstderr: {}",
        stdout(&o),
        stderr(&o)
    );
    stderr(&o)
}

/// Runs `postern ARGS --config ...` on a pseudo-terminal (util-linux
/// `script`), typing `input`; returns the exit code and everything the
/// terminal showed.
fn on_a_terminal(p: &Postern, args: &[&str], input: &str) -> (Option<i32>, String) {
    use std::io::Write;
    let quote = |s: &str| format!("'{}'", s.replace('\'', "'\\''"));
    let mut line: Vec<String> = vec![quote(postern_bin())];
    line.extend(args.iter().map(|a| quote(a)));
    line.push("--config".into());
    line.push(quote(&p.config_path.to_string_lossy()));
    let mut child = std::process::Command::new("script")
        .args(["-qec", &line.join(" "), "/dev/null"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run script (util-linux)");
    // Typed once the prompt is up; the pty buffers it either way.
    std::thread::sleep(Duration::from_millis(500));
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let out = child.wait_with_output().expect("wait for script");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code(), text)
}

/// Panics unless one line of `text` has every part.
#[track_caller]
fn line_with(text: &str, parts: &[&str]) {
    assert!(
        text.lines().any(|l| parts.iter().all(|p| l.contains(p))),
        "no line with {parts:?} in:\n{text}"
    );
}

#[track_caller]
fn json(p: &Postern, args: &[&str]) -> serde_json::Value {
    let out = ok(p, args);
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("postern {args:?}: not JSON ({e}): {out}"))
}

/// Submits one message over the plain listener; returns (queue id, content).
fn submit(p: &Postern, subject: &str) -> (String, Vec<u8>) {
    let mut c = SmtpClient::connect(p.port(0));
    c.greet();
    let msg = simple_message("app@example.com", "bob@dest.test", subject);
    let r = c.send_message(
        "app@example.com",
        &["bob@dest.test", "carol@dest.test"],
        &msg,
    );
    r.expect(250, "2.0.0", "end of data");
    let id = r.queue_id().expect("queue id");
    c.quit();
    (id, msg)
}

/// The listing entry for `id`.
#[track_caller]
fn entry<'a>(list: &'a serde_json::Value, id: &str) -> &'a serde_json::Value {
    list.as_array()
        .expect("array")
        .iter()
        .find(|m| m["id"] == id)
        .unwrap_or_else(|| panic!("{id} not listed: {list:#}"))
}

/// Waits until the upstream has seen `n` requests, then a moment more for
/// the daemon to record the outcome.
fn attempts(p: &Postern, up: &MockUpstream, n: usize) {
    p.delivered(up, n);
    std::thread::sleep(Duration::from_millis(300));
}

#[test]
fn list_and_show_a_live_queue_in_text_and_json() {
    let ca = TestCa::new();
    let up = MockUpstream::with_default(&ca, Scripted::status(503).body(b"maintenance"));
    let p = Postern::start(&ca, &networked(&up.url(), "1h"));
    let (a, msg) = submit(&p, "first one");
    let (b, _) = submit(&p, "second one");
    attempts(&p, &up, 2);

    let list = json(&p, &["spool", "list", "--json"]);
    assert_eq!(list.as_array().unwrap().len(), 2, "{list:#}");
    let m = entry(&list, &a);
    assert_eq!(m["state"], "queued");
    assert_eq!(m["sender"], "app@example.com");
    assert_eq!(
        m["recipients"],
        serde_json::json!(["bob@dest.test", "carol@dest.test"])
    );
    assert_eq!(m["credential"], "local");
    let (env, data) = read_spool_file(&p.queue_dir().join(&a));
    assert_eq!(m["size"], data.len() as u64);
    assert_eq!(m["received_at"], env["received_at"]);
    assert_eq!(m["attempts"], 1);
    assert!(m["last_error"].as_str().unwrap().contains("503"), "{m:#}");
    assert_eq!(m["last_upstream"], "api");
    // The next attempt is the back-off's hour away.
    let next = m["next_attempt"].as_u64().unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    assert!(
        (now + 2800..=now + 4400).contains(&next),
        "next {next}, now {now}"
    );

    let text = ok(&p, &["spool", "list"]);
    for want in [
        a.as_str(),
        b.as_str(),
        "<app@example.com> -> <bob@dest.test> (+1 more)",
        "last error: api: ",
        "2 message(s)",
    ] {
        assert!(text.contains(want), "list lacks {want:?}:\n{text}");
    }
    assert_eq!(
        ok(&p, &["spool", "list", "--dead"]).trim(),
        "no dead letters"
    );

    let show = ok(&p, &["spool", "show", &a]);
    for want in [
        format!("Message {a}"),
        "state:        queued (next attempt in".to_string(),
        "Subject: first one".to_string(),
        "Message-ID: <first-one@example.com>".to_string(),
        "recipients:   <bob@dest.test>, <carol@dest.test>".to_string(),
        "History:".to_string(),
    ] {
        assert!(show.contains(&want), "show lacks {want:?}:\n{show}");
    }
    line_with(&show, &["  api ", " transient ", "503"]);
    // Never the body.
    for body in ["Hello.", "A line that starts with a dot", "Bye."] {
        assert!(
            !show.contains(body),
            "show printed the body ({body:?}):\n{show}"
        );
        assert!(contains(&msg, body.as_bytes()), "test message has {body:?}");
    }
    let view = json(&p, &["spool", "show", &a, "--json"]);
    assert_eq!(view["id"], a.as_str());
    assert_eq!(view["route"], "default");
    assert_eq!(view["history"][0]["outcome"], "transient");
    assert_eq!(view["history"][0]["upstream"], "api");
    assert!(!view["headers"].as_str().unwrap().contains("Hello."));

    let missing = refused(&p, &["spool", "show", "0000000000000000000000"]);
    assert!(missing.contains("no message"), "{missing}");
    let bad = refused(&p, &["spool", "show", "../../etc/passwd"]);
    assert!(bad.contains("invalid message id"), "{bad}");
}

#[test]
fn a_retried_dead_letter_is_delivered() {
    let ca = TestCa::new();
    let up = MockUpstream::start(&ca);
    up.push(Scripted::status(400).body(b"bad recipient"));
    let p = Postern::start(&ca, &networked(&up.url(), "200ms"));
    let (id, msg) = submit(&p, "dead then retried");
    let ok_dead = wait_until(Duration::from_secs(30), || {
        p.dead_files().iter().any(|f| f == &id)
    });
    assert!(ok_dead, "never dead-lettered; log:\n{}", p.log());
    let dead = json(&p, &["spool", "list", "--dead", "--json"]);
    let m = entry(&dead, &id);
    assert_eq!(m["state"], "dead");
    assert!(m["last_error"].as_str().unwrap().contains("400"), "{m:#}");
    assert!(m["dead_at"].as_u64().is_some());
    assert_eq!(up.count(), 1);

    let out = ok(&p, &["spool", "retry", &id]);
    assert!(out.contains(&format!("{id}: requeued")), "{out}");
    let reqs = p.delivered(&up, 2);
    assert_eq!(reqs[1].one_header("x-postern-queue-id"), id);
    assert_forwarded(&reqs[1].body, &msg);
    assert_eq!(
        reqs[0].body, reqs[1].body,
        "the same bytes as the first time"
    );
    p.wait_queue_empty();
    assert!(p.dead_files().is_empty(), "{:?}", p.dead_files());
    p.wait_log_line(&["event=\"requeued\"", &id]);
    // Nothing dead any more: --all-dead has nothing to do.
    assert_eq!(
        ok(&p, &["spool", "retry", "--all-dead"]).trim(),
        "no dead letters"
    );
    // An id that is nowhere is an error for that id, exit 1.
    let e = refused(&p, &["spool", "retry", &id]);
    assert!(e.contains("no message"), "{e}");
}

#[test]
fn purge_deletes_for_good_and_asks_first() {
    let ca = TestCa::new();
    let up = MockUpstream::with_default(&ca, Scripted::status(400).body(b"no"));
    let p = Postern::start(&ca, &networked(&up.url(), "1h"));
    let (dead, _) = submit(&p, "to be purged");
    assert!(wait_until(Duration::from_secs(30), || p
        .dead_files()
        .contains(&dead)));
    assert!(p.dead_files().contains(&format!("{dead}.reason")));
    // stdin is not a terminal: without --yes nobody can be asked.
    let e = refused(&p, &["spool", "purge", &dead]);
    assert!(e.contains("pass --yes"), "{e}");
    assert!(
        p.dead_files().contains(&dead),
        "purged without confirmation"
    );

    // At a terminal the operator is asked; only "y" purges.
    let (code, out) = on_a_terminal(&p, &["spool", "purge", &dead], "n\n");
    assert_eq!(code, Some(1), "{out}");
    assert!(
        out.contains("for good? This cannot be undone. [y/N]"),
        "{out}"
    );
    assert!(out.contains("nothing purged"), "{out}");
    assert!(
        p.dead_files().contains(&dead),
        "purged though the answer was no"
    );
    let (code, out) = on_a_terminal(&p, &["spool", "purge", &dead], "y\n");
    assert_eq!(code, Some(0), "{out}");
    assert!(
        out.contains(&format!("{dead}: purged from the dead letters")),
        "{out}"
    );

    up.set_default(Scripted::status(503).body(b"later"));
    let (queued, _) = submit(&p, "queued, then purged");
    attempts(&p, &up, 2);
    assert!(p.queue_files().contains(&format!("{queued}.retry")));
    let out = ok(&p, &["spool", "purge", "--yes", &queued]);
    assert!(
        out.contains(&format!("{queued}: purged from the queue")),
        "{out}"
    );
    assert!(p.dead_files().is_empty(), "{:?}", p.dead_files());
    assert!(p.queue_files().is_empty(), "{:?}", p.queue_files());
    p.wait_log_line(&["event=\"purged\"", &queued]);
    // Gone from the daemon's view too, and not attempted again.
    assert!(
        json(&p, &["spool", "list", "--json"])
            .as_array()
            .unwrap()
            .is_empty()
    );
    let e = refused(&p, &["spool", "purge", "--yes", &queued]);
    assert!(e.contains("no message"), "{e}");
}

#[test]
fn a_held_message_is_not_delivered_until_released_even_across_a_restart() {
    let ca = TestCa::new();
    let up = MockUpstream::start(&ca);
    up.push(Scripted::status(503).body(b"once"));
    // The retry is due 3 s after the first failure; the hold comes first.
    let mut p = Postern::start(&ca, &networked(&up.url(), "3s"));
    let (id, msg) = submit(&p, "held");
    attempts(&p, &up, 1);
    let out = ok(&p, &["spool", "hold", &id]);
    assert!(out.contains(&format!("{id}: held")), "{out}");
    assert!(p.queue_files().contains(&format!("{id}.hold")));
    let e = refused(&p, &["spool", "retry", &id]);
    assert!(e.contains("is held"), "{e}");
    // Well past the retry's due time, with the upstream answering 200.
    std::thread::sleep(Duration::from_secs(5));
    assert_eq!(up.count(), 1, "a held message was delivered");
    let m = json(&p, &["spool", "list", "--json"]);
    assert_eq!(entry(&m, &id)["state"], "held");
    assert!(entry(&m, &id)["held_since"].as_u64().is_some());

    // The hold is on disk: a restart does not deliver it either.
    p.sigterm();
    p.wait_exit(Duration::from_secs(30));
    p.restart(&networked(&up.url(), "3s"));
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(up.count(), 1, "held message delivered after a restart");

    let out = ok(&p, &["spool", "release", &id]);
    assert!(out.contains(&format!("{id}: released")), "{out}");
    let reqs = p.delivered(&up, 2);
    assert_forwarded(&reqs[1].body, &msg);
    p.wait_queue_empty();
    assert!(!p.queue_files().iter().any(|f| f.ends_with(".hold")));
    let e = refused(&p, &["spool", "release", &id]);
    assert!(e.contains("no message"), "{e}");
}

#[test]
fn a_stopped_daemon_spool_is_listed_and_changes_are_refused() {
    let ca = TestCa::new();
    let up = MockUpstream::with_default(&ca, Scripted::status(503).body(b"down"));
    up.push(Scripted::status(400).body(b"refused for good"));
    let mut p = Postern::start(&ca, &networked(&up.url(), "1h"));
    let (dead, _) = submit(&p, "dead one");
    assert!(wait_until(Duration::from_secs(30), || p
        .dead_files()
        .contains(&dead)));
    let (queued, _) = submit(&p, "queued one");
    attempts(&p, &up, 2);
    let socket = p.state_dir.join("control.sock");
    let meta = std::fs::metadata(&socket).expect("control.sock exists");
    assert!(meta.file_type().is_socket());
    assert_eq!(meta.permissions().mode() & 0o777, 0o600, "owner only");
    p.sigterm();
    p.wait_exit(Duration::from_secs(30));
    assert!(!socket.exists(), "the socket goes with the daemon");

    let o = ctl(&p, &["spool", "list", "--json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stderr(&o).contains("reading the spool"), "{}", stderr(&o));
    let list: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let m = entry(&list, &queued);
    assert_eq!(
        (m["state"].as_str(), m["attempts"].as_u64()),
        (Some("queued"), Some(1))
    );
    let o = ctl(&p, &["spool", "list", "--dead"]);
    assert!(
        o.status.success() && stdout(&o).contains(&dead),
        "{}",
        stdout(&o)
    );
    let o = ctl(&p, &["spool", "show", &dead]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("Subject: dead one"), "{}", stdout(&o));
    assert!(stdout(&o).contains("refused for good"), "{}", stdout(&o));

    for args in [
        vec!["spool", "retry", dead.as_str()],
        vec!["spool", "retry", "--all-dead"],
        vec!["spool", "purge", "--yes", dead.as_str()],
        vec!["spool", "hold", queued.as_str()],
        vec!["spool", "release", queued.as_str()],
        vec!["status"],
        vec!["credential", "suspend", "local"],
        vec!["credential", "resume", "local"],
    ] {
        let e = refused(&p, &args);
        assert!(
            e.contains("needs the running daemon") && e.contains("control.sock"),
            "{args:?}: {e}"
        );
    }
    // Nothing changed on disk.
    assert!(p.dead_files().contains(&dead));
    assert!(p.queue_files().contains(&queued));
    assert!(!p.queue_files().iter().any(|f| f.ends_with(".hold")));

    // After kill -9 the socket is stale; the next start replaces it.
    p.restart(&networked(&up.url(), "1h"));
    p.kill9();
    assert!(socket.exists(), "kill -9 leaves the socket behind");
    p.restart(&networked(&up.url(), "1h"));
    let list = json(&p, &["spool", "list", "--json"]);
    entry(&list, &queued);
    p.wait_log_line(&["removing a stale control socket"]);
}

#[test]
fn status_reports_listeners_queue_rate_upstreams_lockouts_and_quotas() {
    let ca = TestCa::new();
    let up = MockUpstream::start(&ca);
    let mut cfg = networked(&up.url(), "1h").listeners(&["none", "starttls"]);
    cfg = cfg
        .abuse("auth_failures = 2")
        .abuse("auth_failure_delay = \"0s\"");
    cfg.extra = "[quota.credential]\nper_hour = 1000\n".to_string();
    let p = Postern::start(&ca, &cfg);
    let (_id, _) = submit(&p, "counted");
    p.delivered(&up, 1);
    p.wait_queue_empty();
    for _ in 0..2 {
        let mut c = SmtpClient::connect(p.port(1));
        c.greet_starttls(&ca);
        c.auth_plain("app", "wrong password")
            .expect(535, "5.7.8", "bad AUTH");
    }

    let s = json(&p, &["status", "--json"]);
    let listeners = s["listeners"].as_array().unwrap();
    assert_eq!(listeners.len(), 2, "{s:#}");
    assert_eq!(listeners[0]["address"], format!("127.0.0.1:{}", p.port(0)));
    assert_eq!(listeners[0]["tls"], "none");
    assert_eq!(listeners[1]["tls"], "starttls");
    assert_eq!(s["queue"]["queued"], 0);
    assert_eq!(s["queue"]["dead"], 0);
    assert_eq!(s["delivery"]["delivered_1m"], 1);
    assert_eq!(s["delivery"]["failed_1m"], 0);
    assert_eq!(s["upstreams"][0]["name"], "api");
    assert_eq!(s["upstreams"][0]["breaker"], "closed");
    assert_eq!(s["pid"], p.pid());
    let lockouts: Vec<&str> = s["lockouts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["key"].as_str().unwrap())
        .collect();
    assert!(lockouts.contains(&"127.0.0.1"), "{lockouts:?}");
    assert!(lockouts.contains(&"user \"app\""), "{lockouts:?}");
    assert!(s["suspended"].as_array().unwrap().is_empty());
    let busiest = &s["busiest_quota_keys"][0];
    assert_eq!(busiest["key"], "credential local");
    assert_eq!(busiest["messages_hour"], 1);

    let text = ok(&p, &["status"]);
    for want in [
        format!(
            "listeners:    127.0.0.1:{} (none), 127.0.0.1:{} (starttls)",
            p.port(0),
            p.port(1)
        ),
        "queue:        0 queued".to_string(),
        "last minute 1 delivered, 0 failed".to_string(),
        "lockouts:".to_string(),
        "credential local".to_string(),
        "suspended:    none".to_string(),
    ] {
        assert!(text.contains(&want), "status lacks {want:?}:\n{text}");
    }
    line_with(&text, &["  api ", "breaker closed"]);
    line_with(&text, &["  127.0.0.1 ", " left"]);
}
