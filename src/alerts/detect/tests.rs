use super::*;

fn settings() -> Settings {
    Settings {
        auth_failures_per_network: Some(5),
        auth_failures_per_username: Some(3),
        auth_window: Duration::from_secs(60),
        volume_spike_factor: Some(3.0),
        volume_min_messages: 10,
        volume_window: Duration::from_secs(10),
        volume_baseline: 3,
        inspection_refusals: Some(4),
        inspection_window: Duration::from_secs(60),
        delivery_failure_ratio: Some(0.5),
        delivery_min_attempts: 10,
        delivery_window: Duration::from_secs(60),
        queue_age: Some(Duration::from_secs(300)),
        repeat_after: Duration::from_secs(120),
        ..Settings::default()
    }
}

const S: u64 = 1000;

#[test]
fn failed_auth_bursts_fire_per_network_and_per_username() {
    let mut d = Detectors::new(settings());
    // Spread over the window: two a minute never reach five within one.
    for i in 0..20 {
        assert!(
            d.auth_failed("10.0.0.1", &format!("u{i}"), i * 31 * S)
                .is_empty()
        );
    }
    let mut d = Detectors::new(settings());
    let mut fired = Vec::new();
    for i in 0..5 {
        fired.extend(d.auth_failed("10.0.0.9", &format!("user{i}"), 100 * S + i));
    }
    assert_eq!(fired.len(), 1, "{fired:?}");
    assert_eq!(fired[0].kind, Kind::AuthFailuresNetwork);
    assert_eq!(fired[0].key, "10.0.0.9");
    assert_eq!(fired[0].value, 5.0);
    // Credential stuffing: one username from many networks.
    let fired: Vec<Alert> = (0..3)
        .flat_map(|i| d.auth_failed(&format!("192.0.2.{i}"), "app", 200 * S + i))
        .collect();
    assert_eq!(fired.len(), 1);
    assert_eq!(fired[0].kind, Kind::AuthFailuresUsername);
    assert_eq!(fired[0].key, "app");
}

#[test]
fn an_alert_repeats_only_after_repeat_after() {
    let mut d = Detectors::new(settings());
    let network = |alerts: Vec<Alert>| {
        alerts
            .iter()
            .filter(|a| a.kind == Kind::AuthFailuresNetwork)
            .count()
    };
    let mut count = 0;
    for i in 0..200 {
        count += network(d.auth_failed("10.0.0.9", "x", i * 100));
    }
    assert_eq!(count, 1, "one alert in 20 s of continuous failures");
    let later: usize = (0..5)
        .map(|i| network(d.auth_failed("10.0.0.9", "y", 200 * S + i)))
        .sum();
    assert_eq!(later, 1, "again after repeat_after");
}

#[test]
fn a_volume_spike_is_judged_against_the_credentials_own_history() {
    let mut d = Detectors::new(settings());
    // The first window has no history: never judged.
    for i in 0..50 {
        assert_eq!(d.accepted("erp", i), None);
    }
    // A steady 12 per 10 s window for a minute: quiet.
    let mut d = Detectors::new(settings());
    for w in 0..6 {
        for i in 0..12 {
            assert_eq!(d.accepted("erp", w * 10 * S + i * 100), None, "window {w}");
        }
    }
    // Then 37 in one window: above 3x the mean of 12 and above the minimum.
    let mut fired = None;
    for i in 0..37 {
        fired = fired.or(d.accepted("erp", 60 * S + i * 10));
    }
    let alert = fired.expect("spike");
    assert_eq!(alert.kind, Kind::VolumeSpike);
    assert_eq!(alert.key, "erp");
    assert_eq!(alert.value, 37.0);
    assert_eq!(alert.suspend, None);
    // A quiet credential's small burst stays under the minimum.
    let mut d = Detectors::new(settings());
    d.accepted("quiet", 0);
    for i in 0..9 {
        assert_eq!(d.accepted("quiet", 30 * S + i), None);
    }
}

#[test]
fn suspend_on_spike_carries_the_duration() {
    let mut d = Detectors::new(Settings {
        on_volume_spike: OnSpike::Suspend,
        volume_suspend_for: Duration::from_secs(900),
        ..settings()
    });
    d.accepted("erp", 0);
    let fired = (0..10).find_map(|i| d.accepted("erp", 10 * S + i));
    assert_eq!(fired.unwrap().suspend, Some(Duration::from_secs(900)));
}

#[test]
fn delivery_failures_need_a_share_of_enough_attempts() {
    let mut d = Detectors::new(settings());
    // Every other attempt failing, but too few attempts to judge.
    for i in 0..9 {
        assert_eq!(d.delivery("graph", i % 2 == 0, i * S), None);
    }
    assert!(d.delivery("graph", true, 9 * S).is_some(), "5 of 10 failed");
    // A healthy upstream with an occasional failure stays quiet.
    let mut d = Detectors::new(settings());
    for i in 0..100 {
        assert_eq!(d.delivery("ses", i % 10 == 0, i * S / 2), None);
    }
}

#[test]
fn inspection_refusals_and_queue_age() {
    let mut d = Detectors::new(settings());
    for i in 0..3 {
        assert_eq!(d.inspection_refused("scanner", i * S), None);
    }
    let a = d
        .inspection_refused("scanner", 4 * S)
        .expect("fourth refusal");
    assert_eq!(
        (a.kind, a.key.as_str()),
        (Kind::InspectionRefusals, "scanner")
    );
    assert_eq!(d.queue_age(Duration::from_secs(299), 0), None);
    let a = d.queue_age(Duration::from_secs(301), 0).expect("old queue");
    assert_eq!(a.kind, Kind::QueueAge);
    assert_eq!(
        d.queue_age(Duration::from_secs(400), 60 * S),
        None,
        "repeat_after"
    );
}

#[test]
fn off_detectors_never_fire() {
    let mut d = Detectors::new(Settings {
        auth_failures_per_network: None,
        auth_failures_per_username: None,
        volume_spike_factor: None,
        inspection_refusals: None,
        delivery_failure_ratio: None,
        queue_age: None,
        ..settings()
    });
    for i in 0..1000 {
        assert!(d.auth_failed("n", "u", i).is_empty());
        assert_eq!(d.accepted("c", i * 100), None);
        assert_eq!(d.inspection_refused("c", i), None);
        assert_eq!(d.delivery("u", true, i), None);
    }
    assert_eq!(d.queue_age(Duration::from_secs(1 << 20), 0), None);
}
