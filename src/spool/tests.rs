//! Spool behaviour on a real temporary directory: what is on disk after
//! put, crash + recover, complete and dead-letter.

use std::collections::BTreeSet;
use std::fs;
use std::os::unix::fs::PermissionsExt;

use super::*;

fn envelope(id: &str) -> Envelope {
    Envelope {
        id: id.to_string(),
        received_at: 1_700_000_000,
        credential: "erp".to_string(),
        mail_from: "billing@example.com".to_string(),
        rcpt_to: vec!["a@example.net".to_string(), "b@example.net".to_string()],
        route: "default".to_string(),
        size: 0,
    }
}

fn queue_files(spool: &Spool) -> BTreeSet<String> {
    fs::read_dir(spool.dir().queue_dir())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect()
}

#[tokio::test]
async fn put_writes_envelope_line_then_exact_bytes_and_notifies() {
    let tmp = tempfile::tempdir().unwrap();
    let spool = Spool::open(tmp.path().join("spool")).unwrap();
    let mut rx = spool.subscribe();
    let id = new_id();
    let data = b"Subject: hi\r\n\r\nbody\r\n.\r\n\x00\xff".to_vec();
    spool.put(envelope(&id), data.clone()).await.unwrap();

    let raw = fs::read(spool.dir().queue_dir().join(&id)).unwrap();
    let nl = raw.iter().position(|&b| b == b'\n').unwrap();
    let env: Envelope = serde_json::from_slice(&raw[..nl]).unwrap();
    assert_eq!(env.size, data.len() as u64);
    assert_eq!(env.rcpt_to, envelope(&id).rcpt_to);
    assert_eq!(&raw[nl + 1..], &data[..]);
    assert_eq!(rx.recv().await.unwrap(), id);

    let msg = spool.read(&id).await.unwrap();
    assert_eq!(msg.data, data);
    assert_eq!(msg.envelope.id, id);
    let mode = fs::metadata(spool.dir().queue_dir())
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o700);
    assert!(
        fs::read_dir(tmp.path().join("spool/tmp"))
            .unwrap()
            .next()
            .is_none()
    );
}

#[tokio::test]
async fn concurrent_puts_all_land_in_queue() {
    let tmp = tempfile::tempdir().unwrap();
    let spool = Spool::open(tmp.path().join("spool")).unwrap();
    let mut tasks = Vec::new();
    let mut ids = BTreeSet::new();
    for n in 0..64 {
        let id = new_id();
        ids.insert(id.clone());
        let spool = spool.clone();
        tasks.push(tokio::spawn(async move {
            let data: std::sync::Arc<[u8]> = format!("message {n}\r\n").into_bytes().into();
            spool.put(envelope(&id), data).await
        }));
    }
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    assert_eq!(queue_files(&spool), ids);
}

#[tokio::test]
async fn failed_put_leaves_nothing_in_queue() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("spool");
    let spool = Spool::open(root.clone()).unwrap();

    // tmp/ unusable: the write fails (a file where the directory should be,
    // because permissions do not stop root).
    fs::remove_dir(root.join("tmp")).unwrap();
    fs::write(root.join("tmp"), b"").unwrap();
    let err = spool
        .put(envelope(&new_id()), b"x".to_vec())
        .await
        .unwrap_err();
    assert!(matches!(err, SpoolError::Io { op: "write", .. }), "{err}");
    assert!(queue_files(&spool).is_empty());
    fs::remove_file(root.join("tmp")).unwrap();
    fs::create_dir(root.join("tmp")).unwrap();

    // queue/ missing: the rename fails and the temp file is cleaned up.
    fs::remove_dir(root.join("queue")).unwrap();
    let err = spool
        .put(envelope(&new_id()), b"x".to_vec())
        .await
        .unwrap_err();
    assert!(matches!(err, SpoolError::Io { op: "rename", .. }), "{err}");
    assert!(err.to_string().contains("No such file"), "{err}");
    assert!(fs::read_dir(root.join("tmp")).unwrap().next().is_none());
    assert!(!root.join("queue").exists());
}

#[tokio::test]
async fn invalid_ids_are_rejected_before_touching_disk() {
    let tmp = tempfile::tempdir().unwrap();
    let spool = Spool::open(tmp.path().join("spool")).unwrap();
    for bad in ["", "../evil", "a.retry", "a/b", "x y"] {
        let err = spool.put(envelope(bad), b"x".to_vec()).await.unwrap_err();
        assert!(matches!(err, SpoolError::InvalidId(_)), "{bad}: {err}");
        assert!(matches!(
            spool.read(bad).await,
            Err(SpoolError::InvalidId(_))
        ));
    }
    assert!(!tmp.path().join("evil").exists());
    assert!(queue_files(&spool).is_empty());
}

#[test]
fn second_open_of_a_locked_spool_fails() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("spool");
    let first = Spool::open(root.clone()).unwrap();
    assert!(matches!(
        Spool::open(root.clone()),
        Err(SpoolError::Locked(_))
    ));
    drop(first);
    Spool::open(root).unwrap();
}

#[tokio::test]
async fn recover_after_crash_finds_every_queued_message() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("spool");
    let mut ids = Vec::new();
    {
        let spool = Spool::open(root.clone()).unwrap();
        for _ in 0..5 {
            let id = new_id();
            spool
                .put(envelope(&id), id.as_bytes().to_vec())
                .await
                .unwrap();
            ids.push(id);
        }
        let state = RetryState {
            attempts: 3,
            next_attempt: 1_700_000_500,
            last_error: "HTTP 503".to_string(),
            last_upstream: Some("api".to_string()),
            ..RetryState::default()
        };
        spool.record_attempt(&ids[1], state).await.unwrap();
        // Simulated crash: a put that never finished, an orphan sidecar.
        fs::write(root.join("tmp").join(new_id()), b"half").unwrap();
        fs::write(root.join("queue/ORPHAN.retry"), b"{}").unwrap();
    }
    let spool = Spool::open(root.clone()).unwrap();
    assert!(fs::read_dir(root.join("tmp")).unwrap().next().is_none());
    let recovered = spool.recover().await.unwrap();
    let got: Vec<_> = recovered.iter().map(|r| r.envelope.id.clone()).collect();
    assert_eq!(got, ids);
    assert_eq!(recovered[1].retry.as_ref().unwrap().attempts, 3);
    assert!(recovered[0].retry.is_none());
    assert!(!root.join("queue/ORPHAN.retry").exists());
    for id in &ids {
        assert_eq!(spool.read(id).await.unwrap().data, id.as_bytes());
    }
}

#[tokio::test]
async fn corrupt_files_are_moved_to_dead_with_a_reason() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("spool");
    let spool = Spool::open(root.clone()).unwrap();
    let good = new_id();
    spool
        .put(envelope(&good), b"hello world".to_vec())
        .await
        .unwrap();
    let truncated = new_id();
    spool
        .put(envelope(&truncated), b"hello world".to_vec())
        .await
        .unwrap();
    let qt = root.join("queue").join(&truncated);
    let bytes = fs::read(&qt).unwrap();
    fs::write(&qt, &bytes[..bytes.len() - 3]).unwrap();
    let garbage = new_id();
    fs::write(root.join("queue").join(&garbage), b"not json\nxx").unwrap();
    fs::write(root.join("queue/bad name.txt"), b"?").unwrap();

    let recovered = spool.recover().await.unwrap();
    assert_eq!(recovered.len(), 1);
    assert_eq!(recovered[0].envelope.id, good);
    assert_eq!(queue_files(&spool), BTreeSet::from([good.clone()]));

    for (name, expect) in [
        (truncated.as_str(), "expected 11 message bytes, found 8"),
        (garbage.as_str(), "bad envelope"),
        ("bad name.txt", "unexpected file name"),
    ] {
        assert!(root.join("dead").join(name).exists(), "{name}");
        let reason: DeadReason = serde_json::from_slice(
            &fs::read(root.join("dead").join(format!("{name}.reason"))).unwrap(),
        )
        .unwrap();
        assert!(reason.reason.contains(expect), "{name}: {}", reason.reason);
    }
    // The truncated file kept its bytes: quarantined, not destroyed.
    assert_eq!(
        fs::read(root.join("dead").join(&truncated)).unwrap(),
        &bytes[..bytes.len() - 3]
    );
    let err = spool.dir().read(&truncated, true).unwrap_err();
    assert!(matches!(err, SpoolError::Corrupt { .. }), "{err}");
}

#[tokio::test]
async fn complete_removes_message_and_sidecar() {
    let tmp = tempfile::tempdir().unwrap();
    let spool = Spool::open(tmp.path().join("spool")).unwrap();
    let id = new_id();
    spool.put(envelope(&id), b"x".to_vec()).await.unwrap();
    spool
        .record_attempt(&id, RetryState::default())
        .await
        .unwrap();
    assert_eq!(queue_files(&spool).len(), 2);
    spool.complete(&id).await.unwrap();
    assert!(queue_files(&spool).is_empty());
    assert!(matches!(
        spool.read(&id).await,
        Err(SpoolError::NotFound(_))
    ));
    // Idempotent: a second complete is not an error.
    spool.complete(&id).await.unwrap();
}

#[tokio::test]
async fn dead_letter_moves_message_and_writes_reason() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("spool");
    let spool = Spool::open(root.clone()).unwrap();
    let id = new_id();
    spool.put(envelope(&id), b"payload".to_vec()).await.unwrap();
    spool
        .record_attempt(&id, RetryState::default())
        .await
        .unwrap();
    let reason = DeadReason {
        reason: "HTTP 400: bad recipient".to_string(),
        attempts: 2,
        time: 1_700_000_100,
        last_upstream: Some("api".to_string()),
        ..DeadReason::default()
    };
    spool.dead_letter(&id, reason.clone()).await.unwrap();

    assert!(queue_files(&spool).is_empty());
    let json: serde_json::Value =
        serde_json::from_slice(&fs::read(root.join("dead").join(format!("{id}.reason"))).unwrap())
            .unwrap();
    assert_eq!(json["reason"], "HTTP 400: bad recipient");
    assert_eq!(json["attempts"], 2);
    assert_eq!(json["time"], 1_700_000_100);
    assert_eq!(json["last_upstream"], "api");
    assert_eq!(spool.dir().read(&id, true).unwrap().data, b"payload");

    let dead = spool.list(true).await.unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].id, id);
    assert_eq!(dead[0].dead_reason.as_ref(), Some(&reason));
    assert!(spool.list(false).await.unwrap().is_empty());
    assert!(matches!(
        spool.dead_letter(&id, reason).await,
        Err(SpoolError::NotFound(_))
    ));
}

#[tokio::test]
async fn list_shows_queued_messages_with_retry_state() {
    let tmp = tempfile::tempdir().unwrap();
    let spool = Spool::open(tmp.path().join("spool")).unwrap();
    let (a, b) = (new_id(), new_id());
    spool.put(envelope(&b), b"bb".to_vec()).await.unwrap();
    spool.put(envelope(&a), b"a".to_vec()).await.unwrap();
    let state = RetryState {
        attempts: 1,
        ..RetryState::default()
    };
    spool.record_attempt(&b, state.clone()).await.unwrap();
    let list = spool.list(false).await.unwrap();
    assert_eq!(
        list.iter().map(|e| e.id.as_str()).collect::<Vec<_>>(),
        [&a, &b]
    );
    assert_eq!(list[1].retry.as_ref(), Some(&state));
    assert_eq!(list[1].envelope.as_ref().unwrap().size, 2);
    assert!(list[0].error.is_none());
}

#[test]
fn ids_are_sortable_unique_and_filename_safe() {
    let ids: Vec<String> = (0..2000).map(|_| new_id()).collect();
    let mut sorted = ids.clone();
    sorted.sort();
    assert_eq!(sorted, ids);
    assert_eq!(ids.iter().collect::<BTreeSet<_>>().len(), ids.len());
    for id in &ids {
        assert_eq!(id.len(), 20);
        assert!(
            id.bytes()
                .all(|b| b.is_ascii_digit() || (b'A'..=b'F').contains(&b))
        );
        store::check_id(id).unwrap();
    }
}

/// The most recipients `max_recipients` allows, each the longest path
/// and made of the characters JSON escapes, is read back; the spool
/// refuses (rather than stores unreadably) anything larger.
#[tokio::test]
async fn the_largest_allowed_envelope_is_read_back() {
    let tmp = tempfile::tempdir().unwrap();
    let spool = Spool::open(tmp.path().join("spool")).unwrap();
    let max_path = crate::validate::address::MAX_PATH;
    let worst = |i: usize| {
        // `"` and `\` take two bytes each in JSON.
        let local = format!("\"{}{i:06}\"", "\\\\".repeat(28));
        let domain = "d".repeat(max_path - 2 - local.len() - 1);
        format!("{local}@{domain}")
    };
    let mut env = envelope(&new_id());
    env.mail_from = worst(0);
    env.rcpt_to = (1..=MAX_RECIPIENTS).map(worst).collect();
    assert!(env.rcpt_to.iter().all(|r| r.len() + 2 == max_path));
    let id = env.id.clone();
    spool.put(env.clone(), b"x\r\n".to_vec()).await.unwrap();
    let msg = spool.read(&id).await.unwrap();
    assert_eq!(msg.envelope.rcpt_to, env.rcpt_to);

    let mut bigger = env;
    bigger.id = new_id();
    bigger.credential = "c".repeat(store::MAX_HEADER as usize);
    let err = spool.put(bigger, b"x\r\n".to_vec()).await.unwrap_err();
    assert!(matches!(err, SpoolError::EnvelopeTooLarge(_)), "{err}");
    assert_eq!(queue_files(&spool).len(), 1);
}

#[tokio::test]
async fn writer_heartbeat_ticks_while_idle_and_after_commits() {
    let tmp = tempfile::tempdir().unwrap();
    let spool = Spool::open(tmp.path().join("spool")).unwrap();
    spool.set_writer_tick(std::time::Duration::from_millis(10));
    let start = spool.writer_progress();
    // The first wait began with the default tick (1 s).
    tokio::time::sleep(std::time::Duration::from_millis(1300)).await;
    let idle = spool.writer_progress();
    assert!(idle.beats > start.beats, "{start:?} -> {idle:?}");
    assert_eq!(idle.longest_commit, std::time::Duration::ZERO);
    spool
        .put(envelope(&new_id()), b"x\r\n".to_vec())
        .await
        .unwrap();
    let after = spool.writer_progress();
    assert!(after.beats > idle.beats, "{idle:?} -> {after:?}");
    assert_eq!(after.longest_commit, std::time::Duration::ZERO);
}
