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
            requeued_at: None,
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
            requeued_at: None,
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
            requeued_at: None,
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
            requeued_at: None,
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

#[tokio::test]
async fn held_messages_are_not_handed_out_until_released() {
    let s = Scheduler::default();
    let now = Instant::now();
    s.add("held".into(), now, 1);
    s.add("free".into(), now + Duration::from_millis(20), 0);
    s.hold("held").unwrap();
    assert_eq!(s.hold("nope"), Err(Refused::Unknown));
    assert_eq!(s.counts().held, 1);
    // Though due first, the held message is skipped.
    assert_eq!(s.next().await.id, "free");
    let nothing = tokio::time::timeout(Duration::from_millis(100), s.next()).await;
    assert!(nothing.is_err(), "a held message was handed out");
    // Holding what is in flight is refused, and so is expediting a hold.
    assert_eq!(s.hold("free"), Err(Refused::InFlight));
    assert_eq!(s.expedite("held"), Err(Refused::Held));
    assert_eq!(s.states().get("held"), Some(&JobState::Held));
    s.release("held", Instant::now()).unwrap();
    let job = s.next().await;
    assert_eq!((job.id.as_str(), job.failures), ("held", 1));
    assert_eq!(s.release("gone", Instant::now()), Err(Refused::Unknown));
}

#[tokio::test]
async fn expedite_makes_a_waiting_message_due_now() {
    let s = Scheduler::default();
    s.add("m".into(), Instant::now() + Duration::from_secs(3600), 2);
    let early = tokio::time::timeout(Duration::from_millis(50), s.next()).await;
    assert!(early.is_err());
    s.expedite("m").unwrap();
    let job = tokio::time::timeout(Duration::from_secs(5), s.next())
        .await
        .expect("expedited message handed out");
    assert_eq!((job.id.as_str(), job.failures), ("m", 2));
    assert_eq!(s.expedite("m"), Err(Refused::InFlight));
    assert_eq!(s.take("m"), Err(Refused::InFlight));
    s.retry("m", Instant::now() + Duration::from_secs(3600), 3);
    s.take("m").unwrap();
    assert!(!s.contains("m"));
    assert_eq!(s.expedite("m"), Err(Refused::Unknown));
    // Taking an unknown id is not an error (nothing to stop).
    s.take("m").unwrap();
}
