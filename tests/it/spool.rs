//! Durability and delivery outcomes: a message answered 250 survives
//! `kill -9` and SIGTERM and is delivered exactly once after restart;
//! temporary upstream failures are retried; permanent ones are dead-lettered
//! with the upstream's reason and not retried.

use std::time::Duration;

use crate::common::*;

fn networked(url: &str) -> Config {
    Config::new(url)
        .listeners(&["none"])
        .with_loopback_network()
}

/// Sends one message over the plain networks listener; returns (queue id, content).
fn submit(p: &Postern, subject: &str) -> (String, Vec<u8>) {
    let mut c = SmtpClient::connect(p.port(0));
    c.greet();
    let msg = simple_message("app@example.com", "bob@dest.test", subject);
    let r = c.send_message("app@example.com", &["bob@dest.test"], &msg);
    r.expect(250, "2.0.0", "end of data");
    let id = r.queue_id().expect("queue id");
    c.quit();
    (id, msg)
}

/// After the spool emptied, give a redelivery bug time to show itself.
fn settle() {
    std::thread::sleep(Duration::from_millis(1500));
}

#[test]
fn kill9_after_accept_delivers_exactly_once_after_restart() {
    let ca = TestCa::new();
    let down = MockUpstream::with_default(&ca, Scripted::status(503).body(b"maintenance"));
    let mut p = Postern::start(&ca, &networked(&down.url()));
    let (id, msg) = submit(&p, "crash safety");
    // It was accepted, and the upstream refused it at least once.
    p.delivered(&down, 1);
    assert!(
        p.queue_files().iter().any(|f| f == &id),
        "accepted message {id} not in spool/queue: {:?}",
        p.queue_files()
    );
    p.kill9();
    assert!(
        p.queue_files().iter().any(|f| f == &id),
        "message lost by kill -9"
    );

    let healthy = MockUpstream::start(&ca);
    p.restart(&networked(&healthy.url()));
    let reqs = p.delivered(&healthy, 1);
    assert_eq!(reqs[0].one_header("x-postern-queue-id"), id);
    assert_forwarded(&reqs[0].body, &msg);
    p.wait_queue_empty();
    settle();
    assert_eq!(
        healthy.count(),
        1,
        "delivered more than once: {:#?}",
        healthy.requests()
    );
    assert!(
        p.dead_files().is_empty(),
        "dead letters: {:?}",
        p.dead_files()
    );
}

#[test]
fn upstream_503_then_200_is_retried() {
    let ca = TestCa::new();
    let up = MockUpstream::start(&ca);
    up.push(Scripted::status(503).body(b"try later"));
    let p = Postern::start(&ca, &networked(&up.url()));
    let (id, msg) = submit(&p, "retry");
    let reqs = p.delivered(&up, 2);
    for r in &reqs[..2] {
        assert_eq!(r.one_header("x-postern-queue-id"), id);
        assert_forwarded(&r.body, &msg);
    }
    assert_eq!(
        reqs[0].body, reqs[1].body,
        "the retry must send the same bytes"
    );
    p.wait_queue_empty();
    settle();
    assert_eq!(
        up.count(),
        2,
        "one failure + one success: {:#?}",
        up.requests()
    );
    assert!(
        p.dead_files().is_empty(),
        "dead letters: {:?}",
        p.dead_files()
    );
}

#[test]
fn upstream_that_hangs_times_out_and_is_retried() {
    let ca = TestCa::new();
    let up = MockUpstream::start(&ca);
    up.push(Scripted::hang());
    let mut cfg = networked(&up.url());
    cfg.upstream_timeout = "1s".into();
    let p = Postern::start(&ca, &cfg);
    let (id, msg) = submit(&p, "hanging upstream");
    let reqs = p.delivered(&up, 2);
    for r in &reqs[..2] {
        assert_eq!(r.one_header("x-postern-queue-id"), id);
        assert_forwarded(&r.body, &msg);
    }
    p.wait_queue_empty();
    assert!(
        p.dead_files().is_empty(),
        "dead letters: {:?}",
        p.dead_files()
    );
}

#[test]
fn upstream_400_dead_letters_with_reason_and_no_retry() {
    let ca = TestCa::new();
    let body = br#"{"error":"recipient domain rejected: XYZZY-42"}"#;
    let up = MockUpstream::with_default(&ca, Scripted::status(400).body(body));
    let p = Postern::start(&ca, &networked(&up.url()));
    let (id, msg) = submit(&p, "dead letter");
    p.delivered(&up, 1);
    let reason_path = p.dead_dir().join(format!("{id}.reason"));
    let ok = wait_until(Duration::from_secs(60), || reason_path.exists());
    assert!(
        ok,
        "no {}; dead/: {:?}\nlog:\n{}",
        reason_path.display(),
        p.dead_files(),
        p.log()
    );
    p.wait_queue_empty();

    let reason: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&reason_path).expect("read reason"))
            .expect("reason file is JSON");
    let text = reason["reason"].as_str().expect("\"reason\" is a string");
    assert!(
        text.contains("XYZZY-42"),
        "reason does not carry the upstream body: {text:?}"
    );
    let (_, raw) = read_spool_file(&p.dead_dir().join(&id));
    assert_forwarded(&raw, &msg);
    settle();
    assert_eq!(up.count(), 1, "a permanent failure must not be retried");
}

#[test]
fn sigterm_with_upstream_down_keeps_message_queued_and_exits_0() {
    let ca = TestCa::new();
    let down = MockUpstream::with_default(&ca, Scripted::status(503).body(b"down"));
    let cfg = networked(&down.url()).server("shutdown_timeout = \"5s\"");
    let mut p = Postern::start(&ca, &cfg);
    let (id, msg) = submit(&p, "graceful shutdown");
    p.delivered(&down, 1);
    p.sigterm();
    let st = p.wait_exit(Duration::from_secs(60));
    assert_eq!(st.code(), Some(0), "exit status {st}; log:\n{}", p.log());
    // queue/ID must be there; anything else must be a sidecar of it (ID.something).
    let files = p.queue_files();
    assert!(files.contains(&id), "spool/queue after shutdown: {files:?}");
    assert!(
        files
            .iter()
            .all(|f| f == &id || f.starts_with(&format!("{id}."))),
        "unexpected files in spool/queue: {files:?}"
    );
    let (env, raw) = read_spool_file(&p.queue_dir().join(&id));
    assert!(env.is_object(), "envelope line: {env}");
    assert_forwarded(&raw, &msg);

    // And it is delivered once the upstream is back.
    let healthy = MockUpstream::start(&ca);
    p.restart(&networked(&healthy.url()));
    let reqs = p.delivered(&healthy, 1);
    assert_eq!(reqs[0].one_header("x-postern-queue-id"), id);
    assert_forwarded(&reqs[0].body, &msg);
    p.wait_queue_empty();
    settle();
    assert_eq!(healthy.count(), 1);
}
