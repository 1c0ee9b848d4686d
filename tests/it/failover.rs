//! Routing across a route's upstreams with the real binary: failover to the
//! next upstream on transient failures, the circuit breaker that skips a
//! failing primary and returns traffic to it once it recovers, no failover
//! on permanent refusals, and `on_ambiguous` for requests that timed out
//! after they were sent. Two mock APIs on loopback record what reached each.

use std::time::Duration;

use crate::common::postern::toml_str;
use crate::common::*;

/// The default config with a plain networks listener and route
/// `["api", "backup"]` (`api` at `primary`, `backup` at `backup`).
fn two_upstreams(ca: &TestCa, primary: &MockUpstream, backup: &MockUpstream) -> Config {
    let mut cfg = Config::new(&primary.url())
        .listeners(&["none"])
        .with_loopback_network();
    cfg.default_route = vec!["api".into(), "backup".into()];
    cfg.extra = format!(
        "[upstreams.backup]\nkind = \"http\"\nurl = {}\nca_file = {}\ntimeout = \"10s\"\n",
        toml_str(&backup.url()),
        toml_str(&ca.ca_pem.to_string_lossy())
    );
    cfg
}

/// Sends one message over the plain listener; returns (queue id, content).
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

/// Asserts `req` carries message `id` with exactly the submitted bytes.
#[track_caller]
fn assert_is(req: &Recorded, id: &str, msg: &[u8]) {
    assert_eq!(req.one_header("x-postern-queue-id"), id);
    assert_forwarded(&req.body, msg);
}

/// Waits until the log has a line containing every one of `parts`.
#[track_caller]
fn wait_log_line(p: &Postern, parts: &[&str]) -> String {
    p.wait_log_line(parts)
}

#[test]
fn transient_failure_on_the_primary_is_delivered_by_the_backup() {
    let ca = TestCa::new();
    let primary = MockUpstream::with_default(&ca, Scripted::status(503).body(b"maintenance"));
    let backup = MockUpstream::start(&ca);
    let p = Postern::start(&ca, &two_upstreams(&ca, &primary, &backup));
    let (id, msg) = submit(&p, "failover");

    let at_backup = p.delivered(&backup, 1);
    assert_is(&at_backup[0], &id, &msg);
    p.wait_queue_empty();
    settle();
    let at_primary = primary.requests();
    assert_eq!(at_primary.len(), 1, "one failed try: {at_primary:#?}");
    assert_is(&at_primary[0], &id, &msg);
    assert_eq!(backup.count(), 1);
    assert!(p.dead_files().is_empty(), "{:?}", p.dead_files());
    let line = wait_log_line(&p, &[&id, "delivered"]);
    assert!(line.contains("backup"), "{line}");
}

#[test]
fn breaker_skips_a_failing_primary_and_returns_traffic_after_the_cooldown() {
    let ca = TestCa::new();
    let primary = MockUpstream::with_default(&ca, Scripted::status(503).body(b"down"));
    let backup = MockUpstream::start(&ca);
    let cfg = two_upstreams(&ca, &primary, &backup)
        .upstream("breaker_failures = 2")
        .upstream("breaker_cooldown = \"4s\"");
    let p = Postern::start(&ca, &cfg);

    // Two failures (one per message) open the primary's breaker.
    let (id1, msg1) = submit(&p, "first");
    assert_is(&p.delivered(&backup, 1)[0], &id1, &msg1);
    let (id2, msg2) = submit(&p, "second");
    let open = wait_log_line(&p, &["circuit breaker open", "api"]);
    assert!(
        open.contains("WARN") && open.contains("state=open"),
        "{open}"
    );

    // Open: a new message goes straight to the backup. (It is sent right
    // away, well inside the cool-down: milliseconds of its 4 s, which
    // leaves room for a slow, loaded CI machine.)
    let (id3, msg3) = submit(&p, "third");
    let at_backup = p.delivered(&backup, 3);
    p.wait_queue_empty();
    let by_id = |id: &str| {
        let found: Vec<&Recorded> = at_backup
            .iter()
            .filter(|r| r.header("x-postern-queue-id") == Some(id))
            .collect();
        assert_eq!(found.len(), 1, "{id} at the backup: {at_backup:#?}");
        found[0]
    };
    assert_is(by_id(&id2), &id2, &msg2);
    assert_is(by_id(&id3), &id3, &msg3);
    let at_primary = primary.requests();
    assert_eq!(at_primary.len(), 2, "open breaker: primary not touched");
    assert_is(&at_primary[0], &id1, &msg1);
    assert_is(&at_primary[1], &id2, &msg2);
    let line = wait_log_line(&p, &[&id3, "delivered"]);
    assert!(
        line.contains("backup") && line.contains("attempt=1"),
        "{line}"
    );

    // The primary recovers; after the cool-down the next message probes it
    // and traffic returns to it.
    primary.set_default(Scripted::ok());
    let mut probe = None;
    let ok = wait_until(Duration::from_secs(60), || {
        let (id, msg) = submit(&p, "probe");
        p.wait_queue_empty();
        if primary.count() > 2 {
            probe = Some((id, msg));
            return true;
        }
        std::thread::sleep(Duration::from_millis(200));
        false
    });
    assert!(ok, "primary never probed; log:\n{}", p.log());
    let (probe_id, probe_msg) = probe.expect("probe message");
    let at_primary = primary.requests();
    assert_eq!(at_primary.len(), 3, "{at_primary:#?}");
    assert_is(&at_primary[2], &probe_id, &probe_msg);
    let backup_before = backup.count();
    assert!(
        !backup
            .requests()
            .iter()
            .any(|r| r.header("x-postern-queue-id") == Some(probe_id.as_str())),
        "the probe succeeded, so the backup never saw it"
    );

    let (id5, msg5) = submit(&p, "after recovery");
    assert_is(&p.delivered(&primary, 4)[3], &id5, &msg5);
    p.wait_queue_empty();
    settle();
    assert_eq!(
        backup.count(),
        backup_before,
        "traffic is back on the primary"
    );
    assert_eq!(primary.count(), 4);
    assert!(p.dead_files().is_empty(), "{:?}", p.dead_files());

    let half = wait_log_line(&p, &["circuit breaker half-open", "api"]);
    assert!(half.contains("INFO"), "{half}");
    let closed = wait_log_line(&p, &["circuit breaker closed", "api"]);
    assert!(closed.contains("INFO"), "{closed}");
    let log = p.log();
    let pos = |needle: &str| log.find(needle).unwrap_or(usize::MAX);
    assert!(
        pos("circuit breaker open") < pos("circuit breaker half-open")
            && pos("circuit breaker half-open") < pos("circuit breaker closed"),
        "state changes out of order:\n{log}"
    );
}

#[test]
fn permanent_refusal_on_the_primary_does_not_fail_over() {
    let ca = TestCa::new();
    let primary = MockUpstream::with_default(
        &ca,
        Scripted::status(400).body(br#"{"error":"mailbox unknown: QX-7"}"#),
    );
    let backup = MockUpstream::start(&ca);
    let p = Postern::start(&ca, &two_upstreams(&ca, &primary, &backup));
    let (id, msg) = submit(&p, "permanent");
    let reason_path = p.dead_dir().join(format!("{id}.reason"));
    let ok = wait_until(Duration::from_secs(60), || reason_path.exists());
    assert!(ok, "not dead-lettered; log:\n{}", p.log());
    p.wait_queue_empty();
    settle();
    assert_eq!(
        backup.count(),
        0,
        "the backup must not get a refused message"
    );
    assert_eq!(primary.count(), 1);
    assert_is(&primary.requests()[0], &id, &msg);
    let reason = std::fs::read_to_string(&reason_path).expect("read reason");
    assert!(reason.contains("QX-7"), "{reason}");
}

/// One upstream that takes the request and never answers (1s timeout).
fn hanging(ca: &TestCa, up: &MockUpstream, on_ambiguous: Option<&str>) -> Postern {
    up.push(Scripted::hang());
    let mut cfg = Config::new(&up.url())
        .listeners(&["none"])
        .with_loopback_network();
    cfg.upstream_timeout = "1s".into();
    if let Some(v) = on_ambiguous {
        cfg = cfg.upstream(&format!("on_ambiguous = {}", toml_str(v)));
    }
    Postern::start(ca, &cfg)
}

#[test]
fn ambiguous_timeout_with_dead_letter_is_not_sent_again() {
    let ca = TestCa::new();
    let up = MockUpstream::start(&ca);
    let p = hanging(&ca, &up, Some("dead-letter"));
    let (id, msg) = submit(&p, "ambiguous dead");
    let reason_path = p.dead_dir().join(format!("{id}.reason"));
    let ok = wait_until(Duration::from_secs(60), || reason_path.exists());
    assert!(ok, "not dead-lettered; log:\n{}", p.log());
    p.wait_queue_empty();
    settle();
    assert_eq!(up.count(), 1, "never sent twice: {:#?}", up.requests());
    assert_is(&up.requests()[0], &id, &msg);
    let reason: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&reason_path).expect("read reason"))
            .expect("reason is JSON");
    let text = reason["reason"].as_str().expect("reason text");
    assert!(text.contains("no response within 1s"), "{text}");
    assert!(text.contains("may have delivered"), "{text}");
    let (_, raw) = read_spool_file(&p.dead_dir().join(&id));
    assert_forwarded(&raw, &msg);
    assert!(!p.log().contains("possible duplicate"), "{}", p.log());
}

#[test]
fn ambiguous_timeout_with_retry_is_retried_and_logged_as_possible_duplicate() {
    let ca = TestCa::new();
    let up = MockUpstream::start(&ca);
    let p = hanging(&ca, &up, None);
    let (id, msg) = submit(&p, "ambiguous retry");
    let reqs = p.delivered(&up, 2);
    assert_is(&reqs[0], &id, &msg);
    assert_is(&reqs[1], &id, &msg);
    p.wait_queue_empty();
    assert!(p.dead_files().is_empty(), "{:?}", p.dead_files());
    let line = wait_log_line(&p, &["possible duplicate", &id]);
    assert!(line.contains("WARN") && line.contains("api"), "{line}");
}
