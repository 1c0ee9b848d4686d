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

/// Every queued message on disk: queue/ files and the segment log's live
/// records.
fn queued(spool: &Spool) -> BTreeSet<String> {
    let mut all = queue_files(spool);
    all.extend(
        spool
            .dir()
            .live_records()
            .unwrap()
            .into_iter()
            .map(|l| l.envelope.id),
    );
    all
}

/// Closes the spool and opens it again, as a restart does: the segment
/// log's live records become queue/ files.
fn reopen(spool: Spool) -> Spool {
    let root = spool.path().to_path_buf();
    drop(spool);
    Spool::open(root).unwrap()
}

#[tokio::test]
async fn put_writes_envelope_line_then_exact_bytes_and_notifies() {
    let tmp = tempfile::tempdir().unwrap();
    let spool = Spool::open(tmp.path().join("spool")).unwrap();
    let mut rx = spool.subscribe();
    let id = new_id();
    let data = b"Subject: hi\r\n\r\nbody\r\n.\r\n\x00\xff".to_vec();
    spool.put(envelope(&id), data.clone()).await.unwrap();

    // In the segment log: the record head, the envelope line, the bytes.
    assert!(queue_files(&spool).is_empty());
    let segs = spool.dir().segments().unwrap();
    assert_eq!(segs.len(), 1);
    let log = fs::read(spool.dir().seg_path(segs[0])).unwrap();
    assert_eq!(&log[..4], b"PSG1");
    let header_len = u32::from_le_bytes(log[4..8].try_into().unwrap()) as usize;
    let data_len = u64::from_le_bytes(log[8..16].try_into().unwrap()) as usize;
    assert_eq!(data_len, data.len());
    assert_eq!(log.len(), segment::HEAD_LEN + header_len + data_len);
    assert_eq!(&log[segment::HEAD_LEN + header_len..], &data[..]);
    assert_eq!(rx.recv().await.unwrap(), id);
    // Read from the record, twice over: the same bytes each time.
    for _ in 0..2 {
        let msg = spool.read(&id).await.unwrap();
        assert_eq!(msg.data, data);
        assert_eq!(msg.envelope.id, id);
        assert_eq!(msg.envelope.size, data.len() as u64);
    }

    // After a restart it is a queue/ file: the envelope line, the bytes.
    let spool = reopen(spool);
    assert!(spool.dir().segments().unwrap().is_empty());
    let raw = fs::read(spool.dir().queue_dir().join(&id)).unwrap();
    let nl = raw.iter().position(|&b| b == b'\n').unwrap();
    let env: Envelope = serde_json::from_slice(&raw[..nl]).unwrap();
    assert_eq!(env.size, data.len() as u64);
    assert_eq!(env.rcpt_to, envelope(&id).rcpt_to);
    assert_eq!(&raw[nl + 1..], &data[..]);

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
    assert_eq!(queued(&spool), ids);
    assert_eq!(queue_files(&reopen(spool)), ids);
}

#[tokio::test]
async fn failed_put_leaves_nothing_in_queue() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("spool");
    let spool = Spool::open(root.clone()).unwrap();

    // seg/ unusable: no segment can be created (a file where the
    // directory should be, because permissions do not stop root).
    fs::remove_dir(root.join("seg")).unwrap();
    fs::write(root.join("seg"), b"").unwrap();
    let err = spool
        .put(envelope(&new_id()), b"x".to_vec())
        .await
        .unwrap_err();
    assert!(matches!(err, SpoolError::Io { op: "create", .. }), "{err}");
    assert!(queue_files(&spool).is_empty());

    // Usable again: the next put works without a restart.
    fs::remove_file(root.join("seg")).unwrap();
    fs::create_dir(root.join("seg")).unwrap();
    let id = new_id();
    spool.put(envelope(&id), b"y".to_vec()).await.unwrap();
    assert_eq!(queued(&spool), BTreeSet::from([id]));
}

#[tokio::test]
async fn a_torn_record_at_the_end_of_a_segment_is_dropped_and_the_rest_kept() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("spool");
    let spool = Spool::open(root.clone()).unwrap();
    let (a, b) = (new_id(), new_id());
    spool.put(envelope(&a), b"first".to_vec()).await.unwrap();
    spool.put(envelope(&b), b"second".to_vec()).await.unwrap();
    let seg = spool.dir().seg_path(spool.dir().segments().unwrap()[0]);
    drop(spool);
    // What a crash in the middle of an unacknowledged batch leaves: the
    // second record cut short, then (another case) garbage after it.
    let log = fs::read(&seg).unwrap();
    fs::write(&seg, &log[..log.len() - 2]).unwrap();
    let spool = Spool::open(root.clone()).unwrap();
    assert_eq!(queue_files(&spool), BTreeSet::from([a.clone()]));
    assert!(spool.dir().segments().unwrap().is_empty());

    let c = new_id();
    spool.put(envelope(&c), b"third".to_vec()).await.unwrap();
    let seg = spool.dir().seg_path(spool.dir().segments().unwrap()[0]);
    drop(spool);
    let mut log = fs::read(&seg).unwrap();
    let flipped = log.len() - 1;
    log[flipped] ^= 0xff;
    log.extend_from_slice(b"PSG1 and then nothing sensible");
    fs::write(&seg, &log).unwrap();
    let spool = Spool::open(root).unwrap();
    assert_eq!(
        queue_files(&spool),
        BTreeSet::from([a]),
        "a record whose checksum fails is not a message"
    );
}

#[tokio::test]
async fn delivered_records_leave_the_log_and_a_full_segment_is_removed() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("spool");
    let spool = Spool::open(root.clone()).unwrap();
    let (a, b) = (new_id(), new_id());
    spool.put(envelope(&a), b"one".to_vec()).await.unwrap();
    spool.put(envelope(&b), b"two".to_vec()).await.unwrap();
    spool.complete(&a).await.unwrap();
    assert_eq!(queued(&spool), BTreeSet::from([b.clone()]));
    assert_eq!(spool.usage(false).unwrap().messages, 1);
    // A restart after `a` was delivered brings back only `b`.
    let spool = reopen(spool);
    assert_eq!(queue_files(&spool), BTreeSet::from([b.clone()]));
    spool.complete(&b).await.unwrap();

    // Past the rotation size a segment is sealed, and removed once every
    // record in it is delivered.
    let big = vec![b'x'; (segment::ROTATE_AT as usize) + 1];
    let c = new_id();
    spool.put(envelope(&c), big).await.unwrap();
    let d = new_id();
    spool.put(envelope(&d), b"small".to_vec()).await.unwrap();
    assert_eq!(spool.dir().segments().unwrap().len(), 2);
    spool.complete(&c).await.unwrap();
    assert_eq!(spool.dir().segments().unwrap().len(), 1, "sealed and empty");
    assert_eq!(queued(&spool), BTreeSet::from([d]));
}

#[tokio::test]
async fn a_live_record_gets_its_file_before_a_failed_attempt_is_recorded() {
    let tmp = tempfile::tempdir().unwrap();
    let spool = Spool::open(tmp.path().join("spool")).unwrap();
    let id = new_id();
    spool.put(envelope(&id), b"body".to_vec()).await.unwrap();
    assert_eq!(spool.locate(&id).await.unwrap(), Place::Queue);
    let state = RetryState {
        attempts: 1,
        last_error: "HTTP 503".to_string(),
        ..RetryState::default()
    };
    spool.record_attempt(&id, state).await.unwrap();
    assert_eq!(
        queue_files(&spool),
        BTreeSet::from([id.clone(), format!("{id}.retry")])
    );
    assert!(spool.dir().live_records().unwrap().is_empty());
    assert_eq!(spool.read(&id).await.unwrap().data, b"body");
    let list = spool.list(false).await.unwrap();
    assert_eq!(list.len(), 1);
    assert_eq!(list[0].retry.as_ref().unwrap().attempts, 1);
    spool.complete(&id).await.unwrap();
    assert!(queued(&spool).is_empty());
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
    let spool = reopen(spool);
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

    let mut bigger = env.clone();
    bigger.id = new_id();
    bigger.credential = "c".repeat(store::MAX_HEADER as usize);
    let err = spool.put(bigger, b"x\r\n".to_vec()).await.unwrap_err();
    assert!(matches!(err, SpoolError::EnvelopeTooLarge(_)), "{err}");
    assert_eq!(queued(&spool).len(), 1);
    // And from its queue/ file after a restart.
    let spool = reopen(spool);
    assert_eq!(spool.read(&id).await.unwrap().envelope.rcpt_to, env.rcpt_to);
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
    // The writer answers the put before it finishes its bookkeeping
    // (the beat, clearing its commit start), so allow it a moment.
    let mut after = spool.writer_progress();
    for _ in 0..200 {
        if after.beats > idle.beats && after.longest_commit.is_zero() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        after = spool.writer_progress();
    }
    assert!(after.beats > idle.beats, "{idle:?} -> {after:?}");
    assert_eq!(after.longest_commit, std::time::Duration::ZERO);
}

/// Waits (up to 20 s) until `cond` holds.
fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let until = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while !cond() {
        assert!(std::time::Instant::now() < until, "timed out: {what}");
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
}

fn spares(root: &std::path::Path) -> Vec<std::path::PathBuf> {
    fs::read_dir(root.join("seg"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().ends_with(spare::SPARE_SUFFIX))
        .collect()
}

#[tokio::test]
async fn the_segment_after_the_first_is_preallocated_and_read_to_its_last_record() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("spool");
    let spool = Spool::open(root.clone()).unwrap();
    // The first segment is an empty file; opening it asks for a spare.
    let big = vec![b'x'; segment::ROTATE_AT as usize];
    let first = new_id();
    spool.put(envelope(&first), big).await.unwrap();
    wait_until("a spare segment", || spares(&root).len() == 1);
    let spare = spares(&root).remove(0);
    assert_eq!(
        fs::metadata(&spare).unwrap().len(),
        segment::ROTATE_AT,
        "a spare is ROTATE_AT bytes"
    );
    assert!(fs::read(&spare).unwrap().iter().all(|&b| b == 0));

    // The first is full, so the next put opens the spare as a segment:
    // the records overwrite its zeros and the file keeps its length.
    let (a, b) = (new_id(), new_id());
    spool.put(envelope(&a), b"alpha".to_vec()).await.unwrap();
    spool.put(envelope(&b), b"bravo".to_vec()).await.unwrap();
    let segs = spool.dir().segments().unwrap();
    assert_eq!(segs.len(), 2);
    let second = spool.dir().seg_path(segs[1]);
    assert_eq!(
        second.file_name(),
        spare.with_extension("log").file_name(),
        "the spare renamed"
    );
    assert!(!spare.exists());
    let log = fs::read(&second).unwrap();
    assert_eq!(log.len() as u64, segment::ROTATE_AT);
    assert_eq!(&log[..4], b"PSG1");
    assert_eq!(spool.read(&b).await.unwrap().data, b"bravo");
    // Reading stops at the zeros: both records, nothing else.
    assert_eq!(
        queued(&spool),
        BTreeSet::from([first.clone(), a.clone(), b.clone()])
    );

    // Opening the spare asked for the next; closing the spool removes it.
    wait_until("the next spare", || spares(&root).len() == 1);
    drop(spool);
    wait_until("the spare removed at close", || spares(&root).is_empty());
    let spool = Spool::open(root).unwrap();
    assert_eq!(queue_files(&spool), BTreeSet::from([first, a, b]));
    assert!(spool.dir().segments().unwrap().is_empty());
}

#[test]
fn a_spare_left_behind_is_removed_on_open() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("spool");
    drop(Spool::open(root.clone()).unwrap());
    let left = root.join("seg").join("0000000000000007.spare");
    fs::write(&left, vec![0u8; 4096]).unwrap();
    let _spool = Spool::open(root.clone()).unwrap();
    assert!(!left.exists());
}

#[test]
fn a_spare_is_made_only_with_room_for_two_more() {
    let r = segment::ROTATE_AT;
    assert!(!spare::worth_preparing(0));
    assert!(!spare::worth_preparing(r));
    assert!(!spare::worth_preparing(3 * r - 1));
    assert!(spare::worth_preparing(3 * r));
}

#[tokio::test]
async fn a_live_record_damaged_on_disk_reads_as_corrupt() {
    use std::os::unix::fs::FileExt;
    let tmp = tempfile::tempdir().unwrap();
    let spool = Spool::open(tmp.path().join("spool")).unwrap();
    let (a, b) = (new_id(), new_id());
    spool
        .put(envelope(&a), b"first body".to_vec())
        .await
        .unwrap();
    spool
        .put(envelope(&b), b"second body".to_vec())
        .await
        .unwrap();
    let seg = spool.dir().seg_path(spool.dir().segments().unwrap()[0]);
    let len = fs::metadata(&seg).unwrap().len();
    // The last byte of the file is the last byte of b's message.
    fs::OpenOptions::new()
        .write(true)
        .open(&seg)
        .unwrap()
        .write_all_at(b"X", len - 1)
        .unwrap();
    let err = spool.read(&b).await.unwrap_err();
    assert!(
        matches!(&err, SpoolError::Corrupt { id, reason } if id == &b && reason == "checksum mismatch"),
        "{err}"
    );
    let msg = spool.read(&a).await.unwrap();
    assert_eq!(msg.data, b"first body");
    assert_eq!(msg.envelope.id, a);
}
