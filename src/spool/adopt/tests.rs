//! Adoption on real temporary directories: what moves, what a second run
//! or a half-finished run does, and what is refused.

use std::collections::BTreeSet;
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

fn names(dir: &std::path::Path) -> BTreeSet<String> {
    fs::read_dir(dir)
        .map(|d| {
            d.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// A stopped node's spool: two queued (one with retry state, one held)
/// and one dead letter. Returns their ids.
async fn old_node(root: &std::path::Path) -> (String, String, String) {
    let spool = Spool::open(root.to_path_buf()).unwrap();
    let (a, b, c) = (new_id(), new_id(), new_id());
    for id in [&a, &b, &c] {
        spool
            .put(
                envelope(id),
                format!("Subject: {id}\r\n\r\nbody\r\n").into_bytes(),
            )
            .await
            .unwrap();
    }
    let retry = RetryState {
        attempts: 3,
        next_attempt: unix_now() + 600,
        last_error: "503 from upstream".into(),
        last_upstream: Some("api".into()),
        requeued_at: None,
        history: Vec::new(),
    };
    spool.record_attempt(&a, retry).await.unwrap();
    spool.hold(&b).await.unwrap();
    let reason = DeadReason {
        reason: "550 rejected".into(),
        ..DeadReason::default()
    };
    spool.dead_letter(&c, reason).await.unwrap();
    (a, b, c)
}

#[tokio::test]
async fn adopt_moves_queue_and_dead_with_their_state_once() {
    let tmp = tempfile::tempdir().unwrap();
    let (a, b, c) = old_node(&tmp.path().join("old/spool")).await;
    let here = Spool::open(tmp.path().join("new/spool")).unwrap();

    // The state_dir above the spool is accepted too.
    let got = here.dir().adopt_from(&tmp.path().join("old")).unwrap();
    let queued: Vec<_> = got.queued.iter().map(|r| r.envelope.id.clone()).collect();
    assert_eq!(queued, vec![a.clone(), b.clone()]);
    assert_eq!(got.dead, vec![c.clone()]);
    assert!(got.skipped.is_empty(), "{:?}", got.skipped);
    let ra = got.queued.iter().find(|r| r.envelope.id == a).unwrap();
    assert_eq!(ra.retry.as_ref().map(|r| r.attempts), Some(3));
    assert!(got.queued.iter().find(|r| r.envelope.id == b).unwrap().held);

    let q = names(&here.dir().queue_dir());
    let want: BTreeSet<String> = [
        a.clone(),
        format!("{a}.retry"),
        b.clone(),
        format!("{b}.hold"),
    ]
    .into_iter()
    .collect();
    assert_eq!(q, want);
    let d = names(&here.dir().dead_dir());
    assert_eq!(d, [c.clone(), format!("{c}.reason")].into_iter().collect());
    assert_eq!(
        here.dir().read(&a, false).unwrap().data,
        format!("Subject: {a}\r\n\r\nbody\r\n").into_bytes()
    );
    assert!(names(&tmp.path().join("old/spool/queue")).is_empty());
    assert!(names(&tmp.path().join("old/spool/dead")).is_empty());

    // Again: nothing left to move, nothing duplicated.
    let again = here
        .dir()
        .adopt_from(&tmp.path().join("old/spool"))
        .unwrap();
    assert!(again.queued.is_empty() && again.dead.is_empty() && again.skipped.is_empty());
    assert_eq!(names(&here.dir().queue_dir()), want);
}

#[tokio::test]
async fn a_half_finished_adoption_is_completed_without_duplicates() {
    let tmp = tempfile::tempdir().unwrap();
    let old = tmp.path().join("old/spool");
    let (a, b, _c) = old_node(&old).await;
    let here = Spool::open(tmp.path().join("new/spool")).unwrap();
    // The state a crash can leave: `a` and its sidecar copied here but
    // still in the source; `b` gone from the source but its hold marker
    // not yet removed there.
    fs::copy(old.join("queue").join(&a), here.dir().queue_dir().join(&a)).unwrap();
    let side = format!("{a}.retry");
    fs::copy(
        old.join("queue").join(&side),
        here.dir().queue_dir().join(&side),
    )
    .unwrap();
    fs::rename(old.join("queue").join(&b), here.dir().queue_dir().join(&b)).unwrap();

    let got = here.dir().adopt_from(&old).unwrap();
    let queued: Vec<_> = got.queued.iter().map(|r| r.envelope.id.clone()).collect();
    assert_eq!(queued, vec![a.clone()], "b was already here");
    assert!(got.skipped.is_empty(), "{:?}", got.skipped);
    assert!(
        names(&old.join("queue")).is_empty(),
        "source emptied, orphan hold removed"
    );
    let q = names(&here.dir().queue_dir());
    assert!(
        q.contains(&a) && q.contains(&b) && q.contains(&side),
        "{q:?}"
    );
    assert_eq!(names(&here.dir().queue_dir()).len(), 3);
}

#[tokio::test]
async fn a_locked_spool_and_an_id_collision_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let old = tmp.path().join("old/spool");
    let (a, _b, _c) = old_node(&old).await;
    let here = Spool::open(tmp.path().join("new/spool")).unwrap();

    // A live process holds the other spool.
    let alive = Spool::open(old.clone()).unwrap();
    let e = here.dir().adopt_from(&old).unwrap_err();
    assert!(e.to_string().contains("locked by a running process"), "{e}");
    assert_eq!(names(&old.join("queue")).len(), 4, "nothing moved");
    drop(alive);

    // This spool already has `a` with other bytes.
    fs::write(here.dir().queue_dir().join(&a), b"someone else's message").unwrap();
    let got = here.dir().adopt_from(&old).unwrap();
    assert_eq!(got.skipped.len(), 1, "{:?}", got.skipped);
    assert_eq!(got.skipped[0].0, a);
    assert!(old.join("queue").join(&a).exists(), "left in the source");

    // Its own spool, and something that is not a spool.
    assert!(here.dir().adopt_from(here.dir().root()).is_err());
    assert!(here.dir().adopt_from(tmp.path()).is_err());
}

#[tokio::test]
async fn live_records_of_a_killed_node_are_adopted_as_files() {
    let tmp = tempfile::tempdir().unwrap();
    let old = tmp.path().join("old/spool");
    let (x, y) = (new_id(), new_id());
    {
        // Accepted, never attempted: only in the old node's segment log.
        let spool = Spool::open(old.clone()).unwrap();
        for id in [&x, &y] {
            spool
                .put(
                    envelope(id),
                    format!("Subject: {id}\r\n\r\nbody\r\n").into_bytes(),
                )
                .await
                .unwrap();
        }
        assert!(names(&old.join("queue")).is_empty());
    }
    let here = Spool::open(tmp.path().join("new/spool")).unwrap();
    let got = here.dir().adopt_from(&old).unwrap();
    let queued: Vec<_> = got.queued.iter().map(|r| r.envelope.id.clone()).collect();
    assert_eq!(queued, vec![x.clone(), y.clone()]);
    assert_eq!(
        names(&here.dir().queue_dir()),
        [x.clone(), y.clone()].into_iter().collect()
    );
    assert_eq!(
        here.dir().read(&y, false).unwrap().data,
        format!("Subject: {y}\r\n\r\nbody\r\n").into_bytes()
    );
    assert!(names(&old.join("queue")).is_empty());
    assert!(names(&old.join("seg")).is_empty(), "the old log is gone");
    let again = here.dir().adopt_from(&old).unwrap();
    assert!(again.queued.is_empty(), "nothing twice");
}
