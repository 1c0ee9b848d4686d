//! Batch jobs are not a flood (issue 10): a client that opens one connection
//! per message, as `mail()`-style senders and many ERPs do, is held to
//! `[abuse] connections_per_ip_per_minute` only if no `networks` credential
//! trusts it and it has not logged in within `known_client_ttl`. These tests
//! run with the production `[abuse]` defaults (60 new connections a minute),
//! not the harness's "unlimited".
//!
//! Distinct clients are distinct loopback addresses (127.0.0.0/8 is all
//! loopback on Linux); the harness's readiness probe comes from 127.0.0.1.

use crate::common::*;
use std::net::IpAddr;
use std::time::Instant;

const MESSAGES: usize = 500;

fn ip(s: &str) -> IpAddr {
    s.parse().expect("test IP literal")
}

/// Production `[abuse]`; a `networks` credential for 127.0.0.1 only, and
/// the password credential `app`.
fn production_abuse(url: &str, listeners: &[&str]) -> Config {
    let mut cfg = Config::new(url)
        .listeners(listeners)
        .credential(Config::networks_credential(
            "batch",
            &["127.0.0.1/32"],
            &["batch@example.com"],
        ));
    cfg.abuse.clear();
    cfg
}

/// Connections from `src` (greeting only) until one is refused; panics
/// unless the refusal is the connection-rate 421 and came at the 61st
/// connection (counting `already` made before), give or take the one
/// connection a second the rate replenishes while the loop runs.
#[track_caller]
fn assert_rate_limited(p: &Postern, port: u16, src: &str, already: usize) {
    let start = Instant::now();
    let mut accepted = 0usize;
    let refusal = loop {
        let mut c = SmtpClient::connect_from(ip(src), port);
        let r = c.read_reply();
        if r.code != 220 {
            break r;
        }
        accepted += 1;
        c.quit();
        assert!(
            accepted <= 200,
            "{src}: 200 connections accepted, never limited"
        );
    };
    refusal.expect(
        421,
        "4.7.0",
        &format!("connection {} from {src}", accepted + 1),
    );
    assert!(
        refusal
            .text()
            .contains(&format!("Too many connections from {src}; try again in")),
        "{refusal:?}"
    );
    let slack = start.elapsed().as_secs() as usize + 1;
    let total = already + accepted;
    assert!(
        (60..=60 + slack).contains(&total),
        "{src}: refused after {total} connections, expected the 61st (+{slack} for time passed)"
    );
    p.wait_log_line(&["connection refused: connection rate", &format!("key={src}")]);
}

#[test]
fn a_networks_client_sending_one_message_per_connection_is_not_limited() {
    let ca = TestCa::new();
    let up = MockUpstream::start(&ca);
    let p = Postern::start(&ca, &production_abuse(&up.url(), &["none"]));

    for i in 0..MESSAGES {
        let mut c = SmtpClient::connect(p.port(0));
        c.greet();
        let msg = simple_message("batch@example.com", "bob@dest.test", &format!("batch {i}"));
        c.send_message("batch@example.com", &["bob@dest.test"], &msg)
            .expect(250, "2.0.0", &format!("message {i} on its own connection"));
        c.quit();
    }
    let reqs = p.delivered(&up, MESSAGES);
    assert_eq!(reqs.len(), MESSAGES);

    // An address no credential covers, that never logged in, is still limited.
    assert_rate_limited(&p, p.port(0), "127.0.0.9", 0);
}

#[test]
fn a_client_that_authenticates_on_every_connection_is_not_limited() {
    let ca = TestCa::new();
    let up = MockUpstream::start(&ca);
    let p = Postern::start(&ca, &production_abuse(&up.url(), &["starttls"]));

    // 127.0.0.6 is unknown until its first login; from then on it is known
    // and bounded by max_connections_per_ip only.
    for i in 0..MESSAGES {
        let mut c = SmtpClient::connect_from(ip("127.0.0.6"), p.port(0));
        c.greet_starttls(&ca);
        c.auth_plain("app", PASSWORD)
            .expect(235, "2.7.0", &format!("AUTH on connection {i}"));
        let msg = simple_message("app@example.com", "bob@dest.test", &format!("erp {i}"));
        c.send_message("app@example.com", &["bob@dest.test"], &msg)
            .expect(250, "2.0.0", &format!("message {i} on its own connection"));
        c.quit();
    }
    let reqs = p.delivered(&up, MESSAGES);
    assert_eq!(reqs.len(), MESSAGES);

    // Its neighbour only failed to log in: that does not make it known, so
    // it is limited as before (the failed attempt was its first connection).
    let mut c = SmtpClient::connect_from(ip("127.0.0.7"), p.port(0));
    c.greet_starttls(&ca);
    c.auth_plain("app", "not the password")
        .expect(535, "5.7.8", "wrong password from 127.0.0.7");
    c.quit();
    assert_rate_limited(&p, p.port(0), "127.0.0.7", 1);
}
