#[test]
fn a_share_is_the_limit_split_rounded_up_and_never_zero() {
    assert_eq!(super::share(5, 3), 2);
    assert_eq!(super::share(6, 3), 2);
    assert_eq!(super::share(1, 3), 1);
    assert_eq!(super::share(100, 1), 100);
    assert_eq!(super::share(7, 0), 7);
}
