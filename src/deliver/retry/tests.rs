use super::*;

const S: fn(u64) -> Duration = Duration::from_secs;

#[test]
fn doubles_from_initial_up_to_max() {
    let p = RetryPolicy::default();
    let delays: Vec<u64> = (1..=9).map(|n| p.backoff(n, 0.0).as_secs()).collect();
    assert_eq!(delays, [30, 60, 120, 240, 480, 960, 1920, 3600, 3600]);
    assert_eq!(p.backoff(u32::MAX, 0.0), S(3600));
    assert_eq!(p.backoff(0, 0.0), S(30));
}

#[test]
fn jitter_is_plus_minus_twenty_percent_and_never_above_max() {
    let p = RetryPolicy::default();
    assert_eq!(p.backoff(1, -1.0), S(24));
    assert_eq!(p.backoff(1, 1.0), S(36));
    assert_eq!(p.backoff(2, 0.5), S(66));
    assert_eq!(p.backoff(20, 1.0), S(3600));
    assert_eq!(p.backoff(20, -1.0), S(2880));
    // Out-of-range jitter is clamped rather than producing odd delays.
    assert_eq!(p.backoff(1, 7.0), S(36));
    for _ in 0..1000 {
        let j = random_jitter();
        assert!((-1.0..=1.0).contains(&j), "{j}");
    }
}

#[test]
fn retry_after_is_honoured_but_capped() {
    let p = RetryPolicy::default();
    assert_eq!(p.after_transient(1, Some(S(600)), S(0), 0.0), Some(S(600)));
    // Shorter than our own back-off: ours wins.
    assert_eq!(p.after_transient(3, Some(S(5)), S(0), 0.0), Some(S(120)));
    // Absurd values are capped by the message's remaining lifetime.
    let age = S(4 * 24 * 3600);
    assert_eq!(
        p.after_transient(1, Some(S(u64::MAX / 4)), age, 0.0),
        Some(S(24 * 3600))
    );
}

#[test]
fn gives_up_once_max_age_is_reached_and_retries_at_expiry() {
    let p = RetryPolicy {
        initial: S(30),
        max: S(3600),
        max_age: S(1000),
    };
    assert_eq!(p.after_transient(1, None, S(0), 0.0), Some(S(30)));
    // Next back-off would overshoot expiry: last attempt at expiry.
    assert_eq!(p.after_transient(8, None, S(990), 0.0), Some(S(10)));
    assert_eq!(p.after_transient(9, None, S(1000), 0.0), None);
    assert_eq!(p.after_transient(1, None, S(5000), 0.0), None);
}
