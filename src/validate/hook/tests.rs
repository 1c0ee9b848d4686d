use super::*;

#[test]
fn reasons_are_one_bounded_line() {
    assert_eq!(
        clean_reason(" no such user\r\n250 ok "),
        "no such user  250 ok"
    );
    assert_eq!(
        clean_reason(""),
        "address rejected by the verification service"
    );
    assert_eq!(clean_reason(&"x".repeat(500)).len(), MAX_REASON);
}
