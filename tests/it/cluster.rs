//! Several nodes behind a load balancer (issue 15): the PROXY protocol on
//! every listener type, from a trusted proxy only, with real HAProxy in
//! front; shared quotas, lockouts and suspensions through a real
//! redis-server, and what happens while it is down; `postern spool adopt`
//! of a killed node's spool.
//!
//! Every client address here is loopback: 127.0.0.1 is the proxy (HAProxy
//! connects from it), 127.0.0.2 and up play the clients, so the address a
//! node sees and the one the PROXY header names differ.

use std::io::{Read, Write};
use std::net::{IpAddr, TcpStream};
use std::time::Duration;

use serde_json::Value;

use crate::common::cluster::Haproxy;
use crate::common::*;

mod redis;
mod tls;

const CLIENT: &str = "127.0.0.2";
const OUTSIDER: &str = "127.0.0.3";

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// A node config whose listeners take PROXY headers from `trusted`, with a
/// `networks` credential `office` for 127.0.0.1 (the proxy's own address,
/// so trusting the peer instead of the header would show) and CLIENT.
fn proxied(up: &MockUpstream, modes: &[&str], trusted: &str) -> Config {
    let mut cfg = Config::new(&up.url())
        .listeners(modes)
        .behind_proxy(trusted);
    cfg.log = vec!["audit_file = \"audit.json\"".into()];
    cfg.credential(Config::networks_credential(
        "office",
        &["127.0.0.1/32", &format!("{CLIENT}/32"), "192.0.2.0/24"],
        &["*@example.com"],
    ))
}

/// The audit events of a node's `[log] audit_file`.
fn audit(p: &Postern) -> Vec<Value> {
    std::fs::read_to_string(p.dir().join("audit.json"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

fn events<'a>(all: &'a [Value], name: &str) -> Vec<&'a Value> {
    all.iter().filter(|e| e["event"] == name).collect()
}

/// A PROXY v2 header (PROXY command, TCP over IPv4) naming `src`.
fn v2_header(src: [u8; 4], src_port: u16) -> Vec<u8> {
    let mut h = b"\r\n\r\n\0\r\nQUIT\n".to_vec();
    h.extend_from_slice(&[0x21, 0x11, 0x00, 0x0c]);
    h.extend_from_slice(&src);
    h.extend_from_slice(&[127, 0, 0, 1]);
    h.extend_from_slice(&src_port.to_be_bytes());
    h.extend_from_slice(&25u16.to_be_bytes());
    h
}

/// Connects from 127.0.0.1, writes `bytes`, optionally half-closes, and
/// returns everything the node sent before closing.
fn raw_exchange(port: u16, bytes: &[u8], half_close: bool) -> Vec<u8> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    s.write_all(bytes).expect("write");
    if half_close {
        s.shutdown(std::net::Shutdown::Write).expect("shutdown");
    }
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    out
}

/// One message from the session's credential (no AUTH); the final reply.
fn send_plain(c: &mut SmtpClient, subject: &str) -> Reply {
    c.greet();
    let msg = simple_message("app@example.com", "rcpt@dest.test", subject);
    let r = c.send_message("app@example.com", &["rcpt@dest.test"], &msg);
    c.quit();
    r
}

#[test]
fn haproxy_carries_the_real_client_to_credentials_received_and_audit() {
    let ca = TestCa::new();
    let up = MockUpstream::start(&ca);
    let cfg = proxied(&up, &["none"], "127.0.0.1/32");
    let nodes: Vec<Postern> = (0..3).map(|_| Postern::start(&ca, &cfg)).collect();
    let lb = Haproxy::start(&nodes.iter().map(|n| n.port(0)).collect::<Vec<_>>());

    for i in 0..3 {
        let mut c = SmtpClient::connect_from(ip(CLIENT), lb.port);
        send_plain(&mut c, &format!("through the balancer {i}"))
            .expect_code(250, "client inside networks");
    }
    // HAProxy's own address is inside `office`; the client's is not.
    let mut c = SmtpClient::connect_from(ip(OUTSIDER), lb.port);
    c.greet();
    c.cmd("MAIL FROM:<app@example.com>").expect(
        530,
        "5.7.0",
        "outsider refused although the proxy is inside",
    );
    c.quit();

    let got = nodes[0].delivered(&up, 3);
    for r in &got {
        let text = String::from_utf8_lossy(&r.body);
        let received = text.lines().next().unwrap_or_default();
        assert!(
            received.starts_with("Received:") && text.contains(&format!("[{CLIENT}]")),
            "Received names the client: {text}"
        );
        assert!(!text.contains("[127.0.0.1]"), "not the proxy: {text}");
    }
    // The audit trail of whichever node took each message names the
    // client, in the accepted event and its session's connection event
    // (HAProxy's own readiness probe in Haproxy::start is a client from
    // 127.0.0.1, rightly so, and is no session of ours).
    let mut serving = 0;
    let mut total = 0;
    for (i, n) in nodes.iter().enumerate() {
        let all = audit(n);
        let accepted = events(&all, "accepted");
        serving += usize::from(!accepted.is_empty());
        total += accepted.len();
        for a in &accepted {
            assert_eq!(a["client_ip"], CLIENT, "node {i}: {all:#?}");
            let conn: Vec<_> = events(&all, "connection")
                .into_iter()
                .filter(|e| e["session"] == a["session"])
                .collect();
            assert_eq!(conn.len(), 1, "node {i}: {all:#?}");
            assert_eq!(conn[0]["client_ip"], CLIENT, "node {i}: {all:#?}");
        }
    }
    assert_eq!(total, 3);
    assert!(serving >= 2, "round robin spread the clients\n{}", lb.log());
}

#[test]
fn every_listener_type_reads_the_header_first() {
    let ca = TestCa::new();
    let up = MockUpstream::start(&ca);
    let cfg = proxied(&up, &["none", "starttls", "implicit"], "127.0.0.1/32");
    let p = Postern::start(&ca, &cfg);
    // 192.0.2.10 is inside `office`; no loopback client could be.
    let header = v2_header([192, 0, 2, 10], 40000);

    let mut c = SmtpClient::connect(p.port(0));
    c.send(&header);
    send_plain(&mut c, "none").expect_code(250, "plain listener");

    let mut c = SmtpClient::connect(p.port(1));
    c.send(&header);
    c.greet_starttls(&ca);
    let msg = simple_message("app@example.com", "rcpt@dest.test", "starttls");
    c.send_message("app@example.com", &["rcpt@dest.test"], &msg)
        .expect_code(250, "starttls listener");
    c.quit();

    // Implicit TLS: the header, then the ClientHello.
    let mut c = SmtpClient::connect(p.port(2));
    c.send(&header);
    c.upgrade_tls(&ca).expect("handshake after the header");
    send_plain(&mut c, "implicit").expect_code(250, "implicit listener");

    let got = p.delivered(&up, 3);
    for r in &got {
        assert!(
            contains(&r.body, b"[192.0.2.10]"),
            "{}",
            String::from_utf8_lossy(&r.body)
        );
    }
    let all = audit(&p);
    let accepted = events(&all, "accepted");
    assert_eq!(accepted.len(), 3, "{all:?}");
    assert!(
        accepted.iter().all(|e| e["client_ip"] == "192.0.2.10"),
        "{accepted:?}"
    );
}

#[test]
fn untrusted_malformed_truncated_or_missing_headers_are_closed() {
    let ca = TestCa::new();
    let up = MockUpstream::start(&ca);
    let mut trusted = proxied(&up, &["none"], "127.0.0.1/32");
    trusted.server.push("tls_handshake_timeout = \"1s\"".into());
    let p = Postern::start(&ca, &trusted);
    let elsewhere = Postern::start(&ca, &proxied(&up, &["none"], "127.0.0.9/32"));
    let smtp = b"EHLO c\r\nMAIL FROM:<app@example.com>\r\nRCPT TO:<rcpt@dest.test>\r\nDATA\r\nSubject: x\r\n\r\nx\r\n.\r\nQUIT\r\n";

    // Each case adds one `proxy_refused` event with its reason (the
    // readiness probe of Postern::start added one already).
    let refusals = |n: &Postern| -> Vec<String> {
        events(&audit(n), "proxy_refused")
            .iter()
            .map(|e| e["reason"].as_str().unwrap_or("?").to_string())
            .collect()
    };
    let case = |n: &Postern, bytes: &[u8], half_close: bool, reason: &str| {
        let before = refusals(n).len();
        assert_eq!(
            raw_exchange(n.port(0), bytes, half_close),
            b"",
            "{reason}: no greeting"
        );
        let logged = wait_until(Duration::from_secs(10), || refusals(n).len() > before);
        assert!(
            logged,
            "{reason}: no proxy_refused event; log:\n{}",
            n.log()
        );
        assert_eq!(refusals(n)[before], reason);
    };

    // A valid header, from an address that is not a trusted proxy.
    let with = [v2_header([192, 0, 2, 10], 1), smtp.to_vec()].concat();
    case(&elsewhere, &with, false, "untrusted");

    // Malformed v2: version 1 in the binary header.
    let mut bad = v2_header([192, 0, 2, 10], 1);
    bad[12] = 0x11;
    case(&p, &[bad, smtp.to_vec()].concat(), false, "malformed");

    // Malformed v1, and plain SMTP without a header.
    let v1 = b"PROXY TCP4 192.0.2.999 127.0.0.1 1 25\r\n".to_vec();
    case(&p, &[v1, smtp.to_vec()].concat(), false, "malformed");
    case(&p, smtp, false, "not_proxy");

    // Truncated: half a header, then the client closes its side.
    let h = v2_header([192, 0, 2, 10], 1);
    case(&p, &h[..20], true, "truncated");
    // Nothing within tls_handshake_timeout.
    case(&p, b"", false, "timeout");

    assert_eq!(up.count(), 0, "nothing relayed");
    assert!(events(&audit(&p), "accepted").is_empty());
    assert!(events(&audit(&elsewhere), "connection").is_empty());
    assert!(p.log().contains("connection closed"), "logged as a warning");
}

#[test]
fn per_ip_limits_count_the_client_the_header_names() {
    let ca = TestCa::new();
    let up = MockUpstream::start(&ca);
    let cfg = proxied(&up, &["none"], "127.0.0.1/32").server("max_connections_per_ip = 1");
    let p = Postern::start(&ca, &cfg);
    // Every connection comes from the proxy's address; the limit is per
    // client, so one client's second connection is refused and another
    // client's first is not.
    let mut first = SmtpClient::connect(p.port(0));
    first.send(&v2_header([192, 0, 2, 10], 1));
    first
        .read_reply()
        .expect_code(220, "first connection of 192.0.2.10");
    let mut second = SmtpClient::connect(p.port(0));
    second.send(&v2_header([192, 0, 2, 10], 2));
    second
        .read_reply()
        .expect(421, "4.7.0", "second connection of 192.0.2.10");
    let mut other = SmtpClient::connect(p.port(0));
    other.send(&v2_header([192, 0, 2, 11], 1));
    other.read_reply().expect_code(220, "another client");
    first.quit();
    other.quit();
}

/// `postern ARGS --config <p's config>`.
fn ctl(p: &Postern, args: &[&str]) -> std::process::Output {
    let config = p.config_path.to_string_lossy().into_owned();
    let mut all: Vec<&str> = args.to_vec();
    all.extend(["--config", config.as_str()]);
    crate::common::clients::postern_cmd(&all, b"")
}

#[test]
fn spool_adopt_takes_over_a_killed_nodes_queue_exactly_once() {
    let ca = TestCa::new();
    let up = MockUpstream::with_default(&ca, Scripted::status(503));
    let mut cfg = Config::new(&up.url())
        .listeners(&["none"])
        .with_loopback_network();
    cfg.delivery = vec!["retry_initial = \"1s\"".into(), "retry_max = \"1s\"".into()];
    cfg.log = vec!["audit_file = \"audit.json\"".into()];
    let mut dead_node = Postern::start(&ca, &cfg);
    let heir = Postern::start(&ca, &cfg);
    let subjects: Vec<String> = (0..5).map(|i| format!("adopt me {i}")).collect();
    for s in &subjects {
        let mut c = SmtpClient::connect(dead_node.port(0));
        send_plain(&mut c, s).expect_code(250, "queued on the first node");
    }
    // Each tried at least once against the failing upstream.
    up.try_wait_for(5, Duration::from_secs(60)).unwrap();
    let old_state = dead_node.state_dir.to_string_lossy().into_owned();

    // Alive: refused, nothing moved.
    let o = ctl(&heir, &["spool", "adopt", &old_state]);
    assert!(!o.status.success());
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("locked by a running process"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert_eq!(
        dead_node
            .queue_files()
            .iter()
            .filter(|f| !f.contains('.'))
            .count(),
        5
    );

    dead_node.kill9();
    let queued = dead_node.queue_files();
    assert_eq!(
        queued.iter().filter(|f| !f.contains('.')).count(),
        5,
        "{queued:?}"
    );
    assert!(
        queued.iter().any(|f| f.ends_with(".retry")),
        "retry state to carry over: {queued:?}"
    );
    up.set_default(Scripted::ok());
    let before = up.count();

    let o = ctl(&heir, &["spool", "adopt", &old_state]);
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(
        o.status.success(),
        "{out}{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(
        out.contains("adopted 5 queued message(s) and 0 dead letter(s)"),
        "{out}"
    );
    assert!(out.contains("delivering them now"), "{out}");
    assert!(
        dead_node.queue_files().is_empty(),
        "{:?}",
        dead_node.queue_files()
    );

    heir.delivered(&up, before + 5);
    heir.wait_queue_empty();
    // Again (as after a crash mid-way): nothing left, nothing sent twice.
    let o = ctl(&heir, &["spool", "adopt", &old_state]);
    assert!(o.status.success());
    assert!(String::from_utf8_lossy(&o.stdout).contains("adopted 0 queued"));
    std::thread::sleep(Duration::from_secs(2));
    let after: Vec<Recorded> = up.requests().into_iter().skip(before).collect();
    assert_eq!(after.len(), 5, "each adopted message delivered once");
    for s in &subjects {
        let n = after
            .iter()
            .filter(|r| contains(&r.body, s.as_bytes()))
            .count();
        assert_eq!(n, 1, "{s} delivered {n} times");
    }
    let trail = audit(&heir);
    assert_eq!(events(&trail, "adopted").len(), 5, "audit: adopted events");
}
