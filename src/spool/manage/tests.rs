//! Operator actions on a real temporary spool: what is on disk after hold,
//! release, requeue and purge, and that a restart sees the same.

use std::fs;

use super::super::*;

fn envelope(id: &str) -> Envelope {
    Envelope {
        id: id.to_string(),
        received_at: 1_700_000_000,
        credential: "erp".to_string(),
        mail_from: "billing@example.com".to_string(),
        rcpt_to: vec!["a@example.net".to_string()],
        route: "default".to_string(),
        size: 0,
    }
}

const MESSAGE: &[u8] = b"Subject: hello\r\nX-Secret-Body-Marker: no\r\n\r\nBODY-MUST-NOT-SHOW\r\n";

async fn queued(spool: &Spool) -> String {
    let id = new_id();
    spool.put(envelope(&id), MESSAGE.to_vec()).await.unwrap();
    id
}

fn attempt(outcome: &str, detail: &str) -> HistoryEntry {
    HistoryEntry {
        time: 1_700_000_100,
        upstream: Some("api".to_string()),
        outcome: outcome.to_string(),
        detail: detail.to_string(),
    }
}

#[tokio::test]
async fn a_hold_is_on_disk_and_survives_a_restart() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("spool");
    let (held, free) = {
        let spool = Spool::open(root.clone()).unwrap();
        let held = queued(&spool).await;
        let free = queued(&spool).await;
        let h = spool.hold(&held).await.unwrap();
        assert!(h.since > 0);
        // Holding twice keeps the first hold.
        assert_eq!(spool.hold(&held).await.unwrap(), h);
        (held, free)
    };
    let spool = Spool::open(root.clone()).unwrap();
    let recovered = spool.recover().await.unwrap();
    let flags: Vec<(String, bool)> = recovered
        .iter()
        .map(|r| (r.envelope.id.clone(), r.held))
        .collect();
    assert_eq!(flags, [(held.clone(), true), (free.clone(), false)]);
    // The marker is a sidecar, not a corrupt file, and not counted as one.
    assert!(spool.list(true).await.unwrap().is_empty());
    assert_eq!(spool.dir().usage(false).unwrap().messages, 2);
    let list = spool.list(false).await.unwrap();
    assert!(list[0].held.is_some() && list[1].held.is_none());

    spool.release(&held).await.unwrap();
    assert!(!spool.dir().is_held(&held));
    assert!(matches!(
        spool.release(&held).await,
        Err(SpoolError::NotHeld(_))
    ));
    assert!(matches!(
        spool.hold("NOSUCHID").await,
        Err(SpoolError::NotFound(_))
    ));
}

#[tokio::test]
async fn history_accumulates_and_follows_the_message_to_dead_and_back() {
    let tmp = tempfile::tempdir().unwrap();
    let spool = Spool::open(tmp.path().join("spool")).unwrap();
    let id = queued(&spool).await;
    for n in 1..=2 {
        let state = RetryState {
            attempts: n,
            last_error: format!("HTTP 503 #{n}"),
            history: vec![attempt("transient", &format!("HTTP 503 #{n}"))],
            ..RetryState::default()
        };
        spool.record_attempt(&id, state).await.unwrap();
    }
    let reason = DeadReason {
        reason: "HTTP 400".to_string(),
        attempts: 3,
        time: 1_700_000_200,
        history: vec![attempt("permanent", "HTTP 400")],
        ..DeadReason::default()
    };
    spool.dead_letter(&id, reason).await.unwrap();
    let detail = spool.show(&id).await.unwrap();
    assert_eq!(detail.place, Place::Dead);
    let outcomes: Vec<&str> = detail
        .dead_reason
        .as_ref()
        .unwrap()
        .history
        .iter()
        .map(|h| h.outcome.as_str())
        .collect();
    assert_eq!(outcomes, ["transient", "transient", "permanent"]);
    // Hold and release do not apply to dead letters.
    assert!(matches!(spool.hold(&id).await, Err(SpoolError::IsDead(_))));

    let state = spool.requeue_dead(&id).await.unwrap();
    assert_eq!(state.attempts, 0);
    assert!(state.requeued_at.is_some());
    assert_eq!(state.history.len(), 4);
    assert_eq!(state.history[3].outcome, "requeued");
    assert!(state.history[3].detail.contains("HTTP 400"));
    assert!(!spool.dir().dead_path(&id).exists());
    assert!(!spool.dir().reason_path(&id).exists());
    assert_eq!(spool.read(&id).await.unwrap().data, MESSAGE);
    assert!(matches!(
        spool.requeue_dead(&id).await,
        Err(SpoolError::NotDead(_))
    ));
    // The next failure appends and keeps requeued_at.
    let next = RetryState {
        attempts: 1,
        history: vec![attempt("transient", "again")],
        ..RetryState::default()
    };
    spool.record_attempt(&id, next).await.unwrap();
    let after = spool.show(&id).await.unwrap().retry.unwrap();
    assert_eq!(after.history.len(), 5);
    assert_eq!(after.requeued_at, state.requeued_at);
    // A restart schedules it with that state.
    let rec = spool.recover().await.unwrap();
    assert_eq!(
        rec[0].retry.as_ref().unwrap().requeued_at,
        state.requeued_at
    );
}

#[tokio::test]
async fn history_keeps_the_newest_entries() {
    let tmp = tempfile::tempdir().unwrap();
    let spool = Spool::open(tmp.path().join("spool")).unwrap();
    let id = queued(&spool).await;
    for n in 0..(MAX_HISTORY + 5) {
        let state = RetryState {
            history: vec![attempt("transient", &n.to_string())],
            ..RetryState::default()
        };
        spool.record_attempt(&id, state).await.unwrap();
    }
    let h = spool.show(&id).await.unwrap().retry.unwrap().history;
    assert_eq!(h.len(), MAX_HISTORY);
    assert_eq!(h[0].detail, "5");
    assert_eq!(h[MAX_HISTORY - 1].detail, (MAX_HISTORY + 4).to_string());
}

#[tokio::test]
async fn show_gives_headers_never_the_body() {
    let tmp = tempfile::tempdir().unwrap();
    let spool = Spool::open(tmp.path().join("spool")).unwrap();
    let id = queued(&spool).await;
    let d = spool.show(&id).await.unwrap();
    assert_eq!(d.envelope.id, id);
    assert_eq!(d.place, Place::Queue);
    assert_eq!(d.headers, "Subject: hello\r\nX-Secret-Body-Marker: no");
    assert!(!d.headers_truncated);
    assert!(!format!("{d:?}").contains("BODY-MUST-NOT-SHOW"));
    // A message with no blank line is all header; a huge one is cut.
    let big = new_id();
    let mut data = Vec::new();
    while data.len() < show::MAX_SHOWN_HEADERS + 100 {
        data.extend_from_slice(b"X-Filler: 0123456789abcdef0123456789abcdef\r\n");
    }
    spool.put(envelope(&big), data).await.unwrap();
    let d = spool.show(&big).await.unwrap();
    assert!(d.headers_truncated);
    assert_eq!(d.headers.len(), show::MAX_SHOWN_HEADERS);
}

#[tokio::test]
async fn purge_removes_message_and_sidecars_from_either_place() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("spool");
    let spool = Spool::open(root.clone()).unwrap();
    let q = queued(&spool).await;
    spool
        .record_attempt(&q, RetryState::default())
        .await
        .unwrap();
    spool.hold(&q).await.unwrap();
    let d = queued(&spool).await;
    spool.dead_letter(&d, DeadReason::default()).await.unwrap();
    assert_eq!(spool.dead_ids().await.unwrap(), std::slice::from_ref(&d));
    assert_eq!(spool.purge(&q).await.unwrap(), Place::Queue);
    assert_eq!(spool.purge(&d).await.unwrap(), Place::Dead);
    for dir in ["queue", "dead"] {
        let left: Vec<_> = fs::read_dir(root.join(dir)).unwrap().collect();
        assert!(left.is_empty(), "{dir} not empty: {left:?}");
    }
    assert!(matches!(
        spool.purge(&q).await,
        Err(SpoolError::NotFound(_))
    ));
    assert!(matches!(
        spool.purge("../etc").await,
        Err(SpoolError::InvalidId(_))
    ));
}
