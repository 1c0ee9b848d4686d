use super::*;
use axum::http::HeaderValue;

fn headers(cookie: &str) -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert(
        axum::http::header::COOKIE,
        HeaderValue::from_str(cookie).unwrap(),
    );
    h
}

#[test]
fn a_session_is_found_by_its_cookie_only() {
    let s = Sessions::new(Duration::from_secs(60), Duration::from_secs(600));
    let id = s.start("alice", Role::Admin, "saml");
    assert_eq!(id.len(), 43);
    let (found, sess) = s
        .get(&headers(&format!("other=1; {COOKIE}={id}")))
        .expect("found");
    assert_eq!(
        (found.as_str(), sess.name_id.as_str(), sess.role),
        (id.as_str(), "alice", Role::Admin)
    );
    assert!(
        s.get(&headers(&format!("{COOKIE}={}", "A".repeat(43))))
            .is_none()
    );
    assert!(s.get(&headers(&format!("postern_session={id}"))).is_none());
    assert!(s.get(&HeaderMap::new()).is_none());
    s.end(&id);
    assert!(s.get(&headers(&format!("{COOKIE}={id}"))).is_none());
}

#[test]
fn sessions_end_when_idle_or_too_old() {
    let idle = Sessions::new(Duration::from_millis(50), Duration::from_secs(600));
    let id = idle.start("a", Role::Viewer, "saml");
    std::thread::sleep(Duration::from_millis(80));
    assert!(idle.get(&headers(&format!("{COOKIE}={id}"))).is_none());

    let old = Sessions::new(Duration::from_millis(300), Duration::from_secs(2));
    let id = old.start("a", Role::Viewer, "saml");
    // Used more often than the idle timeout, it still ends at the
    // absolute timeout.
    let start = Instant::now();
    let mut last_seen = start;
    while start.elapsed() < Duration::from_millis(2200) {
        std::thread::sleep(Duration::from_millis(50));
        if old.get(&headers(&format!("{COOKIE}={id}"))).is_some() {
            last_seen = Instant::now();
        }
    }
    assert!(
        last_seen - start >= Duration::from_secs(1),
        "use did not keep it alive"
    );
    assert!(old.get(&headers(&format!("{COOKIE}={id}"))).is_none());
}

#[test]
fn csrf_tokens_are_per_session() {
    let s = Sessions::new(Duration::from_secs(60), Duration::from_secs(600));
    let a = s.start("a", Role::Operator, "saml");
    let b = s.start("b", Role::Operator, "saml");
    let (_, sa) = s.get(&headers(&format!("{COOKIE}={a}"))).unwrap();
    let (_, sb) = s.get(&headers(&format!("{COOKIE}={b}"))).unwrap();
    assert!(csrf_ok(&sa, Some(&sa.csrf)));
    assert!(!csrf_ok(&sa, Some(&sb.csrf)));
    assert!(!csrf_ok(&sa, None));
    assert!(!csrf_ok(&sa, Some("")));
}

#[test]
fn cookies_carry_the_flags() {
    let s = Sessions::new(Duration::from_secs(60), Duration::from_secs(3600));
    let c = s.set_cookie("x");
    assert_eq!(
        c,
        format!("{COOKIE}=x; Path=/; Secure; HttpOnly; SameSite=Lax; Max-Age=3600")
    );
    assert!(clear_cookie().contains("Max-Age=0"));
}
