use super::*;

#[test]
fn system_clock_is_near_wall_time_and_monotonic() {
    let c = SystemClock::new();
    let wall = nanos(SystemTime::now().duration_since(UNIX_EPOCH).unwrap());
    let a = c.now();
    let b = c.now();
    assert!(b >= a);
    assert!(a.abs_diff(wall) < 60_000_000_000, "{a} vs {wall}");
}

#[test]
fn manual_clock_moves_only_when_advanced() {
    let c = ManualClock::new(Duration::from_secs(100));
    assert_eq!(c.now(), 100_000_000_000);
    c.advance(Duration::from_millis(1500));
    assert_eq!(c.now(), 101_500_000_000);
}
