use super::*;
use mail_parser::MessageParser;

const MSG: &[u8] = b"From: a@example.com\r\nTo: Bob <Bob@Dest.test>, carol@dest.test\r\nCc: dave@dest.test\r\nSubject: s\r\n\r\nhi\r\n";

#[test]
fn adds_only_missing_recipients_as_bcc() {
    let parsed = MessageParser::default().parse(MSG);
    let rcpts = vec!["bob@dest.test".to_string(), "dave@dest.test".to_string()];
    assert!(matches!(
        with_envelope_bcc(MSG, parsed.as_ref(), &rcpts),
        Cow::Borrowed(_)
    ));
    let rcpts = vec![
        "bob@dest.test".to_string(),
        "eve@other.test".to_string(),
        "frank@other.test".to_string(),
        "EVE@other.test".to_string(),
    ];
    let out = with_envelope_bcc(MSG, parsed.as_ref(), &rcpts);
    let mut want = b"Bcc: eve@other.test,\r\n frank@other.test\r\n".to_vec();
    want.extend_from_slice(MSG);
    assert_eq!(&*out, &want[..]);
    let reparsed = MessageParser::default().parse(&*out).unwrap();
    assert_eq!(
        header_recipients(&reparsed),
        [
            "bob@dest.test",
            "carol@dest.test",
            "dave@dest.test",
            "eve@other.test",
            "frank@other.test"
        ]
    );
}

#[test]
fn unparsable_message_gets_every_recipient() {
    let rcpts = vec!["x@y.test".to_string()];
    assert_eq!(
        &*with_envelope_bcc(b"garbage", None, &rcpts),
        b"Bcc: x@y.test\r\ngarbage"
    );
}
