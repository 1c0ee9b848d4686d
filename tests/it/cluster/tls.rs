//! `rediss://` against a real redis-server listening only on TLS, with
//! `requirepass` and a certificate from a private CA (`[cluster] ca_file`):
//! the shared quota works across two nodes over TLS; a node that does not
//! trust Redis's certificate, and one with the wrong password, fall back
//! to local limits (degraded on `/readyz`) instead of failing or talking
//! to Redis in clear.

use super::redis::{probe, quota_base, readyz, send_as};
use crate::common::cluster::Redis;
use crate::common::postern::{free_port, toml_str};
use crate::common::*;

const REDIS_PASSWORD: &str = "tls-redis-s3cret";
const PASSWORD_ENV: &str = "POSTERN_TEST_REDIS_PASSWORD";

/// A plain node (PROXY from 127.0.0.1) of two on the TLS `redis`,
/// trusting `ca_pem` for it, with an admin listener on `admin`.
fn tls_node(
    up: &MockUpstream,
    redis: &Redis,
    i: usize,
    ca_pem: &std::path::Path,
    admin: u16,
) -> Config {
    let mut cfg = quota_base(up, 2).behind_proxy("127.0.0.1/32");
    cfg.extra.push_str(&format!(
        "\n[cluster]\nredis = \"{}\"\npassword = \"env:{PASSWORD_ENV}\"\nca_file = {}\nnode_id = \"tls{i}\"\nexpected_nodes = 2\ntimeout = \"2s\"\n\n[admin]\naddress = \"127.0.0.1:{admin}\"\n",
        redis.url(),
        toml_str(&ca_pem.to_string_lossy()),
    ));
    cfg
}

fn start(ca: &TestCa, cfg: &Config, password: &str) -> Postern {
    Postern::start_with_env(ca, cfg, &[(PASSWORD_ENV, password)])
}

/// The names of the quota keys in Redis (read over TLS).
fn quota_keys(redis: &Redis) -> String {
    redis.cli(&[
        "-a",
        REDIS_PASSWORD,
        "--no-auth-warning",
        "--scan",
        "--pattern",
        "postern:q:*",
    ])
}

#[test]
fn a_shared_quota_counts_across_two_nodes_over_tls() {
    let ca = TestCa::new();
    let up = MockUpstream::start(&ca);
    let redis = Redis::start_tls(&ca, &["--requirepass", REDIS_PASSWORD]);
    let admin = [free_port(), free_port()];
    let nodes: Vec<Postern> = (0..2)
        .map(|i| {
            start(
                &ca,
                &tls_node(&up, &redis, i, &ca.ca_pem, admin[i]),
                REDIS_PASSWORD,
            )
        })
        .collect();
    let office = [192, 0, 2, 10];
    // Local shares would be 1 per node (ceil(2 / 2)): the second message
    // on node 0 passes, and the first on node 1 is refused, only if the
    // two count together in Redis.
    for i in 0..2 {
        send_as(&nodes[0], office, &format!("over tls {i}")).expect_code(250, "within the quota");
    }
    send_as(&nodes[1], office, "third").expect(451, "4.7.1", "counted on the other node");
    for (n, node) in nodes.iter().enumerate() {
        assert_eq!(readyz(admin[n]), (200, "ready\n".to_string()), "node {n}");
        assert!(!node.log().contains("Redis unreachable"), "{}", node.log());
        assert!(
            !node.log().contains(REDIS_PASSWORD),
            "the password is never logged"
        );
    }
    let keys = quota_keys(&redis);
    assert!(
        keys.contains("postern:q:credential:") && keys.contains("office"),
        "{keys}"
    );
    nodes[0].delivered(&up, 2);
}

#[test]
fn a_wrong_ca_or_password_degrades_to_local_limits() {
    let ca = TestCa::new();
    let other = TestCa::new();
    let up = MockUpstream::start(&ca);
    let redis = Redis::start_tls(&ca, &["--requirepass", REDIS_PASSWORD]);
    let admin = [free_port(), free_port()];
    // Node 0 trusts another CA; node 1 trusts the right one with the
    // wrong password.
    let nodes = [
        start(
            &ca,
            &tls_node(&up, &redis, 0, &other.ca_pem, admin[0]),
            REDIS_PASSWORD,
        ),
        start(
            &ca,
            &tls_node(&up, &redis, 1, &ca.ca_pem, admin[1]),
            "not-the-password",
        ),
    ];
    let office = [192, 0, 2, 10];
    for (n, node) in nodes.iter().enumerate() {
        probe(node);
        let (status, body) = readyz(admin[n]);
        assert_eq!(status, 200, "node {n} still takes mail: {body}");
        assert!(
            body.contains("degraded") && body.contains("redis unreachable"),
            "node {n}: {body}"
        );
        // Its local share of per_minute = 2 across two nodes is 1.
        send_as(node, office, &format!("local {n}")).expect_code(250, "under the local share");
        send_as(node, office, &format!("local {n} over")).expect(
            451,
            "4.7.1",
            "over the local share",
        );
        let log = node.log();
        assert!(
            log.contains("Redis unreachable: falling back to local limits"),
            "{log}"
        );
        assert!(
            !log.contains(REDIS_PASSWORD) && !log.contains("not-the-password"),
            "{log}"
        );
    }
    // Why: the certificate did not verify; the password was refused.
    let log = nodes[0].log();
    assert!(log.contains("invalid peer certificate"), "{log}");
    let log = nodes[1].log();
    assert!(
        log.contains("WRONGPASS") || log.contains("AuthenticationFailed"),
        "{log}"
    );
    // Neither counted anything in Redis.
    assert_eq!(quota_keys(&redis).trim(), "");
    nodes[0].delivered(&up, 2);
}
