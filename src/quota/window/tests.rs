use super::*;

const MIN: u64 = 60 * NS;
/// Some time well after the epoch, at a 5-minute boundary.
const T0: u64 = 1_800_000_000 * NS;

#[test]
fn hour_window_refuses_over_limit_and_tells_when_to_retry() {
    let mut w = Window::<Hour>::new();
    for i in 0..3 {
        assert_eq!(w.check(T0 + i * MIN, 1, 3), Ok(()));
        w.add(T0 + i * MIN, 1);
    }
    // The first count was made at T0 (bucket starting at T0); it leaves
    // the window when the bucket 13 widths later begins: T0 + 65 min.
    assert_eq!(w.check(T0 + 10 * MIN, 1, 3), Err(55 * MIN));
    assert_eq!(w.check(T0 + 64 * MIN, 1, 3), Err(MIN));
    assert_eq!(w.check(T0 + 65 * MIN, 1, 3), Ok(()));
    assert_eq!(w.total(T0 + 65 * MIN), 0);
}

#[test]
fn never_more_than_limit_in_any_hour() {
    // One attempt per minute for three hours against per_hour = 10:
    // every 60-minute span must hold at most 10 accepted.
    let mut w = Window::<Hour>::new();
    let mut accepted = Vec::new();
    for m in 0..180 {
        let t = T0 + 17 * NS + m * MIN;
        if w.check(t, 1, 10).is_ok() {
            w.add(t, 1);
            accepted.push(t);
        }
    }
    for &start in &accepted {
        let n = accepted
            .iter()
            .filter(|&&t| t >= start && t < start + 60 * MIN)
            .count();
        assert!(n <= 10, "{n} in the hour from {start}");
    }
    assert!(accepted.len() >= 25, "{}", accepted.len());
}

#[test]
fn asking_for_more_than_the_limit_waits_a_whole_window() {
    let mut w = Window::<Day>::new();
    assert_eq!(w.check(T0, 5, 4), Err(25 * 3600 * NS));
}

#[test]
fn remove_gives_back_newest_first() {
    let mut w = Window::<Hour>::new();
    w.add(T0, 2);
    w.add(T0 + 10 * MIN, 3);
    w.remove(T0 + 10 * MIN, 4);
    assert_eq!(w.total(T0 + 10 * MIN), 1);
    // What is left is the oldest bucket's count, which expires first.
    assert_eq!(w.total(T0 + 65 * MIN), 0);
    w.remove(T0 + 65 * MIN, 10);
    assert_eq!(w.total(T0 + 65 * MIN), 0);
}

#[test]
fn clock_going_back_counts_into_head() {
    let mut w = Window::<Hour>::new();
    w.add(T0 + 30 * MIN, 1);
    w.add(T0, 1);
    assert_eq!(w.total(T0 + 30 * MIN), 2);
}

#[test]
fn save_and_restore_round_trip() {
    let mut w = Window::<Day>::new();
    w.add(T0, 7);
    w.add(T0 + 120 * MIN, 2);
    let saved = w.save();
    // From the first non-zero bucket (7) to the head (2), 2 h later.
    assert_eq!(saved.counts, [7, 0, 2]);
    let mut back = Window::<Day>::restore(&saved).unwrap();
    assert_eq!(back, w);
    assert_eq!(back.total(T0 + 120 * MIN), 9);
    let full = Saved {
        head: saved.head,
        counts: vec![1; 25],
    };
    assert_eq!(
        Window::<Day>::restore(&full).unwrap().total(T0 + 120 * MIN),
        25
    );
    let bad = Saved {
        head: saved.head,
        counts: vec![1; 26],
    };
    assert!(Window::<Day>::restore(&bad).is_none());
    let far = Saved {
        head: u64::MAX,
        counts: vec![1],
    };
    assert!(Window::<Day>::restore(&far).is_none());
    assert!(
        Window::<Hour>::restore(&Saved {
            head: 0,
            counts: vec![1, 2]
        })
        .is_none()
    );
}
