//! `[alerts]` against the real binary: each detector fires on a crafted
//! burst (an `anomaly` audit event, the metric and a POST to a local HTTPS
//! webhook that checks the secret header and the JSON body), and stays
//! quiet below its threshold. The windows' arithmetic under steady load is
//! unit-tested in src/alerts/detect/tests.rs.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::Value;

use crate::common::postern::toml_str;
use crate::common::*;

const HOOK_TOKEN: &str = "hook-token-5d4c";

/// `[alerts]` with every detector off but those in `lines`, posting to
/// `hook`.
fn with_alerts(mut cfg: Config, ca: &TestCa, hook: &MockUpstream, lines: &[&str]) -> Config {
    let mut t = String::from(
        "[alerts]\nauth_failures_per_network = \"off\"\nauth_failures_per_username = \"off\"\n\
         volume_spike_factor = \"off\"\ninspection_refusals = \"off\"\n\
         delivery_failure_ratio = \"off\"\nqueue_age = \"off\"\n",
    );
    t = t
        .lines()
        .filter(|l| {
            !lines
                .iter()
                .any(|x| x.split('=').next() == l.split('=').next())
        })
        .map(|l| format!("{l}\n"))
        .collect();
    for l in lines {
        t.push_str(l);
        t.push('\n');
    }
    t.push_str(&format!(
        "webhook = {}\nwebhook_ca_file = {}\nwebhook_header = \"X-Alert-Token\"\nwebhook_secret = \"env:POSTERN_TEST_HOOK\"\n",
        toml_str(&hook.url()),
        toml_str(&ca.ca_pem.to_string_lossy())
    ));
    cfg.extra.push_str(&t);
    cfg
}

fn start(ca: &TestCa, cfg: &Config) -> Postern {
    Postern::start_with_env(ca, cfg, &[("POSTERN_TEST_HOOK", HOOK_TOKEN)])
}

/// The one alert the webhook received, checked for the secret header.
fn alert_posted(hook: &MockUpstream) -> Value {
    let got = hook
        .try_wait_for(1, Duration::from_secs(30))
        .expect("the webhook received the alert");
    assert_eq!(got.len(), 1, "one alert");
    assert_eq!(got[0].method, "POST");
    assert_eq!(got[0].header("x-alert-token"), Some(HOOK_TOKEN));
    assert_eq!(got[0].header("content-type"), Some("application/json"));
    let body: Value = serde_json::from_slice(&got[0].body).expect("JSON body");
    assert_eq!(body["event"], "anomaly");
    assert_eq!(body["host"], "relay.test");
    assert!(body["time"].as_str().unwrap().ends_with('Z'), "{body}");
    body
}

fn anomaly_logged(p: &Postern, kind: &str) -> String {
    p.wait_log_line(&["anomaly", &format!("kind=\"{kind}\"")])
}

fn fail_auth(p: &Postern, ca: &TestCa) {
    let mut c = SmtpClient::connect(p.port(0));
    c.greet_starttls(ca);
    c.auth_plain("app", "not the password")
        .expect(535, "5.7.8", "wrong password");
    c.quit();
}

#[test]
fn failed_auth_from_one_network_raises_an_alert_at_the_threshold() {
    let ca = TestCa::new();
    let up = MockUpstream::start(&ca);
    let hook = MockUpstream::start(&ca);
    let cfg = with_alerts(
        Config::new(&up.url()),
        &ca,
        &hook,
        &["auth_failures_per_network = 3", "auth_window = \"1m\""],
    );
    let p = start(&ca, &cfg);
    fail_auth(&p, &ca);
    fail_auth(&p, &ca);
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(hook.count(), 0, "two failures are below the threshold");
    assert!(!p.log().contains("anomaly"));
    fail_auth(&p, &ca);
    let body = alert_posted(&hook);
    assert_eq!(body["kind"], "auth_failures_network");
    assert_eq!(body["key"], "127.0.0.1");
    assert_eq!(body["value"], 3.0);
    assert_eq!(body["action"], "alert");
    let line = anomaly_logged(&p, "auth_failures_network");
    assert!(
        line.contains("WARN") && line.contains("key=127.0.0.1"),
        "{line}"
    );
    // Repeated failures within repeat_after do not flood the webhook.
    fail_auth(&p, &ca);
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(hook.count(), 1);
    assert!(!p.log().contains(HOOK_TOKEN));
}

/// Sends `n` messages on one connection of the plain listener.
fn send(p: &Postern, n: usize) {
    let mut c = SmtpClient::connect(p.port(0));
    c.greet();
    for i in 0..n {
        let msg = simple_message("app@example.com", "bob@dest.test", &format!("m{i}"));
        c.send_message("app@example.com", &["bob@dest.test"], &msg)
            .expect(250, "2.0.0", "accepted");
    }
    c.quit();
}

#[test]
fn a_credentials_burst_far_above_its_history_is_a_volume_spike() {
    let ca = TestCa::new();
    let up = MockUpstream::start(&ca);
    let hook = MockUpstream::start(&ca);
    let cfg = with_alerts(
        Config::new(&up.url())
            .listeners(&["none"])
            .with_loopback_network(),
        &ca,
        &hook,
        &[
            "volume_spike_factor = 3",
            "volume_min_messages = 8",
            "volume_window = \"4s\"",
            "volume_baseline = 2",
        ],
    );
    let p = start(&ca, &cfg);
    // Windows are aligned to the clock: start right after a boundary.
    let wait_for_window = || {
        let ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_millis() as u64;
        std::thread::sleep(Duration::from_millis(4000 - ms % 4000 + 100));
    };
    wait_for_window();
    send(&p, 2);
    wait_for_window();
    send(&p, 2);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(hook.count(), 0, "a steady two per window is no spike");
    wait_for_window();
    send(&p, 12);
    let body = alert_posted(&hook);
    assert_eq!(body["kind"], "volume_spike");
    assert_eq!(body["key"], "local");
    assert!(body["value"].as_f64().unwrap() >= 8.0, "{body}");
    anomaly_logged(&p, "volume_spike");
}

#[test]
fn a_failing_upstream_and_an_old_queue_raise_alerts() {
    let ca = TestCa::new();
    let up = MockUpstream::with_default(&ca, Scripted::status(503).body(b"down"));
    let hook = MockUpstream::start(&ca);
    let admin = crate::common::postern::free_port();
    let mut cfg = with_alerts(
        Config::new(&up.url())
            .listeners(&["none"])
            .with_loopback_network(),
        &ca,
        &hook,
        &[
            "delivery_failure_ratio = 0.5",
            "delivery_min_attempts = 3",
            "queue_age = \"2s\"",
        ],
    );
    cfg.extra
        .push_str(&format!("\n[admin]\naddress = \"127.0.0.1:{admin}\"\n"));
    let p = start(&ca, &cfg);
    send(&p, 1);
    let got = hook
        .try_wait_for(2, Duration::from_secs(30))
        .expect("two alerts");
    let kinds: Vec<String> = got
        .iter()
        .map(|r| {
            let v: Value = serde_json::from_slice(&r.body).unwrap();
            format!(
                "{}:{}",
                v["kind"].as_str().unwrap(),
                v["key"].as_str().unwrap()
            )
        })
        .collect();
    assert!(
        kinds.contains(&"delivery_failures:api".to_string()),
        "{kinds:?}"
    );
    assert!(kinds.contains(&"queue_age:queue".to_string()), "{kinds:?}");
    anomaly_logged(&p, "delivery_failures");
    anomaly_logged(&p, "queue_age");
    let (_, metrics) = crate::common::http::get(admin, "/metrics", None, None);
    assert!(
        metrics.contains("postern_anomalies_total{kind=\"delivery_failures\"} 1"),
        "{metrics}"
    );
}

#[test]
fn messages_refused_by_inspection_raise_an_alert_per_credential() {
    let ca = TestCa::new();
    let up = MockUpstream::start(&ca);
    let hook = MockUpstream::start(&ca);
    let cfg = with_alerts(
        Config::new(&up.url())
            .listeners(&["none"])
            .with_loopback_network(),
        &ca,
        &hook,
        &["inspection_refusals = 2"],
    );
    let p = start(&ca, &cfg);
    let refused = || {
        let mut c = SmtpClient::connect(p.port(0));
        c.greet();
        // No From header: refused by inspection (missing_from = "reject").
        let r = c.send_message(
            "app@example.com",
            &["bob@dest.test"],
            b"To: bob@dest.test\r\nSubject: no from\r\n\r\nbody\r\n",
        );
        r.expect_code(554, "refused by inspection");
        c.quit();
    };
    refused();
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(hook.count(), 0);
    refused();
    let body = alert_posted(&hook);
    assert_eq!(body["kind"], "inspection_refusals");
    assert_eq!(body["key"], "local");
}

#[test]
fn alert_settings_are_checked() {
    let ca = TestCa::new();
    let up = MockUpstream::start(&ca);
    let mut cfg = Config::new(&up.url());
    cfg.extra = "[alerts]\nauth_failures_per_network = 0\nvolume_spike_factor = 0.5\n\
                 on_volume_spike = \"ban\"\nwebhook = \"http://hooks.example/x\"\n"
        .into();
    let dir = tempfile::tempdir().unwrap();
    let ca_paths = crate::common::postern::CaPaths {
        ca: ca.ca_pem.clone(),
        cert: ca.cert_pem.clone(),
        key: ca.key_pem.clone(),
    };
    let path = dir.path().join("postern.toml");
    std::fs::write(&path, cfg.render(&ca_paths, dir.path(), &[2525])).unwrap();
    let out = crate::common::clients::postern_cmd(
        &["check-config", "--config", &path.to_string_lossy()],
        b"",
    );
    let text =
        String::from_utf8_lossy(&out.stderr).into_owned() + &String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success());
    for key in [
        "alerts.auth_failures_per_network",
        "alerts.volume_spike_factor",
        "alerts.on_volume_spike",
        "alerts.webhook",
    ] {
        assert!(text.contains(key), "{key} not reported:\n{text}");
    }
}
