use super::*;

#[test]
fn counts_by_window_and_forgets_old_seconds() {
    let m = Meter::default();
    let t = 1_800_000_000;
    m.record_at(t - 299, true); // inside 5 min, outside 1 min
    m.record_at(t - 100, false);
    m.record_at(t - 59, true); // inside 1 min
    m.record_at(t, true);
    m.record_at(t, false);
    assert_eq!(
        m.rates_at(t),
        Rates {
            delivered_1m: 2,
            failed_1m: 1,
            delivered_5m: 3,
            failed_5m: 2,
        }
    );
    // Five minutes later the same slots hold nothing current.
    assert_eq!(m.rates_at(t + 300), Rates::default());
    // A second that reuses a slot replaces its old count.
    m.record_at(t + 300, true);
    assert_eq!(m.rates_at(t + 300).delivered_1m, 1);
    assert_eq!(m.rates_at(t + 300).delivered_5m, 1);
}
