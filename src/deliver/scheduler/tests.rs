use super::*;
use std::time::Duration;

#[tokio::test]
async fn due_order_dedup_and_no_double_handout() {
    let s = Scheduler::default();
    let now = Instant::now();
    assert!(s.add("late".into(), now + Duration::from_millis(300), 0));
    assert!(s.add("first".into(), now, 2));
    assert!(s.add("second".into(), now + Duration::from_millis(1), 0));
    assert!(!s.add("first".into(), now, 0), "duplicate add ignored");

    assert_eq!(
        s.next().await,
        Job {
            id: "first".into(),
            failures: 2,
            last_upstream: None,
        }
    );
    // In flight: a re-add (late notification) does not hand it out again.
    assert!(!s.add("first".into(), now, 0));
    assert_eq!(s.next().await.id, "second");
    s.failed_on("first", Instant::now() + Duration::from_millis(5), 3, "ses");
    assert_eq!(
        s.next().await,
        Job {
            id: "first".into(),
            failures: 3,
            last_upstream: Some("ses".into()),
        }
    );
    s.remove("first");
    assert_eq!(s.next().await.id, "late");
    assert_eq!(s.len(), 2, "second and late are in flight");
    s.remove("second");
    s.remove("late");
    assert_eq!(s.len(), 0);
}

#[tokio::test]
async fn waiting_worker_wakes_on_add() {
    let s = std::sync::Arc::new(Scheduler::default());
    let waiter = tokio::spawn({
        let s = s.clone();
        async move { s.next().await }
    });
    tokio::task::yield_now().await;
    s.add("x".into(), Instant::now(), 0);
    assert_eq!(waiter.await.unwrap().id, "x");
}

#[tokio::test]
async fn parked_messages_wake_early_and_keep_their_state() {
    let s = Scheduler::default();
    let now = Instant::now();
    assert!(s.add_job(
        Job {
            id: "m".into(),
            failures: 2,
            last_upstream: Some("graph".into()),
        },
        now,
    ));
    let job = s.next().await;
    assert_eq!(job.last_upstream.as_deref(), Some("graph"));
    // Parked for an hour: only wake_parked can hand it out again soon.
    s.park("m", now + Duration::from_secs(3600));
    assert_eq!(s.parked(), 1);
    s.add("other".into(), now, 0);
    assert_eq!(s.next().await.id, "other");
    s.wake_parked();
    assert_eq!(s.parked(), 0);
    assert_eq!(
        s.next().await,
        Job {
            id: "m".into(),
            failures: 2,
            last_upstream: Some("graph".into()),
        }
    );
    // retry keeps the last upstream; a new retry unparks.
    s.park("m", now + Duration::from_secs(3600));
    s.retry("m", now, 3);
    assert_eq!(s.parked(), 0);
    let job = s.next().await;
    assert_eq!(
        (job.failures, job.last_upstream.as_deref()),
        (3, Some("graph"))
    );
}
