use super::*;

#[test]
fn single_line_with_enhanced_code() {
    assert_eq!(
        Reply::new(250, "2.0.0", "Ok").to_bytes(),
        b"250 2.0.0 Ok\r\n"
    );
}

#[test]
fn multiline_repeats_enhanced_code_and_uses_dash_continuations() {
    let r = Reply::multiline(214, Some("2.0.0"), vec!["a".into(), "b".into()]);
    assert_eq!(r.to_bytes(), b"214-2.0.0 a\r\n214 2.0.0 b\r\n");
}

#[test]
fn multiline_without_enhanced_keeps_bare_keywords() {
    let r = Reply::multiline(
        250,
        None,
        vec!["mx.example".into(), "PIPELINING".into(), "8BITMIME".into()],
    );
    assert_eq!(
        r.to_bytes(),
        b"250-mx.example\r\n250-PIPELINING\r\n250 8BITMIME\r\n"
    );
}

#[test]
fn empty_text_still_has_the_separator_space() {
    // RFC 4954 continue-req is "334" SP [base64] CRLF.
    assert_eq!(Reply::bare(334, "").to_bytes(), b"334 \r\n");
    assert_eq!(Reply::multiline(250, None, vec![]).to_bytes(), b"250 \r\n");
    assert_eq!(Reply::new(250, "2.0.0", "").to_bytes(), b"250 2.0.0\r\n");
}

#[test]
fn crlf_and_controls_in_text_cannot_forge_lines() {
    let r = Reply::new(550, "5.7.1", "Sender <a\r\n250 2.0.0 Ok\r\n@x>\0 bad");
    let bytes = r.to_bytes();
    assert_eq!(bytes, b"550 5.7.1 Sender <a  250 2.0.0 Ok  @x>  bad\r\n");
    // Even when the public fields are set directly, writing sanitizes.
    let forged = Reply {
        code: 250,
        enhanced: Some("2.0.0\r\n".into()),
        lines: vec!["x\ny".into()],
        rule: None,
    };
    assert_eq!(forged.to_bytes(), b"250 2.0.0   x y\r\n");
}

#[test]
fn long_text_is_capped_at_a_char_boundary() {
    let text = "é".repeat(400); // 800 bytes
    let r = Reply::new(550, "5.1.1", text);
    assert!(r.lines[0].len() <= MAX_TEXT_BYTES);
    assert!(r.lines[0].chars().all(|c| c == 'é'));
    assert!(r.to_bytes().len() <= 512);
}

#[test]
fn positivity_by_class() {
    assert!(Reply::new(250, "2.0.0", "Ok").is_positive());
    assert!(Reply::bare(354, "go").is_positive());
    assert!(!Reply::new(452, "4.5.3", "Too many").is_positive());
    assert!(!Reply::new(550, "5.7.1", "no").is_positive());
    assert!(Reply::new(550, "5.7.1", "no").is_permanent_failure());
}

#[test]
fn display_is_one_line() {
    let r = Reply::multiline(250, Some("2.0.0"), vec!["a".into(), "b".into()]);
    assert_eq!(r.to_string(), "250 2.0.0 a / b");
}
