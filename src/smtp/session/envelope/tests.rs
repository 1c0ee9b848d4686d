use super::*;

fn split(line: &str) -> (Option<String>, String) {
    let (p, l) = separate_path(line.as_bytes());
    (
        p.map(|p| String::from_utf8(p).unwrap()),
        String::from_utf8(l).unwrap(),
    )
}

#[test]
fn path_is_cut_out_of_mail_and_rcpt_only() {
    assert_eq!(
        split("MAIL FROM:<a@b.example> SIZE=10"),
        (
            Some("<a@b.example>".into()),
            "MAIL FROM:<x@x> SIZE=10\r\n".into()
        )
    );
    assert_eq!(
        split("rcpt to:<\"a>b\\\"c\"@d.example> NOTIFY=NEVER"),
        (
            Some("<\"a>b\\\"c\"@d.example>".into()),
            "rcpt to:<x@x> NOTIFY=NEVER\r\n".into()
        )
    );
    assert_eq!(
        split("RCPT TO:<@a,@b:u@c.example>").0.as_deref(),
        Some("<@a,@b:u@c.example>")
    );
    assert_eq!(split("MAIL FROM:<>").0.as_deref(), Some("<>"));
    assert_eq!(
        split("MAIL FROM:<unterminated"),
        (None, "MAIL FROM:<unterminated\r\n".into())
    );
    assert_eq!(split("NOOP <a@b>"), (None, "NOOP <a@b>\r\n".into()));
    assert_eq!(split("MAILX <a@b>").0, None);
}
