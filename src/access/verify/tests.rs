use super::*;

#[test]
fn hash_then_verify() {
    let h = hash_secret("correct horse").unwrap();
    assert!(h.starts_with("$argon2id$"));
    assert!(check(Some(&h), "correct horse"));
    assert!(!check(Some(&h), "wrong"));
    assert!(!check(None, "anything"));
    assert!(!check(Some("garbage"), "x"));
}

#[test]
fn dummy_hash_parses() {
    assert!(PasswordHash::new(DUMMY_PHC).is_ok());
}

#[test]
fn tokens_are_distinct_and_long() {
    let a = new_token().unwrap();
    assert!(a.starts_with("pst_") && a.len() >= 4 + 43);
    assert_ne!(a, new_token().unwrap());
}

#[test]
fn cache_evicts_oldest() {
    let mut c = Cache::new(2);
    c.insert([1; 32]);
    c.insert([2; 32]);
    c.insert([3; 32]);
    assert!(!c.contains(&[1; 32]) && c.contains(&[3; 32]));
}
