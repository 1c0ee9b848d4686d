use super::*;

#[test]
fn sizes() {
    assert_eq!(parse_size("25MiB"), Ok(25 << 20));
    assert_eq!(parse_size("10 MB"), Ok(10_000_000));
    assert_eq!(parse_size("4096"), Ok(4096));
    assert!(parse_size("12 parsecs").is_err());
    assert!(parse_size("MiB").is_err());
    assert!(parse_size("99999999999999GiB").is_err());
}

#[test]
fn durations() {
    assert_eq!(parse_duration("5m"), Ok(Duration::from_secs(300)));
    assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
    assert!(parse_duration("soon").is_err());
}
