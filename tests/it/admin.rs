//! The admin listener against the real binary: `/metrics` in Prometheus
//! text format that `promtool check metrics` accepts and whose counters
//! move as mail flows, the bearer token, `/healthz`, `/readyz` following
//! the only upstream's circuit breaker, HTTPS off loopback, and the config
//! errors for an exposed listener without a token or a certificate.

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::common::clients::postern_cmd;
use crate::common::http::get;
use crate::common::postern::{free_port, toml_str};
use crate::common::*;

/// The value of the sample `name{labels}` (labels as rendered), if present.
fn sample(metrics: &str, series: &str) -> Option<f64> {
    metrics.lines().find_map(|l| {
        let (s, v) = l.rsplit_once(' ')?;
        (s == series).then(|| v.parse().expect("sample value"))
    })
}

/// Runs `promtool check metrics` on the exposition; panics with its output.
fn promtool_accepts(metrics: &str) {
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool (Debian package prometheus; tests/run.sh installs it)");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(metrics.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool check metrics failed:\n{}{}\n---\n{metrics}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn with_admin(cfg: Config, port: u16, extra: &str) -> Config {
    let mut cfg = cfg;
    cfg.extra.push_str(&format!(
        "\n[admin]\naddress = \"127.0.0.1:{port}\"\n{extra}\n"
    ));
    cfg
}

/// One message over STARTTLS + AUTH; the reply to the final dot.
fn send_authenticated(p: &Postern, ca: &TestCa, from: &str) -> Reply {
    let mut c = SmtpClient::connect(p.port(0));
    c.greet_starttls(ca);
    c.auth_plain("app", PASSWORD).expect(235, "2.7.0", "auth");
    let msg = simple_message(from, "bob@dest.test", "metrics");
    let r = c.send_message(from, &["bob@dest.test"], &msg);
    c.quit();
    r
}

#[test]
fn metrics_pass_promtool_and_count_the_mail_that_flows() {
    let ca = TestCa::new();
    let up = MockUpstream::start(&ca);
    let admin = free_port();
    let p = Postern::start(&ca, &with_admin(Config::new(&up.url()), admin, ""));
    let listener = format!("127.0.0.1:{}", p.port(0));

    let (status, before) = get(admin, "/metrics", None, None);
    assert_eq!(status, 200);
    promtool_accepts(&before);
    assert_eq!(sample(&before, "postern_messages_accepted_total"), None);
    assert!(before.contains("postern_build_info{version=\""), "{before}");

    for _ in 0..2 {
        send_authenticated(&p, &ca, "app@example.com").expect(250, "2.0.0", "accepted");
    }
    // A sender the credential may not use: refused at MAIL.
    let mut c = SmtpClient::connect(p.port(0));
    c.greet_starttls(&ca);
    c.auth_plain("app", PASSWORD).expect(235, "2.7.0", "auth");
    c.cmd("MAIL FROM:<intruder@elsewhere.test>")
        .expect(550, "5.7.1", "sender refused");
    c.quit();
    let mut bad = SmtpClient::connect(p.port(0));
    bad.greet_starttls(&ca);
    bad.auth_plain("app", "wrong password")
        .expect(535, "5.7.8", "bad password");
    bad.quit();
    p.delivered(&up, 2);
    p.wait_queue_empty();

    let (status, after) = get(admin, "/metrics", None, None);
    assert_eq!(status, 200);
    promtool_accepts(&after);
    let want = [
        ("postern_messages_accepted_total".to_string(), 2.0),
        ("postern_auth_total{outcome=\"success\"}".to_string(), 3.0),
        ("postern_auth_total{outcome=\"invalid\"}".to_string(), 1.0),
        (
            "postern_messages_refused_total{stage=\"mail\",reason=\"sender\"}".to_string(),
            1.0,
        ),
        (
            "postern_delivery_attempts_total{upstream=\"api\",outcome=\"delivered\"}".to_string(),
            2.0,
        ),
        (
            "postern_delivery_duration_seconds_count{upstream=\"api\"}".to_string(),
            2.0,
        ),
        (
            // Four sessions and the harness's readiness probe.
            format!("postern_connections_total{{listener=\"{listener}\"}}"),
            5.0,
        ),
        (
            "postern_tls_handshakes_total{version=\"TLSv1.3\"}".to_string(),
            4.0,
        ),
        ("postern_spool_messages{state=\"queued\"}".to_string(), 0.0),
        (
            "postern_breaker_state{upstream=\"api\",state=\"closed\"}".to_string(),
            1.0,
        ),
    ];
    for (series, value) in want {
        assert_eq!(
            sample(&after, &series),
            Some(value),
            "{series} in:\n{after}"
        );
    }
    // Label values are bounded: no address of a sender or recipient.
    assert!(!after.contains("example.com") && !after.contains("dest.test"));
}

#[test]
fn metrics_need_the_bearer_token_when_one_is_set() {
    let ca = TestCa::new();
    let up = MockUpstream::start(&ca);
    let admin = free_port();
    let cfg = with_admin(
        Config::new(&up.url()),
        admin,
        "bearer_token = \"env:POSTERN_TEST_ADMIN_TOKEN\"",
    );
    let p = Postern::start_with_env(&ca, &cfg, &[("POSTERN_TEST_ADMIN_TOKEN", "s3cret-scrape")]);
    assert_eq!(get(admin, "/metrics", None, None).0, 401);
    assert_eq!(get(admin, "/metrics", Some("s3cret-scrapeX"), None).0, 401);
    let (status, body) = get(admin, "/metrics", Some("s3cret-scrape"), None);
    assert_eq!(status, 200);
    assert!(body.contains("postern_build_info"), "{body}");
    // Health checks stay open for load balancers.
    assert_eq!(
        get(admin, "/healthz", None, None),
        (200, "ok\n".to_string())
    );
    assert_eq!(
        get(admin, "/readyz", None, None),
        (200, "ready\n".to_string())
    );
    assert!(
        !p.log().contains("s3cret-scrape"),
        "the token reached the log"
    );
}

#[test]
fn readyz_is_unready_while_the_only_upstreams_breaker_is_open() {
    let ca = TestCa::new();
    let up = MockUpstream::with_default(&ca, Scripted::status(503).body(b"maintenance"));
    let admin = free_port();
    let cfg = with_admin(
        Config::new(&up.url())
            .upstream("breaker_failures = 1")
            .upstream("breaker_cooldown = \"3s\""),
        admin,
        "",
    );
    let p = Postern::start(&ca, &cfg);
    assert_eq!(
        get(admin, "/readyz", None, None),
        (200, "ready\n".to_string())
    );

    send_authenticated(&p, &ca, "app@example.com").expect(250, "2.0.0", "accepted");
    up.try_wait_for(1, Duration::from_secs(30)).unwrap();
    let unready = wait_until(Duration::from_secs(10), || {
        get(admin, "/readyz", None, None).0 == 503
    });
    assert!(unready, "readyz stayed ready with the breaker open");
    let (_, body) = get(admin, "/readyz", None, None);
    assert!(
        body.contains("route \"default\"") && body.contains("(api)"),
        "{body}"
    );
    let (_, metrics) = get(admin, "/metrics", None, None);
    assert_eq!(
        sample(
            &metrics,
            "postern_breaker_state{upstream=\"api\",state=\"open\"}"
        ),
        Some(1.0)
    );

    // The upstream recovers; after the cool-down the probe delivers.
    up.set_default(Scripted::ok());
    p.wait_queue_empty();
    assert_eq!(
        get(admin, "/readyz", None, None),
        (200, "ready\n".to_string())
    );
    let (_, metrics) = get(admin, "/metrics", None, None);
    assert_eq!(
        sample(
            &metrics,
            "postern_breaker_state{upstream=\"api\",state=\"closed\"}"
        ),
        Some(1.0)
    );
}

#[test]
fn off_loopback_the_admin_listener_serves_https() {
    let ca = TestCa::new();
    let up = MockUpstream::start(&ca);
    let admin = free_port();
    let mut cfg = Config::new(&up.url());
    // Bound on every address, reached (as every test) over loopback only.
    cfg.extra = format!(
        "[admin]\naddress = \"0.0.0.0:{admin}\"\nbearer_token = \"env:POSTERN_TEST_ADMIN_TOKEN\"\n"
    );
    let _p = Postern::start_with_env(&ca, &cfg, &[("POSTERN_TEST_ADMIN_TOKEN", "tls-token")]);
    assert_eq!(
        get(admin, "/healthz", None, Some(&ca)),
        (200, "ok\n".to_string())
    );
    let (status, body) = get(admin, "/metrics", Some("tls-token"), Some(&ca));
    assert_eq!(status, 200);
    assert!(body.contains("postern_build_info"));
}

#[test]
fn an_exposed_admin_listener_needs_a_token_and_a_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let base = format!(
        "[server]\nstate_dir = {}\n\n[[listeners]]\naddress = \"127.0.0.1:2525\"\ntls = \"none\"\n\n\
         [credentials.lan]\nnetworks = [\"127.0.0.0/8\"]\nallowed_senders = [\"*\"]\n\n\
         [routes.default]\nupstreams = [\"out\"]\n\n[upstreams.out]\nkind = \"directory\"\npath = {}\n",
        toml_str(&state.to_string_lossy()),
        toml_str(&dir.path().join("out").to_string_lossy())
    );
    let check = |extra: &str| {
        let path = dir.path().join("postern.toml");
        std::fs::write(&path, format!("{base}\n{extra}")).unwrap();
        let out = postern_cmd(&["check-config", "--config", &path.to_string_lossy()], b"");
        (
            out.status.success(),
            format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
        )
    };
    let (ok, text) = check("[admin]\naddress = \"0.0.0.0:9587\"\n");
    assert!(!ok, "{text}");
    assert!(text.contains("admin.bearer_token"), "{text}");
    assert!(text.contains("needs bearer_token"), "{text}");
    assert!(text.contains("configure [tls]"), "{text}");
    let (ok, text) = check("[admin]\naddress = \"127.0.0.1:9587\"\n");
    assert!(ok, "loopback needs neither: {text}");
    let (ok, text) = check("[admin]\naddress = \"localhost\"\n");
    assert!(!ok && text.contains("admin.address"), "{text}");
}
