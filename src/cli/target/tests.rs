use super::*;

#[test]
fn spans_sizes_and_cleaning() {
    assert_eq!(span(0), "0s");
    assert_eq!(span(59), "59s");
    assert_eq!(span(3600 + 61), "1h 1m");
    assert_eq!(span(2 * 86_400 + 3 * 3600 + 5), "2d 3h");
    assert_eq!(size(512), "512 B");
    assert_eq!(size(1536), "1.5 KiB");
    assert_eq!(size(5 << 20), "5.0 MiB");
    assert_eq!(clean("a\u{1b}[31mb\r\n"), "a?[31mb??");
    assert_eq!(stamp(0), "1970-01-01T00:00:00Z");
    let now = now_unix();
    // Whole seconds: a tick between the two clock reads may take one off.
    assert!(["in 30s", "in 29s"].contains(&when(now + 30).as_str()));
    assert_eq!(when(now), "now");
    assert!(when(now - 300).starts_with("due 5m"));
}
