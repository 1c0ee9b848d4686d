use super::*;

#[test]
fn status_line_says_queue_depth_and_rate() {
    assert_eq!(
        status_line(3, 30, 41),
        "3 queued; 30 delivered in the last minute (0.5/s); 41 delivered since start"
    );
}

#[test]
fn timing_pings_at_half_the_timeout() {
    let t = Timing::new(Duration::from_secs(30));
    assert_eq!(t.ping_every, Duration::from_secs(15));
    assert_eq!(t.tick, Duration::from_secs(1));
    assert_eq!(t.stuck_after, Duration::from_secs(15));
    let t = Timing::new(Duration::from_secs(2));
    assert_eq!(t.ping_every, Duration::from_secs(1));
    assert_eq!(t.tick, Duration::from_millis(250));
    assert_eq!(
        Timing::new(Duration::from_millis(20)).tick,
        Duration::from_millis(10)
    );
}

fn writers(beats: u64, commit_ms: u64) -> crate::spool::WriterProgress {
    crate::spool::WriterProgress {
        beats,
        longest_commit: Duration::from_millis(commit_ms),
    }
}

#[test]
fn pings_need_both_halves_to_advance() {
    let timing = Timing::new(Duration::from_secs(2));
    let seen = Beats {
        runtime: 10,
        spool: 20,
    };
    assert_eq!(stalled(&seen, 11, writers(21, 0), timing), None);
    // A commit in progress, but not for long: fine.
    assert_eq!(stalled(&seen, 11, writers(21, 900), timing), None);
    let why = |r, w| stalled(&seen, r, w, timing).unwrap_or_default();
    assert!(why(10, writers(21, 0)).contains("runtime"));
    assert!(why(11, writers(20, 0)).contains("spool writer"));
    // Siblings idling along do not hide a writer stuck in fsync.
    assert!(why(11, writers(25, 1_000)).contains("spool write has been running"));
}
