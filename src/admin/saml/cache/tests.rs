use super::*;

#[test]
fn an_id_is_taken_once_and_not_after_it_expired() {
    let ids = Ids::default();
    let later = Instant::now() + Duration::from_secs(60);
    assert!(ids.insert("a", later));
    assert!(!ids.insert("a", later), "inserted twice");
    assert_eq!(ids.live(), vec!["a".to_string()]);
    assert!(ids.take("a"));
    assert!(!ids.take("a"), "taken twice");
    assert!(!ids.take("never"));
    assert!(ids.insert("old", Instant::now() + Duration::from_millis(20)));
    std::thread::sleep(Duration::from_millis(40));
    assert!(!ids.take("old"), "taken after expiry");
    assert!(ids.live().is_empty());
}

#[test]
fn the_memory_is_bounded() {
    let ids = Ids::default();
    let later = Instant::now() + Duration::from_secs(60);
    for i in 0..MAX_IDS + 10 {
        ids.insert(&i.to_string(), later + Duration::from_millis(i as u64));
    }
    assert_eq!(ids.live().len(), MAX_IDS);
    // The oldest went first.
    assert!(!ids.take("0"));
    assert!(ids.take(&(MAX_IDS + 9).to_string()));
}
