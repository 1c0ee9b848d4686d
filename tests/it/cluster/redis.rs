//! The state shared through a real redis-server (`[cluster]`): quotas
//! across three nodes (behind HAProxy, and straight to each node with our
//! own PROXY header when the test needs to pick the node), Redis killed
//! and restarted mid-load, `on_redis_down = "tempfail"`, lockouts and
//! known clients, suspensions and the anomaly windows.

use std::time::Duration;

use serde_json::Value;

use super::{CLIENT, audit, ctl, events, ip, send_plain, v2_header};
use crate::common::cluster::{Haproxy, Redis};
use crate::common::*;

/// Node `i` of three on `redis`: `cfg` with its listeners taking PROXY
/// headers from 127.0.0.1 (HAProxy's, or our own to pick the client) and
/// `[cluster]` last, so lines pushed onto `extra` afterwards land in it.
fn cluster_node(cfg: Config, redis: &Redis, i: usize) -> Config {
    let mut cfg = cfg.behind_proxy("127.0.0.1/32");
    cfg.extra.push_str(&format!(
        "\n[cluster]\nredis = \"{}\"\nnode_id = \"node{i}\"\nexpected_nodes = 3\ntimeout = \"300ms\"\n",
        redis.url()
    ));
    cfg
}

/// The three nodes of a cluster on `redis`, node `i` started from
/// `cluster_node(base(i), redis, i)`.
fn three_nodes(ca: &TestCa, redis: &Redis, base: impl Fn(usize) -> Config) -> Vec<Postern> {
    (0..3)
        .map(|i| Postern::start(ca, &cluster_node(base(i), redis, i)))
        .collect()
}

/// A `networks` credential `office` for CLIENT and 192.0.2.0/24 with a
/// per-minute message quota, and `probe` (192.0.2.250) with a generous
/// one, so probing whether Redis is in use costs `office` nothing.
fn quota_credentials(cfg: Config, per_minute: u32) -> Config {
    let office = format!(
        "[credentials.office]\nnetworks = [\"{CLIENT}/32\", \"192.0.2.0/25\"]\nallowed_senders = [\"*@example.com\"]\nquota = {{ per_minute = {per_minute} }}\n"
    );
    let probe = "[credentials.probe]\nnetworks = [\"192.0.2.250/32\"]\nallowed_senders = [\"*@example.com\"]\nquota = { per_minute = 1000 }\n".to_string();
    cfg.credential(office).credential(probe)
}

/// A node on a plain listener whose only credentials are
/// [`quota_credentials`], before [`cluster_node`].
pub(super) fn quota_base(up: &MockUpstream, per_minute: u32) -> Config {
    let mut cfg = Config::new(&up.url()).listeners(&["none"]);
    cfg.credentials.clear();
    quota_credentials(cfg, per_minute)
}

/// [`quota_base`] as node `i` of three on `redis`.
fn quota_node(up: &MockUpstream, redis: &Redis, i: usize, per_minute: u32) -> Config {
    cluster_node(quota_base(up, per_minute), redis, i)
}

/// A node (STARTTLS, the default credential with a password) whose
/// AUTH failures are never delayed, with `abuse` lines, before
/// [`cluster_node`].
fn auth_base(up: &MockUpstream, abuse: &str) -> Config {
    Config::new(&up.url())
        .abuse(abuse)
        .abuse("auth_failure_delay = \"0s\"")
}

/// One message as client `src` straight to a node (our own PROXY header);
/// the reply to MAIL if it refused, else to the final dot.
pub(super) fn send_as(p: &Postern, src: [u8; 4], subject: &str) -> Reply {
    let mut c = SmtpClient::connect(p.port(0));
    c.send(&v2_header(src, 4000));
    c.greet();
    let mail = c.cmd("MAIL FROM:<app@example.com>");
    if mail.code != 250 {
        c.quit();
        return mail;
    }
    c.cmd("RCPT TO:<rcpt@dest.test>").expect_code(250, "rcpt");
    let r = c.data(&simple_message(
        "app@example.com",
        "rcpt@dest.test",
        subject,
    ));
    c.quit();
    r
}

#[test]
fn a_credential_quota_counts_across_nodes_behind_haproxy() {
    let ca = TestCa::new();
    let up = MockUpstream::start(&ca);
    let redis = Redis::start();
    let nodes = three_nodes(&ca, &redis, |_| {
        let mut cfg = quota_base(&up, 5);
        cfg.log = vec!["audit_file = \"audit.json\"".into()];
        cfg
    });
    let lb = Haproxy::start(&nodes.iter().map(|n| n.port(0)).collect::<Vec<_>>());
    for i in 0..5 {
        let mut c = SmtpClient::connect_from(ip(CLIENT), lb.port);
        send_plain(&mut c, &format!("shared quota {i}"))
            .expect_code(250, "within the shared quota");
    }
    // The sixth, whichever node it reaches: each has counted at most two.
    let mut c = SmtpClient::connect_from(ip(CLIENT), lb.port);
    c.greet();
    c.cmd("MAIL FROM:<app@example.com>")
        .expect(451, "4.7.1", "sixth message through any node");
    c.quit();
    let served = nodes
        .iter()
        .filter(|n| !events(&audit(n), "accepted").is_empty())
        .count();
    assert!(served >= 2, "the five went through more than one node");
    assert!(
        redis
            .cli(&["--scan", "--pattern", "postern:q:credential:*"])
            .contains("office")
    );
    nodes[0].delivered(&up, 5);
}

/// A quota check by `probe` (MAIL, then RSET gives it back): makes the
/// node ask Redis without sending anything.
pub(super) fn probe(p: &Postern) {
    let mut c = SmtpClient::connect(p.port(0));
    c.send(&v2_header([192, 0, 2, 250], 4000));
    c.greet();
    let _ = c.cmd("MAIL FROM:<app@example.com>");
    let _ = c.cmd("RSET");
    c.quit();
}

/// /readyz of a node's admin listener: status and body.
pub(super) fn readyz(port: u16) -> (u16, String) {
    crate::common::http::get(port, "/readyz", None, None)
}

#[test]
fn redis_down_mid_load_falls_back_to_local_shares_and_recovers() {
    let ca = TestCa::new();
    let up = MockUpstream::start(&ca);
    let mut redis = Redis::start();
    let admin: Vec<u16> = (0..3)
        .map(|_| crate::common::postern::free_port())
        .collect();
    let nodes = three_nodes(&ca, &redis, |i| {
        // per_minute = 6: a share of 2 per node while Redis is down.
        let mut cfg = quota_base(&up, 6);
        cfg.extra.push_str(&format!(
            "\n[admin]\naddress = \"127.0.0.1:{}\"\n",
            admin[i]
        ));
        cfg
    });
    let office = [192, 0, 2, 10];
    let mut accepted = 0;
    for i in 0..2 {
        send_as(&nodes[0], office, &format!("shared {i}")).expect_code(250, "shared");
        accepted += 1;
    }
    assert_eq!(readyz(admin[0]), (200, "ready\n".to_string()));

    redis.stop();
    // Each node now allows its share, 2, on its own: mail keeps flowing.
    for (n, node) in nodes.iter().enumerate() {
        for i in 0..2 {
            send_as(node, office, &format!("local {n}.{i}"))
                .expect_code(250, "under the local share");
            accepted += 1;
        }
        send_as(node, office, &format!("local {n} over")).expect(
            451,
            "4.7.1",
            "over the local share",
        );
        let (status, body) = readyz(admin[n]);
        assert_eq!(status, 200, "still taking mail: {body}");
        assert!(
            body.contains("degraded") && body.contains("redis unreachable"),
            "{body}"
        );
    }
    let status = ctl(&nodes[1], &["status"]);
    let text = String::from_utf8_lossy(&status.stdout);
    assert!(
        text.contains("node node1; redis: unreachable (local limits"),
        "{text}"
    );
    assert!(
        nodes[0]
            .log()
            .contains("Redis unreachable: falling back to local limits")
    );

    redis.restart();
    // Back to shared counters once a check reaches Redis again (tried at
    // most once a second); the probe credential's checks trigger it.
    for (n, node) in nodes.iter().enumerate() {
        let back = wait_until(Duration::from_secs(30), || {
            probe(node);
            readyz(admin[n]) == (200, "ready\n".to_string())
        });
        assert!(back, "node {n} uses Redis again; log:\n{}", node.log());
    }
    // Shared again (Redis restarted empty): six in all, spread 3/2/1;
    // the seventh is refused on node 2, which alone has counted one.
    for (n, count) in [(0usize, 3), (1, 2), (2, 1)] {
        for i in 0..count {
            send_as(&nodes[n], office, &format!("shared again {n}.{i}"))
                .expect_code(250, "shared again");
            accepted += 1;
        }
    }
    send_as(&nodes[2], office, "seventh").expect(451, "4.7.1", "the shared limit");
    assert!(nodes[0].log().contains("Redis is reachable again"));

    // Nothing answered 250 was lost.
    nodes[0].delivered(&up, accepted);
    for n in &nodes {
        n.wait_queue_empty();
    }
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(up.count(), accepted);
}

/// Opens a session to a STARTTLS node as client `src` (our own PROXY
/// header) and tries AUTH PLAIN; the reply.
fn auth_as(p: &Postern, ca: &TestCa, src: [u8; 4], password: &str) -> Reply {
    let mut c = SmtpClient::connect(p.port(0));
    c.send(&v2_header(src, 4000));
    c.greet_starttls(ca);
    let r = c.auth_plain("app", password);
    c.quit();
    r
}

#[test]
fn auth_failures_spread_over_three_nodes_lock_out_on_all() {
    let ca = TestCa::new();
    let up = MockUpstream::start(&ca);
    let redis = Redis::start();
    let nodes = three_nodes(&ca, &redis, |_| auth_base(&up, "auth_failures = 3"));
    let attacker = [192, 0, 2, 30];
    // The application logs in from its usual network through node 2.
    let app = [192, 0, 2, 31];
    auth_as(&nodes[2], &ca, app, PASSWORD).expect(235, "2.7.0", "the application");
    // One failure per node: no node alone has seen three.
    for n in &nodes {
        auth_as(n, &ca, attacker, "wrong-password-1").expect(535, "5.7.8", "a wrong password");
    }
    // The network is locked out on every node, even with the right password.
    for (i, n) in nodes.iter().enumerate() {
        auth_as(n, &ca, attacker, PASSWORD).expect(
            454,
            "4.7.0",
            &format!("locked out on node {i}"),
        );
    }
    // The username is locked too, for networks not known for it; the
    // application's network, known through node 2, is spared on node 0.
    let r = auth_as(&nodes[1], &ca, [192, 0, 2, 32], PASSWORD);
    r.expect(454, "4.7.0", "a third network");
    assert!(r.text().contains("user \"app\""), "{r:?}");
    auth_as(&nodes[0], &ca, app, PASSWORD).expect(235, "2.7.0", "known through another node");
    assert!(
        redis
            .cli(&["--scan", "--pattern", "postern:l:c:192.0.2.30*"])
            .contains("until")
    );
}

#[test]
fn a_suspension_on_one_node_refuses_mail_on_the_others() {
    let ca = TestCa::new();
    let up = MockUpstream::start(&ca);
    let redis = Redis::start();
    let nodes = three_nodes(&ca, &redis, |_| quota_base(&up, 1000));
    let office = [192, 0, 2, 10];
    for n in &nodes {
        send_as(n, office, "before").expect_code(250, "not suspended yet");
    }
    let o = ctl(
        &nodes[0],
        &["credential", "suspend", "office", "--reason", "leaked"],
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    for (i, n) in nodes.iter().enumerate().skip(1) {
        // Within a second (the nodes read the shared record twice a second).
        let refused = wait_until(Duration::from_secs(5), || {
            send_as(n, office, "after").is(550, "5.7.1")
        });
        assert!(
            refused,
            "node {i} refuses the suspended credential; log:\n{}",
            n.log()
        );
    }
    let o = ctl(&nodes[2], &["credential", "resume", "office"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let back = wait_until(Duration::from_secs(5), || {
        send_as(&nodes[0], office, "resumed").code == 250
    });
    assert!(back, "resumed on node 2, so on node 0 too");
}

#[test]
fn on_redis_down_tempfail_refuses_with_451_4_3_0_and_reports_not_ready() {
    let ca = TestCa::new();
    let up = MockUpstream::start(&ca);
    let mut redis = Redis::start();
    let admin = crate::common::postern::free_port();
    let mut cfg = quota_node(&up, &redis, 0, 100);
    cfg.extra.push_str(&format!(
        "on_redis_down = \"tempfail\"\n\n[admin]\naddress = \"127.0.0.1:{admin}\"\n"
    ));
    let p = Postern::start(&ca, &cfg);
    let office = [192, 0, 2, 10];
    send_as(&p, office, "shared").expect_code(250, "Redis up");
    redis.stop();
    send_as(&p, office, "no redis").expect(451, "4.3.0", "shared limits unavailable");
    let (status, body) = readyz(admin);
    assert_eq!(status, 503, "the balancer should send elsewhere: {body}");
    assert!(body.contains("redis unreachable"), "{body}");
    redis.restart();
    let back = wait_until(Duration::from_secs(30), || {
        send_as(&p, office, "back").code == 250
    });
    assert!(
        back,
        "accepting again once Redis answers; log:\n{}",
        p.log()
    );
    assert_eq!(readyz(admin).0, 200);
}

#[test]
fn anomaly_windows_add_up_across_nodes_and_one_node_alerts() {
    let ca = TestCa::new();
    let up = MockUpstream::start(&ca);
    let redis = Redis::start();
    let nodes = three_nodes(&ca, &redis, |_| {
        let mut cfg = auth_base(&up, "auth_failures = \"unlimited\"");
        cfg.log = vec!["audit_file = \"audit.json\"".into()];
        cfg.extra.push_str(
            "\n[alerts]\nauth_failures_per_network = 3\nauth_failures_per_username = \"off\"\n",
        );
        cfg
    });
    let sprayer = [192, 0, 2, 40];
    let anomalies = || -> Vec<Value> {
        nodes
            .iter()
            .flat_map(|n| audit(n).into_iter().filter(|e| e["event"] == "anomaly"))
            .collect()
    };
    // One failure per node: none alone reaches three.
    for n in &nodes {
        auth_as(n, &ca, sprayer, "wrong-password-2").expect(535, "5.7.8", "wrong");
    }
    let raised = wait_until(Duration::from_secs(10), || !anomalies().is_empty());
    assert!(raised, "the shared window reached the threshold");
    // Three more: still one alert (repeat_after), raised by one node.
    for n in &nodes {
        auth_as(n, &ca, sprayer, "wrong-password-3").expect(535, "5.7.8", "wrong");
    }
    std::thread::sleep(Duration::from_millis(500));
    let all = anomalies();
    assert_eq!(all.len(), 1, "{all:#?}");
    assert_eq!(all[0]["kind"], "auth_failures_network");
    assert_eq!(all[0]["key"], "192.0.2.40");
}

#[test]
fn the_redis_password_comes_from_a_secret_reference() {
    let ca = TestCa::new();
    let up = MockUpstream::start(&ca);
    let redis = Redis::start_with(&["--requirepass", "s3cret-redis"]);
    let mut cfg = quota_node(&up, &redis, 0, 2);
    cfg.extra
        .push_str("password = \"env:POSTERN_TEST_REDIS_PASSWORD\"\n");
    let p = Postern::start_with_env(
        &ca,
        &cfg,
        &[("POSTERN_TEST_REDIS_PASSWORD", "s3cret-redis")],
    );
    let office = [192, 0, 2, 10];
    for i in 0..2 {
        send_as(&p, office, &format!("authenticated {i}")).expect_code(250, "within the quota");
    }
    send_as(&p, office, "third").expect(451, "4.7.1", "counted in Redis");
    assert!(!p.log().contains("Redis unreachable"), "{}", p.log());
    let keys = redis.cli(&[
        "-a",
        "s3cret-redis",
        "--no-auth-warning",
        "--scan",
        "--pattern",
        "postern:q:*",
    ]);
    assert!(keys.contains("office"), "{keys}");
}

#[test]
fn a_shared_refusal_names_the_key_that_refused() {
    let ca = TestCa::new();
    let up = MockUpstream::start(&ca);
    let redis = Redis::start();
    // Four targets, three limited (credential, sender, ip; the domain is
    // not): the ip refuses, third among those Redis checks, fourth among
    // the engine's targets.
    let mut cfg = quota_node(&up, &redis, 0, 100);
    cfg.extra
        .push_str("\n[quota.sender]\nper_minute = 100\n\n[quota.ip]\nper_minute = 1\n");
    let p = Postern::start(&ca, &cfg);
    let office = [192, 0, 2, 10];
    send_as(&p, office, "first").expect_code(250, "within every limit");
    let r = send_as(&p, office, "second");
    r.expect(451, "4.7.1", "the ip's per_minute");
    assert!(
        r.text().contains("\"quota.ip.per_minute\"") && r.text().contains("for ip 192.0.2."),
        "{r:?}"
    );
}
