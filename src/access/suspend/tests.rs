use super::*;
use crate::clock::ManualClock;
use std::sync::Arc;

const START: Duration = Duration::from_secs(1_800_000_000);

fn at(dir: &Path, clock: &Arc<ManualClock>) -> Suspensions {
    Suspensions::with_clock(dir.join(FILE_NAME), clock.clone()).unwrap()
}

#[test]
fn suspend_resume_and_expiry() {
    let tmp = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(START));
    let s = at(tmp.path(), &clock);
    assert!(s.check("erp").is_none());
    let forever = s.suspend("erp", None, Some("leaked".into()), "operator");
    assert_eq!(forever.until, None);
    assert_eq!(forever.reason.as_deref(), Some("leaked"));
    let timed = s.suspend(
        "cms",
        Some(Duration::from_secs(7200)),
        Some(" ".into()),
        "alerts",
    );
    assert_eq!(timed.until, Some(START.as_secs() + 7200));
    assert_eq!(timed.reason, None, "a blank reason is no reason");
    assert_eq!(s.active().len(), 2);

    clock.advance(Duration::from_secs(7199));
    assert!(s.check("cms").is_some());
    clock.advance(Duration::from_secs(1));
    assert!(s.check("cms").is_none(), "the expiry lifts it by itself");
    assert_eq!(s.resume("cms"), None, "an expired one is not resumed");
    assert_eq!(
        s.active()
            .iter()
            .map(|x| x.credential.as_str())
            .collect::<Vec<_>>(),
        ["erp"]
    );
    assert_eq!(s.resume("erp").map(|x| x.credential), Some("erp".into()));
    assert!(s.check("erp").is_none());
}

#[test]
fn saved_record_survives_a_restart_and_drops_expired_ones() {
    let tmp = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(START));
    {
        let s = at(tmp.path(), &clock);
        s.suspend("erp", None, Some("incident 42".into()), "operator");
        s.suspend("cms", Some(Duration::from_secs(60)), None, "operator");
        s.save().unwrap();
    }
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &fs::metadata(tmp.path().join(FILE_NAME))
            .unwrap()
            .permissions(),
    );
    assert_eq!(mode & 0o777, 0o600);
    let s = at(tmp.path(), &clock);
    assert_eq!(s.active().len(), 2);
    assert_eq!(
        s.check("erp").unwrap().reason.as_deref(),
        Some("incident 42")
    );
    clock.advance(Duration::from_secs(61));
    s.save().unwrap();
    let text = fs::read_to_string(tmp.path().join(FILE_NAME)).unwrap();
    assert!(text.contains("erp") && !text.contains("cms"), "{text}");
}

#[test]
fn an_unreadable_record_refuses_rather_than_forgets() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join(FILE_NAME);
    fs::write(&path, b"{ not json").unwrap();
    let clock = Arc::new(ManualClock::new(START));
    let err = Suspensions::with_clock(path.clone(), clock).err().unwrap();
    assert!(matches!(err, LoadError::Corrupt { .. }), "{err}");
    assert!(err.to_string().contains("remove it"), "{err}");
    assert_eq!(
        fs::read(&path).unwrap(),
        b"{ not json",
        "left for the operator"
    );
}
