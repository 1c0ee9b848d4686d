use super::*;

#[test]
fn literals_are_refused_with_a_fix() {
    let e = resolve("hunter2").unwrap_err();
    assert!(e.contains("env:NAME"), "{e}");
    assert!(resolve("vault:x").is_err());
}

#[test]
fn file_secret_drops_trailing_newline_and_debug_redacts() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("s");
    std::fs::write(&p, "s3cret\n").unwrap();
    let s = resolve(&format!("file:{}", p.display())).unwrap();
    assert_eq!(s.expose(), "s3cret");
    assert!(!format!("{s:?}").contains("s3cret"));
    assert!(resolve("file:/nonexistent/x").is_err());
    assert!(resolve("env:POSTERN_TEST_SURELY_UNSET_VAR").is_err());
}
