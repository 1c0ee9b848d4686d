use super::super::test_util::{BASE, errors_of, load_text};
use crate::cluster::OnRedisDown;

fn with_listener(lines: &str) -> String {
    BASE.replace("tls = \"none\"\n", &format!("tls = \"none\"\n{lines}\n"))
}

#[test]
fn proxy_protocol_needs_trusted_proxies() {
    let e = errors_of(&with_listener("proxy_protocol = true"));
    assert_eq!(e.len(), 1, "{e:?}");
    assert!(e[0].contains("`listeners.trusted_proxies`"), "{e:?}");
    let e = errors_of(&with_listener(
        "proxy_protocol = true\ntrusted_proxies = [\"10.0.0.0/33\"]",
    ));
    assert!(
        e.iter().any(|e| e.contains("not an address or CIDR")),
        "{e:?}"
    );
    let e = errors_of(&with_listener("trusted_proxies = [\"10.0.0.1\"]"));
    assert!(e[0].contains("without proxy_protocol"), "{e:?}");
}

#[test]
fn proxy_protocol_with_trusted_proxies_loads() {
    let c = load_text(&with_listener(
        "proxy_protocol = true\ntrusted_proxies = [\"10.0.0.0/24\", \"::1\"]",
    ))
    .unwrap();
    let t = c.listeners[0].proxy.as_ref().expect("proxy settings");
    assert!(t.contains("10.0.0.9".parse().unwrap()));
    assert!(t.contains("::1".parse().unwrap()));
    assert!(!t.contains("10.0.1.9".parse().unwrap()));
    assert!(load_text(BASE).unwrap().listeners[0].proxy.is_none());
}

#[test]
fn cluster_section() {
    let c = load_text(&format!(
        "{BASE}\n[cluster]\nredis = \"redis://10.0.0.5:6379/2\"\nnode_id = \"n1\"\nexpected_nodes = 3\non_redis_down = \"tempfail\"\ntimeout = \"100ms\"\n"
    ))
    .unwrap();
    let s = c.cluster.expect("cluster");
    assert_eq!(s.redis, "redis://10.0.0.5:6379/2");
    assert_eq!(s.node_id, "n1");
    assert_eq!(s.key_prefix, "postern:");
    assert_eq!(s.expected_nodes, 3);
    assert_eq!(s.on_redis_down, OnRedisDown::Tempfail);
    assert_eq!(s.timeout, std::time::Duration::from_millis(100));
    assert!(load_text(BASE).unwrap().cluster.is_none());
}

#[test]
fn cluster_refuses_a_password_in_the_url_and_bad_values() {
    let e = errors_of(&format!(
        "{BASE}\n[cluster]\nredis = \"redis://:hunter2@10.0.0.5:6379\"\nexpected_nodes = 3\n"
    ));
    assert!(e[0].contains("cluster.password"), "{e:?}");
    assert!(
        !e[0].contains("hunter2"),
        "the password is not repeated: {e:?}"
    );
    let e = errors_of(&format!(
        "{BASE}\n[cluster]\nredis = \"http://x\"\nexpected_nodes = 3\n"
    ));
    assert!(e[0].contains("`cluster.redis`"), "{e:?}");
    let e = errors_of(&format!(
        "{BASE}\n[cluster]\nredis = \"redis://x:1\"\nexpected_nodes = 0\n"
    ));
    assert!(e[0].contains("`cluster.expected_nodes`"), "{e:?}");
    let e = errors_of(&format!(
        "{BASE}\n[cluster]\nredis = \"redis://x:1\"\nexpected_nodes = 2\npassword = \"literal\"\n"
    ));
    assert!(e[0].contains("`cluster.password`"), "{e:?}");
}

#[test]
fn cluster_ca_file_needs_rediss_and_a_pem_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let not_pem = dir.path().join("not.pem");
    std::fs::write(&not_pem, "not a certificate\n").unwrap();
    let cfg = |url: &str, path: &std::path::Path| {
        format!(
            "{BASE}\n[cluster]\nredis = \"{url}\"\nexpected_nodes = 2\nca_file = \"{}\"\n",
            path.display()
        )
    };
    let e = errors_of(&cfg("redis://x:1", &not_pem));
    assert!(
        e[0].contains("`cluster.ca_file`") && e[0].contains("rediss://"),
        "{e:?}"
    );
    let e = errors_of(&cfg("rediss://x:1", &not_pem));
    assert!(
        e[0].contains("`cluster.ca_file`") && e[0].contains("no PEM certificates"),
        "{e:?}"
    );
    let e = errors_of(&cfg("rediss://x:1", &dir.path().join("missing.pem")));
    assert!(e[0].contains("`cluster.ca_file`"), "{e:?}");
}
